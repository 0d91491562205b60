"""Read the service's Prometheus counters from /metrics."""

import re

import httpx
from prometheus_client.parser import text_string_to_metric_families

# Counters that final/ bumps when a Redis call fails and it falls back (cache errors,
# rate-limit checks decided without Redis, fast-path fallbacks). Matched by name so the
# suite reads whatever final/app/metrics.py registers for them.
REDIS_FAILURE_COUNTER = re.compile(
    r"(redis|cache|rate_?limit|fast_?path).*(error|degraded|unavailable|fallback)"
)


def sum_counters(text: str, pattern: re.Pattern[str]) -> tuple[float, list[str]]:
    """The sum of every counter sample whose family name matches, and those names."""
    total = 0.0
    names: list[str] = []
    for family in text_string_to_metric_families(text):
        if family.type == "counter" and pattern.search(family.name):
            names.append(family.name)
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total, names


async def redis_failures(client: httpx.AsyncClient) -> float:
    """How many Redis failures the service has counted; fails if it counts none at all."""
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    total, names = sum_counters(response.text, REDIS_FAILURE_COUNTER)
    assert names, (
        "/metrics has no counter of Redis failures (a name matching "
        f"{REDIS_FAILURE_COUNTER.pattern!r}): final/ must count its fallbacks."
    )
    return total
