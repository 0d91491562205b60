"""Summarise the rounds, judge the targets, and write results.json, results.md and ratios.png."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from load import Measurement
from scenarios import Scenario

# The targets of PERFORMANCE.md, judged on ratios measured in the same run.
CACHED_VS_REFERENCE_RPS = 0.8
CACHED_VS_REFERENCE_P99 = 1.25
UNCACHED_VS_CEILING = 0.15
CACHED_VS_UNCACHED = 3.0
STORM_HEALTH_P99_MS = 50.0
# "Answered quickly rather than queued for seconds": a login answer, accepted
# or refused, within a second even when far more logins arrive than can be hashed.
STORM_LOGIN_P99_MS = 1000.0
# More connections may cost some throughput; losing half of it is a stall.
NO_STALL_FRACTION = 0.5
REFUSED = (429, 503)
BASELINES = {"ceiling", "ceiling_telemetry", "redis_reference"}
# Drawn in grey with the baselines: not final/, but the yardstick at 256 connections.
YARDSTICKS = BASELINES | {"redis_reference_256"}


@dataclass
class Outcome:
    """Everything measured for one scenario, or why it could not be."""

    scenario: Scenario
    connections: int
    unavailable: str | None = None
    rounds: list[Measurement] = field(default_factory=list)
    # The login storm's logins, measured alongside /health/live in each round.
    storm_logins: list[Measurement] = field(default_factory=list)


def summarise(outcomes: list[Outcome]) -> dict[str, dict[str, Any]]:
    """Return each scenario's medians and error counts, with ratios to the two baselines."""
    summaries = {outcome.scenario.name: _summarise_one(outcome) for outcome in outcomes}
    ceiling = _rps(summaries, "ceiling")
    reference = _rps(summaries, "redis_reference")
    for summary in summaries.values():
        if summary["status"] != "measured":
            continue
        # Logins run at hashing speed: a ratio to a trivial request says nothing.
        hashing = summary["kind"] == "login"
        summary["ratio_to_ceiling"] = None if hashing else _ratio(summary["rps"], ceiling)
        summary["ratio_to_reference"] = None if hashing else _ratio(summary["rps"], reference)
    return summaries


def _summarise_one(outcome: Outcome) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "title": outcome.scenario.title,
        "kind": outcome.scenario.kind,
        "connections": outcome.connections,
    }
    if outcome.unavailable is not None or not outcome.rounds:
        summary.update(status="unavailable", reason=outcome.unavailable or "not measured")
        return summary
    summary.update(status="measured", **_medians(outcome.rounds, outcome.scenario.kind == "login"))
    if outcome.storm_logins:
        summary["logins"] = _medians(outcome.storm_logins, with_statuses=True)
    return summary


def _medians(rounds: list[Measurement], with_statuses: bool) -> dict[str, Any]:
    """Median of the rounds for levels, sum over the rounds for errors."""
    medians: dict[str, Any] = {
        # For logins, only successful ones count as throughput.
        "rps": statistics.median(m.ok_rps() if with_statuses else m.rps for m in rounds),
        "p50_ms": statistics.median(m.p50_ms for m in rounds),
        "p99_ms": statistics.median(m.p99_ms for m in rounds),
        "max_ms": max(m.max_ms for m in rounds),
        "non_2xx_3xx": sum(m.non_2xx_3xx for m in rounds),
        "socket_errors": sum(m.socket_errors for m in rounds),
        "timeouts": sum(m.timeouts for m in rounds),
        "rounds": [
            {"rps": round(m.rps, 1), "p50_ms": m.p50_ms, "p99_ms": m.p99_ms} for m in rounds
        ],
    }
    if with_statuses:
        statuses: dict[int, int] = {}
        for measurement in rounds:
            for status, count in measurement.statuses.items():
                statuses[status] = statuses.get(status, 0) + count
        medians["statuses"] = {str(status): statuses[status] for status in sorted(statuses)}
        medians["refused_429_503"] = sum(statuses.get(code, 0) for code in REFUSED)
    return medians


