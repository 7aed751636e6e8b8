"""Checks on what a trades run wrote, computed in the same step from the rows read back (plain SELECT)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg

from warehouse_assets.lib.trades_backfill import DayLoad

AGG_TRADES = dg.AssetKey(["binance", "agg_trades"])
CONTIGUOUS = "contiguous_ids"
CHAIN = "trade_id_chain"
RECONCILED = "matches_klines"
MAX_LISTED = 50  # rows listed in check metadata; the counts cover everything

CHECK_SPECS = [
    dg.AssetCheckSpec(
        CONTIGUOUS,
        asset=AGG_TRADES,
        description="Within each UTC day, aggregate ids are contiguous and each appears once in a plain SELECT.",
    ),
    dg.AssetCheckSpec(
        CHAIN,
        asset=AGG_TRADES,
        description="The trade-id chain is unbroken: each trade's first_trade_id = the previous last_trade_id + 1.",
    ),
    dg.AssetCheckSpec(
        RECONCILED,
        asset=AGG_TRADES,
        description=(
            "For every minute, trade count, volume and quote volume of the candles built from trades equal "
            "binance/klines_1m exactly. ERROR listing the minutes that differ; WARN for days without klines "
            "to compare with (materialize binance/klines_1m for them)."
        ),
    ),
]


def _table(rows: list[str], header: str) -> dg.MetadataValue:
    more = f"\n\n… and {len(rows) - MAX_LISTED} more" if len(rows) > MAX_LISTED else ""
    return dg.MetadataValue.md(header + "\n" + "\n".join(rows[:MAX_LISTED]) + more)


def _minute(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


def contiguous_result(loads: Sequence[DayLoad]) -> dg.AssetCheckResult:
    bad = [d for d in loads if d.facts.id_gaps or d.facts.duplicate_rows]
    rows = [
        f"| {d.symbol} | {d.day} | {d.facts.missing_ids} | {d.facts.duplicate_rows} | "
        + ", ".join(f"{a}→{b}" for a, b in d.facts.first_id_gaps)
        + " |"
        for d in bad
    ]
    return dg.AssetCheckResult(
        asset_key=AGG_TRADES,
        check_name=CONTIGUOUS,
        passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "missing_ids": sum(d.facts.missing_ids for d in loads),
            "duplicate_rows": sum(d.facts.duplicate_rows for d in loads),
            "failing_days": _table(
                rows, "| symbol | day | missing ids | duplicates | first gaps |\n|---|---|---|---|---|"
            ),
        },
    )


def chain_result(loads: Sequence[DayLoad]) -> dg.AssetCheckResult:
    bad = [d for d in loads if d.facts.chain_breaks]
    rows = [
        f"| {d.symbol} | {d.day} | {d.facts.chain_breaks} | "
        + ", ".join(f"{a}→{b}" for a, b in d.facts.first_chain_breaks)
        + " |"
        for d in bad
    ]
    return dg.AssetCheckResult(
        asset_key=AGG_TRADES,
        check_name=CHAIN,
        passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "chain_breaks": sum(d.facts.chain_breaks for d in loads),
            "failing_days": _table(
                rows, "| symbol | day | breaks | first (last_trade_id→first_trade_id) |\n|---|---|---|---|"
            ),
        },
    )


def reconciliation_result(loads: Sequence[DayLoad]) -> dg.AssetCheckResult:
    mismatches = [(d.symbol, m) for d in loads for m in d.reconciliation.mismatches]
    not_compared = [d for d in loads if d.day.isoformat() not in d.reconciliation.kline_minutes_by_day]
    rows = [
        f"| {symbol} | {_minute(m.open_ms)} | {m.kline_trades} | {m.candle_trades} | {m.kline_volume.normalize()} | "
        f"{m.candle_volume.normalize()} | {m.kline_quote_volume.normalize()} | {m.candle_quote_volume.normalize()} |"
        for symbol, m in mismatches
    ]
    return dg.AssetCheckResult(
        asset_key=AGG_TRADES,
        check_name=RECONCILED,
        passed=not mismatches and not not_compared,
        severity=dg.AssetCheckSeverity.ERROR if mismatches else dg.AssetCheckSeverity.WARN,
        metadata={
            "mismatched_minutes": len(mismatches),
            "days_compared": len(loads) - len(not_compared),
            "days_without_klines": len(not_compared),
            "not_compared": dg.MetadataValue.text(
                ", ".join(f"{d.symbol} {d.day}" for d in not_compared[:MAX_LISTED]) or "none"
            ),
            "mismatches": _table(
                rows,
                "| symbol | minute | kline trades | candle trades | kline volume | candle volume | "
                "kline quote volume | candle quote volume |\n|---|---|---|---|---|---|---|---|",
            ),
        },
    )


def check_results(loads: Sequence[DayLoad]) -> list[dg.AssetCheckResult]:
    return [contiguous_result(loads), chain_result(loads), reconciliation_result(loads)]
