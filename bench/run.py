"""Benchmark final/ against bare FastAPI and FastAPI + one Redis GET, in the same run.

Every application runs under the same uvicorn settings; wrk loads each
scenario in turn, round by round, and the median of the rounds is kept.
Absolute numbers move with the machine; the ratios within one run are what
the docs and the targets use. `python bench/run.py --help` lists the options.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import secrets
import shlex
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import breakdown
import db_reads
import httpx
import load
import report
import seed
from scenarios import (
    SCENARIOS,
    STORM_CONNECTIONS,
    Scenario,
    UnavailableError,
    build_load,
    login_load,
    probe,
)
from servers import LOOPS, Server, ServerError, start_uvicorn, uvicorn_options, wait_until_quiet

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
FINAL = ROOT / "final"
DOCS_OUTPUT = ROOT / "docs" / "performance"
PARTIAL_OUTPUT = BENCH / "results"
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/workshop_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
BASELINE_APPS = {
    "ceiling": "ceiling:app",
    "ceiling_telemetry": "ceiling:app_with_telemetry",
    "redis_reference": "redis_reference:app",
}
READY_PATHS = {"ceiling": "/ping", "ceiling_telemetry": "/ping", "redis_reference": "/user"}
FINAL_SERVERS = ("final", "final_uncached")
# Assumed switch of final/'s cache; the cache-off cases check that it works.
CACHE_OFF = {"CACHE_ENABLED": "false"}
VERSIONED = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "sqlalchemy",
    "asyncpg",
    "redis",
    "pydantic",
)


@dataclass(frozen=True)
class Options:
    """What to measure and for how long."""

    seconds: int
    rounds: int
    warmup: int
    connections: int
    threads: int
    loop: str
    only: tuple[str, ...]
    profile: bool
    output: Path
    command: str


def parse_args(argv: list[str]) -> Options:
    """Read the command line."""
    names = [scenario.name for scenario in SCENARIOS]
    parser = argparse.ArgumentParser(
        prog="python bench/run.py",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog="Scenarios: " + ", ".join(names),
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, median kept (default 3)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per scenario")
    parser.add_argument("--connections", type=int, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default=LOOPS[0],
        help="uvicorn's event loop for every application (default uvloop)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 3 s, 1 round, 1 s warm-up"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help="run only these scenarios (add ceiling,redis_reference to get the ratios)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of measuring, sample final/ with py-spy under each selected scenario "
        "(at --connections, default 8 here) and print where its CPU time goes",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write results (default: docs/performance for a complete run, "
        "bench/results for --only, --quick or --loop asyncio, so that no partial or "
        "differently served run replaces the docs' numbers)",
    )
    args = parser.parse_args(argv)
    only = tuple(name.strip() for value in args.only for name in value.split(",") if name.strip())
    unknown = sorted(set(only) - set(names))
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(names)}")
    seconds, rounds, warmup = (3, 1, 1) if args.quick else (args.duration, args.rounds, args.warmup)
    # Profiling wants a bounded load: a few connections keep the server busy without a queue.
    connections = args.connections or (8 if args.profile else 64)
    if min(seconds, rounds, connections, args.threads) < 1 or warmup < 0:
        parser.error("durations, rounds, connections and threads must be positive")
    complete = not only and not args.quick and args.loop == LOOPS[0]
    return Options(
        seconds=seconds,
        rounds=rounds,
        warmup=warmup,
        connections=connections,
        threads=args.threads,
        loop=args.loop,
        only=only,
        profile=args.profile,
        output=args.output or (DOCS_OUTPUT if complete else PARTIAL_OUTPUT),
        command=shlex.join(["python", "bench/run.py", *argv]),
    )


class Bench:
    """One benchmark run: the applications, the seeded data and the measurements."""

    def __init__(self, options: Options, wrk: str, stack: contextlib.ExitStack) -> None:
        self.options = options
        self.wrk = wrk
        self.stack = stack
        self.servers: dict[str, Server] = {}
        # Applications that could not be started or prepared, and why.
        self.broken: dict[str, str] = {}
        self.seeded: seed.Seed | None = None
        # Set by _start_final: the admin's password, or why the admin could not be created.
        self._admin_password: str | None = None
        self._admin_problem: str | None = None
        self.database_url = seed.bench_database_url(
            os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
        )
        self.redis_url = seed.bench_redis_url(os.environ.get("REDIS_URL", DEFAULT_REDIS_URL))

    def start(self, needed: set[str]) -> None:
        """Start every application the selected scenarios need and wait until each is ready."""
        for name in sorted(needed & BASELINE_APPS.keys()):
            env = dict(os.environ, REDIS_URL=self.redis_url)
            self._launch(name, BASELINE_APPS[name], BENCH, env)
        finals = [name for name in FINAL_SERVERS if name in needed]
        if finals:
            self._start_final(finals)
        for name, server in list(self.servers.items()):
            try:
                server.wait_ready(READY_PATHS.get(name, "/health/live"))
            except ServerError as exc:
                print(f"{exc} Its last output:\n{server.output.text()}\n", file=sys.stderr)
                self.broken[name] = str(exc)
                server.stop()
                del self.servers[name]
        seeded_on = next((self.servers[n] for n in FINAL_SERVERS if n in self.servers), None)
        if seeded_on is not None and self._admin_password is not None:
            self.seeded = seed.seed_over_http(
                seeded_on.base_url, admin_password=self._admin_password
            )
            if self._admin_problem:
                self.seeded.problems["admin_token"] = self._admin_problem

    def _launch(self, name: str, app: str, cwd: Path, env: dict[str, str]) -> None:
        server = start_uvicorn(name, app, cwd=cwd, env=env, loop=self.options.loop)
        self.stack.callback(server.stop)
        self.servers[name] = server

    def _start_final(self, names: list[str]) -> None:
        """Recreate final/'s stores, migrate, create the admin, and start final/."""
        # A fresh random key per run: 40 random bytes, more than production's minimum of 32.
        env = dict(
            os.environ,
            **seed.final_environment(self.database_url, self.redis_url, secrets.token_urlsafe(40)),
        )
        try:
            seed.reset_stores(self.database_url, self.redis_url)
            seed.migrate(FINAL, env)
        except seed.SetupError as exc:
            for name in names:
                self.broken[name] = str(exc)
            return
        self._admin_password = secrets.token_urlsafe(16)
        try:
            seed.create_admin(FINAL, env, self._admin_password)
        except seed.SetupError as exc:
            self._admin_problem = str(exc)
        for name in names:
            self._launch(name, "app.main:app", FINAL, env if name == "final" else env | CACHE_OFF)

    def loads(self, scenario: Scenario, seconds: int) -> tuple[load.Load, load.Load | None]:
        """Return the scenario's load (and the storm's logins), or raise UnavailableError."""
        if scenario.server in self.broken:
            raise UnavailableError(self.broken[scenario.server])
        base_url = self.servers[scenario.server].base_url
        options = self.options
        main_load = build_load(
            scenario,
            base_url,
            self.seeded,
            connections=options.connections,
            threads=options.threads,
            seconds=seconds,
        )
        if scenario.kind != "storm":
            return main_load, None
        # The logins start a second before /health/live is measured and end a second after.
        logins = login_load(
            base_url, self.seeded, connections=STORM_CONNECTIONS, threads=1, seconds=seconds + 2
        )
        return main_load, logins

    def check(self, scenario: Scenario) -> None:
        """Send each request of the scenario once; raise UnavailableError unless all answer 2xx."""
        main_load, logins = self.loads(scenario, self.options.seconds)
        probe(main_load)
        if logins is not None:
            probe(logins)
        if scenario.server == "final_uncached":
            self._check_cache_off(main_load)
        elif scenario.name == "me_cached":
            self._check_cache_used(main_load)

    def _check_cache_off(self, uncached: load.Load) -> None:
        """Make sure the cache-off server really reads PostgreSQL (CACHE_ENABLED is assumed)."""
        server = self.servers["final_uncached"]
        before = _cache_hits(server)
        probe(uncached)
        after = _cache_hits(server)
        if before is not None and after is not None and after > before:
            raise UnavailableError(
                "CACHE_ENABLED=false did not turn final/'s cache off: "
                "GET /users/me still counted cache hits."
            )

    def _check_cache_used(self, cached: load.Load) -> None:
        """Warn when final/ counts no cache hit for a repeated read: the cached case is not."""
        server = self.servers["final"]
        probe(cached)
        before = _cache_hits(server)
        probe(cached)
        after = _cache_hits(server)
        if before is not None and after is not None and after == before:
            print("warning: final/ counted no cache hit for a repeated GET /users/me: the")
            print("         cached cases measure an uncached read until the cache layer is there.")

    def measure(self, scenario: Scenario, seconds: int) -> tuple[load.Measurement, ...]:
        """Run one round of a scenario once the servers are quiet."""
        wait_until_quiet(list(self.servers.values()))
        main_load, logins = self.loads(scenario, seconds)
        if logins is None:
            return (load.measure(self.wrk, main_load),)
        storm = load.start(self.wrk, replace(logins, seconds=seconds + 2))
        time.sleep(1.0)
        health = load.measure(self.wrk, main_load)
        return health, load.finish(storm)