def _rps(summaries: dict[str, dict[str, Any]], name: str) -> float | None:
    summary = summaries.get(name)
    if summary is None or summary["status"] != "measured":
        return None
    rps: float = summary["rps"]
    return rps


def _ratio(value: float, baseline: float | None) -> float | None:
    return round(value / baseline, 3) if baseline else None


@dataclass(frozen=True)
class Verdict:
    """One target: PASS, FALLS SHORT, NOT MEASURED or INFO, and what was compared."""

    status: str
    target: str
    detail: str


def judge(summaries: dict[str, dict[str, Any]]) -> list[Verdict]:
    """Judge every target of PERFORMANCE.md that this run measured the inputs of."""
    verdicts: list[Verdict] = []

    def measured(*names: str) -> list[dict[str, Any]] | None:
        found = [summaries.get(name) for name in names]
        if all(summary is not None and summary["status"] == "measured" for summary in found):
            return [summary for summary in found if summary is not None]
        return None

    def check(target: str, names: tuple[str, ...], compare: Any) -> None:
        if not any(name in summaries for name in names):
            return  # none of its scenarios was selected (--only): nothing to say
        found = measured(*names)
        if found is None:
            missing = ", ".join(
                n for n in names if (summaries.get(n) or {}).get("status") != "measured"
            )
            verdicts.append(Verdict("NOT MEASURED", target, f"needs {missing}"))
            return
        passed, detail = compare(*found)
        verdicts.append(Verdict("PASS" if passed else "FALLS SHORT", target, detail))

    check(
        f"cached GET /users/me >= {CACHED_VS_REFERENCE_RPS} of the one-GET reference's RPS",
        ("me_cached", "redis_reference"),
        lambda me, ref: _at_least(me["rps"] / ref["rps"], CACHED_VS_REFERENCE_RPS),
    )
    check(
        f"cached GET /users/me p99 <= {CACHED_VS_REFERENCE_P99}x the reference's p99",
        ("me_cached", "redis_reference"),
        lambda me, ref: _at_most(me["p99_ms"] / ref["p99_ms"], CACHED_VS_REFERENCE_P99, "x"),
    )
    found = measured("me_cached", "ceiling")
    if found is not None:
        ratio = found[0]["rps"] / found[1]["rps"]
        verdicts.append(Verdict("INFO", "cached GET /users/me / ceiling", f"{ratio:.2f}"))
    check(
        f"cache-miss GET /users/me >= {UNCACHED_VS_CEILING} of the ceiling",
        ("me_uncached", "ceiling"),
        lambda miss, ceiling: _at_least(miss["rps"] / ceiling["rps"], UNCACHED_VS_CEILING),
    )
    check(
        f"cached GET /users/me >= {CACHED_VS_UNCACHED:.0f}x the cache-miss path",
        ("me_cached", "me_uncached"),
        lambda hit, miss: _at_least(hit["rps"] / miss["rps"], CACHED_VS_UNCACHED, "x"),
    )
    for name in ("me_cached", "me_uncached"):
        check(
            f"{name} does not stall at 256 connections (>= {NO_STALL_FRACTION} of its RPS at "
            f"{(summaries.get(name) or {}).get('connections', 64)}, no errors)",
            (name + "_256", name),
            _no_stall,
        )
    found_256 = measured("me_cached_256", "redis_reference_256")
    if found_256 is not None:
        ours, reference = found_256
        verdicts.append(
            Verdict(
                "INFO",
                "p99 at 256 connections, cached GET /users/me against the one-GET reference",
                f"{ours['p99_ms']:.0f} ms against {reference['p99_ms']:.0f} ms",
            )
        )
    check(
        f"/health/live p99 <= {STORM_HEALTH_P99_MS:.0f} ms during the login storm",
        ("login_storm",),
        lambda storm: _at_most(storm["p99_ms"], STORM_HEALTH_P99_MS, " ms"),
    )
    check(
        f"storm logins answered within {STORM_LOGIN_P99_MS:.0f} ms (p99), excess refused 429/503",
        ("login_storm",),
        _storm_logins,
    )
    for name, summary in summaries.items():
        if summary["kind"] == "read" and summary["status"] == "measured":
            errors = summary["non_2xx_3xx"] + summary["socket_errors"] + summary["timeouts"]
            verdicts.append(
                Verdict(
                    "PASS" if errors == 0 else "FALLS SHORT",
                    f"{name}: zero non-2xx answers and socket errors",
                    f"{summary['non_2xx_3xx']} non-2xx, {summary['socket_errors']} socket "
                    f"errors, {summary['timeouts']} timeouts",
                )
            )
    found = measured("ceiling_telemetry", "ceiling")
    if found is not None:
        cost = 1 - found[0]["rps"] / found[1]["rps"]
        verdicts.append(
            Verdict("INFO", "FastAPI's OpenTelemetry hooks cost", f"{cost:.1%} of the ceiling")
        )
    return verdicts


