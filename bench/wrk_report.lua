-- wrk script for bench/run.py: shapes the request from environment variables
-- and prints one machine-readable summary line when the run is done.
--
--   BENCH_METHOD, BENCH_BODY, BENCH_CONTENT_TYPE, BENCH_AUTHORIZATION: the request.
--   BENCH_COUNT_STATUSES=1: count every status code (a Lua call per response
--   costs wrk CPU that the server then lacks, so only the login cases ask).
-- The token travels in the environment rather than on wrk's command line,
-- where any user of the machine could read it in the process list.

wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.body = os.getenv("BENCH_BODY")
local content_type = os.getenv("BENCH_CONTENT_TYPE")
if content_type then
  wrk.headers["Content-Type"] = content_type
end
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization then
  wrk.headers["Authorization"] = authorization
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

if os.getenv("BENCH_COUNT_STATUSES") == "1" then
  statuses = {}
  function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    local thread_statuses = thread:get("statuses") or {}
    for status, count in pairs(thread_statuses) do
      counts[status] = (counts[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(counts) do
    table.insert(parts, string.format('"%d": %d', status, count))
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH-SUMMARY {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, '
      .. '"timeouts": %d, "non_2xx_3xx": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, errors.connect, errors.read, errors.write, errors.timeout, errors.status,
    table.concat(parts, ", ")
  ))
end