def _cache_hits(server: Server) -> float | None:
    """Read final/'s cache-hit counter from /metrics, or None if it has none."""
    try:
        text = httpx.get(server.base_url + "/metrics", timeout=5.0).text
    except httpx.HTTPError:
        return None
    match = re.search(r"^cache_hits_total\s+(\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def run(options: Options, wrk: str) -> list[report.Outcome]:
    """Start the applications, check, warm up and measure every selected scenario."""
    selected = [s for s in SCENARIOS if not options.only or s.name in options.only]
    outcomes = [
        report.Outcome(s, connections=s.connections or options.connections) for s in selected
    ]
    with contextlib.ExitStack() as stack:
        bench = Bench(options, wrk, stack)
        bench.start({scenario.server for scenario in selected})
        available: list[report.Outcome] = []
        for outcome in outcomes:
            try:
                bench.check(outcome.scenario)
            except UnavailableError as exc:
                # Reasons go into committed files: no path of this machine in them.
                outcome.unavailable = str(exc).replace(f"{ROOT}{os.sep}", "")
                print(f"{outcome.scenario.name:<18} unavailable: {outcome.unavailable}")
            else:
                available.append(outcome)
        if options.warmup:
            for outcome in available:
                bench.measure(outcome.scenario, options.warmup)
        for number in range(1, options.rounds + 1):
            for outcome in list(available):
                try:
                    measured = bench.measure(outcome.scenario, options.seconds)
                except load.LoadError as exc:
                    # One broken case must not cost the measurements of all the others.
                    outcome.unavailable = str(exc)
                    available.remove(outcome)
                    continue
                outcome.rounds.append(measured[0])
                if len(measured) > 1:
                    outcome.storm_logins.append(measured[1])
                _print_round(number, options.rounds, outcome.scenario, measured)
    return outcomes


def run_profile(options: Options, wrk: str) -> int:
    """Sample final/ under each selected scenario's load and print where its CPU time goes."""
    selected = [
        s for s in SCENARIOS if s.kind == "read" and (not options.only or s.name in options.only)
    ]
    options.output.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        bench = Bench(options, wrk, stack)
        bench.start({scenario.server for scenario in selected})
        for scenario in selected:
            try:
                bench.check(scenario)
                main_load, _ = bench.loads(scenario, options.seconds)
                load.measure(wrk, replace(main_load, seconds=max(options.warmup, 1)))
                wait_until_quiet(list(bench.servers.values()))
                server = bench.servers[scenario.server]
                raw = options.output / f"profile-{scenario.name}.txt"
                samples, user, system, requests = breakdown.profile(
                    wrk, server, main_load, seconds=options.seconds, raw=raw
                )
            except (UnavailableError, load.LoadError) as exc:
                print(f"{scenario.name}: {exc}", file=sys.stderr)
                return 1
            breakdown.print_breakdown(scenario.name, samples, user, system, requests)
        if any(scenario.server == "final_uncached" for scenario in selected):
            # The cache miss's read on its own, against the same database.
            db_reads.print_reads(bench.database_url)
    return 0


def _print_round(
    number: int, rounds: int, scenario: Scenario, measured: tuple[load.Measurement, ...]
) -> None:
    first = measured[0]
    rps = first.ok_rps() if scenario.kind == "login" else first.rps
    line = (
        f"round {number}/{rounds}  {scenario.name:<18} {rps:>9,.0f} rps  "
        f"p50 {first.p50_ms:6.1f} ms  p99 {first.p99_ms:7.1f} ms  "
        f"non-2xx {first.non_2xx_3xx}  socket errors {first.socket_errors + first.timeouts}"
    )
    if scenario.kind == "login" or len(measured) > 1:
        logins = measured[-1]
        line += (
            f"  | logins {logins.ok_rps():.1f}/s ok, {logins.count(*report.REFUSED)} refused, "
            f"p99 {logins.p99_ms:.0f} ms"
        )
    print(line, flush=True)


def describe_run(options: Options, wrk: str) -> dict[str, Any]:
    """Return what results.json records about the run itself."""
    versions = {"python": platform.python_version(), "wrk": load.wrk_version(wrk)}
    for package in VERSIONED:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "generated_by": "bench/run.py",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": options.command,
        "machine": {
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "system": platform.system(),
            "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        },
        "versions": versions,
        "method": {
            "rounds": options.rounds,
            "seconds": options.seconds,
            "warmup_seconds": options.warmup,
            "wrk": f"wrk -t{options.threads} -c{options.connections} -d{options.seconds}s "
            "--timeout 10s --latency",
            "uvicorn": " ".join(uvicorn_options(options.loop)),
            "final_settings": {
                "ENVIRONMENT": "production",
                "RATE_LIMIT": seed.UNLIMITED,
                "LOGIN_RATE_LIMIT": seed.UNLIMITED,
                "cache-off cases": "CACHE_ENABLED=false",
            },
        },
    }


def _estimate_seconds(options: Options, scenarios: int) -> int:
    per_round = scenarios * (options.seconds + 2)
    return scenarios * (options.warmup + 1) + options.rounds * per_round + 20


def _print_table(summaries: dict[str, dict[str, Any]]) -> None:
    print(
        f"\n{'scenario':<18} {'conns':>5} {'RPS':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'/ceil':>6} {'/ref':>6} {'errors':>6}"
    )
    for name, summary in summaries.items():
        if summary["status"] != "measured":
            print(f"{name:<18} unavailable: {summary['reason']}")
            continue
        errors = summary["non_2xx_3xx"] + summary["socket_errors"] + summary["timeouts"]
        print(
            f"{name:<18} {summary['connections']:>5} {summary['rps']:>9,.0f} "
            f"{summary['p50_ms']:>7.1f} {summary['p99_ms']:>7.1f} "
            f"{_ratio(summary['ratio_to_ceiling']):>6} {_ratio(summary['ratio_to_reference']):>6} "
            f"{errors:>6}"
        )
    print()


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit non-zero only when wrk or a baseline application is missing."""
    options = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        wrk = load.find_wrk()
    except load.LoadError as exc:
        print(exc, file=sys.stderr)
        return 2
    if options.profile:
        return run_profile(options, wrk)
    selected = [s for s in SCENARIOS if not options.only or s.name in options.only]
    cores = os.cpu_count() or 1
    print(
        f"{len(selected)} scenarios x {options.rounds} rounds x {options.seconds} s on {cores} "
        f"cores: about {max(1, round(_estimate_seconds(options, len(selected)) / 60))} min."
    )
    if os.getloadavg()[0] > 0.5 * cores:
        print(f"The machine is busy (load {os.getloadavg()[0]:.1f}): expect noisy numbers.")
    if any(s.server in FINAL_SERVERS for s in selected):
        print(
            f"final/ runs in production mode with RATE_LIMIT and LOGIN_RATE_LIMIT at "
            f"{seed.UNLIMITED}: the limiter never refuses, so capacity is what is measured."
        )
    results = describe_run(options, wrk)
    outcomes = run(options, wrk)
    summaries = report.summarise(outcomes)
    verdicts = report.judge(summaries)
    _print_table(summaries)
    report.print_verdicts(verdicts)
    results["scenarios"] = summaries
    results["targets"] = [vars(verdict) for verdict in verdicts]
    options.output.mkdir(parents=True, exist_ok=True)
    report.write_json(options.output / "results.json", results)
    report.write_markdown(options.output / "results.md", results)
    report.plot(options.output / "ratios.png", results)
    print(f"\nWrote results.json, results.md and ratios.png to {options.output}.")
    baselines_missing = [
        name
        for name, s in summaries.items()
        if name in report.BASELINES and s["status"] != "measured"
    ]
    return 1 if baselines_missing else 0


if __name__ == "__main__":
    sys.exit(main())