def _at_least(value: float, target: float, unit: str = "") -> tuple[bool, str]:
    return value >= target, f"{value:.2f}{unit} (target >= {target:.2f}{unit})"


def _at_most(value: float, target: float, unit: str = "") -> tuple[bool, str]:
    return value <= target, f"{value:.2f}{unit} (target <= {target:.2f}{unit})"


def _no_stall(many: dict[str, Any], few: dict[str, Any]) -> tuple[bool, str]:
    fraction = many["rps"] / few["rps"] if few["rps"] else 0.0
    errors = many["non_2xx_3xx"] + many["socket_errors"] + many["timeouts"]
    detail = f"{fraction:.2f} of the RPS, {errors} errors, p99 {many['p99_ms']:.1f} ms"
    return fraction >= NO_STALL_FRACTION and errors == 0, detail


def _storm_logins(storm: dict[str, Any]) -> tuple[bool, str]:
    logins = storm["logins"]
    detail = (
        f"p99 {logins['p99_ms']:.0f} ms, {logins['rps']:.1f} successful logins/s, "
        f"{logins['refused_429_503']} refused with 429/503, {logins['timeouts']} timeouts"
    )
    return logins["p99_ms"] <= STORM_LOGIN_P99_MS and logins["timeouts"] == 0, detail


def print_verdicts(verdicts: list[Verdict]) -> None:
    """Print one line per target."""
    for verdict in verdicts:
        print(f"{verdict.status:<12} {verdict.target}: {verdict.detail}")


def write_json(path: Path, results: dict[str, Any]) -> None:
    """Write results.json."""
    path.write_text(json.dumps(results, indent=2) + "\n")


