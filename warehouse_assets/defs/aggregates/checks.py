"""Reconciliation checks on the aggregates, computed in the same step from the rows just written."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from warehouse_assets.lib.aggregates_store import DayBuild, Mismatch

OHLCV_1H = dg.AssetKey(["binance", "ohlcv_1h"])
OHLCV_1D = dg.AssetKey(["binance", "ohlcv_1d"])
HOURS_MATCH = "hours_match_minutes"
DAYS_MATCH = "days_match_hours"
MAX_LISTED = 50
_FIELDS = "open, high, low, close, volume, quote volume, trades, taker buy base, taker buy quote, minutes"

CHECK_SPECS = [
    dg.AssetCheckSpec(
        HOURS_MATCH,
        asset=OHLCV_1H,
        description="Every hour equals the aggregation of its minutes in binance/klines_1m, exactly (all fields); lists the differing hours.",
    ),
    dg.AssetCheckSpec(
        DAYS_MATCH,
        asset=OHLCV_1D,
        description="Every day equals the aggregation of its hours in binance/ohlcv_1h, exactly (all fields); lists the differing days.",
    ),
]


def _rows(builds: Sequence[DayBuild], mismatches_of: str) -> list[tuple[str, Mismatch]]:
    return [(b.symbol, m) for b in builds for m in getattr(b, mismatches_of)]


def _result(
    key: dg.AssetKey, name: str, differing: list[tuple[str, Mismatch]], source: str
) -> dg.AssetCheckResult:
    lines = [
        f"| {symbol} | {m.open_time} | {m.from_sources if m.from_sources is not None else 'missing'} | "
        f"{m.stored if m.stored is not None else 'missing'} |"
        for symbol, m in differing[:MAX_LISTED]
    ]
    more = f"\n\n… and {len(differing) - MAX_LISTED} more" if len(differing) > MAX_LISTED else ""
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=not differing,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "differing_rows": len(differing),
            "differences": dg.MetadataValue.md(
                f"({_FIELDS})\n\n| symbol | open time | from {source} | stored |\n|---|---|---|---|\n"
                + "\n".join(lines)
                + more
            ),
        },
    )


def check_results(builds: Sequence[DayBuild]) -> list[dg.AssetCheckResult]:
    return [
        _result(OHLCV_1H, HOURS_MATCH, _rows(builds, "hour_mismatches"), "minutes"),
        _result(OHLCV_1D, DAYS_MATCH, _rows(builds, "day_mismatches"), "hours"),
    ]
