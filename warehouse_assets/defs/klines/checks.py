"""Checks on what a klines run wrote, computed in the same step from the rows just read back.

(Computing them in-step avoids reading another run's partition; see reference/dagster.md §6.8.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg

from warehouse_assets.lib.klines_backfill import DayResult
from warehouse_assets.lib.klines_store import minute_ranges

OHLC = "ohlc_invariants"
DUPLICATES = "no_duplicate_minutes"
COMPLETE = "complete_days"
MAX_LISTED = 50  # rows listed in check metadata; the counts cover everything

CHECK_SPECS = [
    dg.AssetCheckSpec(
        OHLC,
        asset=["binance", "klines_1m"],
        blocking=True,
        description="low <= open, close <= high; volumes >= 0; minute-aligned open and close times. Blocking: a failure stops the aggregates downstream.",
    ),
    dg.AssetCheckSpec(
        DUPLICATES,
        asset=["binance", "klines_1m"],
        blocking=True,
        description="Exactly one row per minute in a plain SELECT (no FINAL). Blocking.",
    ),
    dg.AssetCheckSpec(
        COMPLETE,
        asset=["binance", "klines_1m"],
        description="1440 rows per day. WARN listing the missing minutes when the exchange itself served none for them; ERROR when the warehouse holds fewer rows than the exchange served.",
    ),
]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


def describe_minute_ranges(open_times: Sequence[int], limit: int = 20) -> str:
    """'2020-01-02T10:00Z–2020-01-02T10:04Z, 2020-01-02T11:00Z' (at most `limit` ranges)."""
    ranges = minute_ranges(open_times)
    listed = ", ".join(f"{_iso(a)}–{_iso(b)}" if a != b else _iso(a) for a, b in ranges[:limit])
    return listed + (f", … ({len(ranges)} ranges)" if len(ranges) > limit else "")


def _table(rows: list[str], header: str) -> dg.MetadataValue:
    shown = rows[:MAX_LISTED]
    more = f"\n\n… and {len(rows) - MAX_LISTED} more" if len(rows) > MAX_LISTED else ""
    return dg.MetadataValue.md(header + "\n" + "\n".join(shown) + more)


def ohlc_result(days: Sequence[DayResult]) -> dg.AssetCheckResult:
    bad = [
        d
        for d in days
        if d.quality.ohlc_violations or d.quality.negative_volumes or d.quality.misaligned_rows
    ]
    rows = [
        f"| {d.symbol} | {d.quality.day} | {d.quality.ohlc_violations} | {d.quality.negative_volumes} | {d.quality.misaligned_rows} |"
        for d in bad
    ]
    return dg.AssetCheckResult(
        check_name=OHLC,
        passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "ohlc_violations": sum(d.quality.ohlc_violations for d in days),
            "negative_volumes": sum(d.quality.negative_volumes for d in days),
            "misaligned_rows": sum(d.quality.misaligned_rows for d in days),
            "failing_days": _table(
                rows, "| symbol | day | ohlc | negative volume | misaligned |\n|---|---|---|---|---|"
            ),
        },
    )


def duplicates_result(days: Sequence[DayResult]) -> dg.AssetCheckResult:
    bad = [d for d in days if d.quality.duplicate_rows]
    rows = [f"| {d.symbol} | {d.quality.day} | {d.quality.duplicate_rows} |" for d in bad]
    return dg.AssetCheckResult(
        check_name=DUPLICATES,
        passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "duplicate_rows": sum(d.quality.duplicate_rows for d in days),
            "failing_days": _table(rows, "| symbol | day | duplicate rows |\n|---|---|---|"),
        },
    )


def completeness_result(days: Sequence[DayResult]) -> dg.AssetCheckResult:
    lost = [d for d in days if d.quality.distinct_minutes < d.fetched]
    gaps = [d for d in days if d.quality.missing_minutes and d not in lost]
    rows = []
    for d in lost + gaps:
        listed = describe_minute_ranges(d.quality.missing_minutes)
        cause = "warehouse lost rows" if d in lost else "exchange served none"
        rows.append(
            f"| {d.symbol} | {d.quality.day} | {len(d.quality.missing_minutes)} | {cause} | {listed} |"
        )
    missing_total = sum(len(d.quality.missing_minutes) for d in days)
    return dg.AssetCheckResult(
        check_name=COMPLETE,
        passed=not (lost or gaps),
        severity=dg.AssetCheckSeverity.ERROR if lost else dg.AssetCheckSeverity.WARN,
        metadata={
            "missing_minutes": missing_total,
            "incomplete_days": len(lost) + len(gaps),
            "largest_gap_minutes": max(
                (b - a) // 60_000 + 1 for d in days for a, b in minute_ranges(d.quality.missing_minutes)
            )
            if missing_total
            else 0,
            "missing": _table(
                rows, "| symbol | day | missing minutes | cause | minutes (UTC) |\n|---|---|---|---|---|"
            ),
        },
    )


def check_results(days: Sequence[DayResult]) -> list[dg.AssetCheckResult]:
    return [ohlc_result(days), duplicates_result(days), completeness_result(days)]