def write_markdown(path: Path, results: dict[str, Any]) -> None:
    """Write the results table the docs include (mkdocs cannot read JSON)."""
    versions = results["versions"]
    method = results["method"]
    lines = [
        "<!-- Generated by bench/run.py from results.json: do not edit by hand. -->",
        "",
        f"Run of {results['date']}: `{results['command']}` on {results['machine']['cpu_count']} "
        f"cores; Python {versions['python']}, FastAPI {versions['fastapi']}, "
        f"uvicorn {versions['uvicorn']}, wrk {versions['wrk']}; "
        + (
            f"median of {method['rounds']} rounds of {method['seconds']} s."
            if method["rounds"] > 1
            else f"one round of {method['seconds']} s."
        ),
        "",
        "| scenario | connections | RPS | p50 ms | p99 ms | / ceiling | / one-GET reference "
        "| non-2xx | socket errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for summary in results["scenarios"].values():
        if summary["status"] != "measured":
            lines.append(
                f"| {summary['title']} | {summary['connections']} | unavailable: "
                f"{summary['reason']} | | | | | | |"
            )
            continue
        lines.append(
            f"| {summary['title']} | {summary['connections']} | {summary['rps']:,.0f} "
            f"| {summary['p50_ms']:.1f} | {summary['p99_ms']:.1f} "
            f"| {_format_ratio(summary['ratio_to_ceiling'])} "
            f"| {_format_ratio(summary['ratio_to_reference'])} "
            f"| {summary['non_2xx_3xx']} | {summary['socket_errors'] + summary['timeouts']} |"
        )
    storm = results["scenarios"].get("login_storm", {})
    if storm.get("status") == "measured":
        logins = storm["logins"]
        lines += [
            "",
            f"During the login storm, {logins['rps']:.1f} logins a second succeeded "
            f"(p99 {logins['p99_ms']:.0f} ms) and {logins['refused_429_503']} were refused "
            "with 429 or 503.",
        ]
    lines += ["", "| target | result | measured |", "|---|---|---|"]
    lines += [f"| {v['target']} | **{v['status']}** | {v['detail']} |" for v in results["targets"]]
    path.write_text("\n".join(lines) + "\n")


def _format_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}"


def plot(path: Path, results: dict[str, Any]) -> None:
    """Draw each throughput scenario as a ratio of the ceiling, with the targets marked."""
    import matplotlib  # imported late: only a finished run draws

    matplotlib.use("Agg")  # no display: render straight to the PNG
    import matplotlib.pyplot as plt

    scenarios = results["scenarios"]
    # Logins run at hashing speed, a thousandth of the ceiling: they would be
    # invisible bars. Their numbers are in the table.
    shown = [
        (name, summary)
        for name, summary in scenarios.items()
        if summary["kind"] != "login" and summary.get("ratio_to_ceiling") is not None
    ]
    if not shown:
        return
    figure, axes = plt.subplots(figsize=(9, 0.55 * len(shown) + 1.6))
    positions = list(range(len(shown)))[::-1]
    ratios = [summary["ratio_to_ceiling"] for _, summary in shown]
    # Grey for the baselines, colour for final/.
    colours = ["#9e9e9e" if name in YARDSTICKS else "#00897b" for name, _ in shown]
    axes.barh(positions, ratios, color=colours, height=0.6)
    axes.set_yticks(positions, [summary["title"].replace("`", "") for _, summary in shown])
    for position, ratio in zip(positions, ratios, strict=True):
        axes.text(ratio + 0.01, position, f"{ratio:.2f}", va="center", fontsize=8)
    for position, target in _targets_on_chart(shown, scenarios):
        axes.plot([target, target], [position - 0.4, position + 0.4], color="#d32f2f", linewidth=2)
    axes.plot([], [], color="#d32f2f", linewidth=2, label="target")
    axes.axvline(1.0, color="#616161", linestyle=":", linewidth=1)
    axes.set_xlim(0, max(1.0, *ratios) * 1.1)  # room for the value labels
    axes.set_xlabel("requests per second, as a ratio of bare FastAPI in the same run")
    axes.set_title(f"Throughput relative to the ceiling ({results['date'][:10]})")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _targets_on_chart(
    shown: list[tuple[str, dict[str, Any]]], scenarios: dict[str, dict[str, Any]]
) -> list[tuple[int, float]]:
    """Return (bar position, target ratio to the ceiling) for the bars that have a target."""
    reference = scenarios.get("redis_reference", {}).get("ratio_to_ceiling")
    targets = {"me_uncached": UNCACHED_VS_CEILING}
    if reference:
        # The cached read's target is relative to the reference: draw it where that lands.
        targets["me_cached"] = CACHED_VS_REFERENCE_RPS * reference
    positions = list(range(len(shown)))[::-1]
    return [
        (position, targets[name])
        for position, (name, _) in zip(positions, shown, strict=True)
        if name in targets
    ]
