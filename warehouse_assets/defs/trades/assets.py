"""`binance/agg_trades` and `binance/candles_1m`: aggregate trades per (UTC day, symbol), and the 1m candles
built from them, in one step so the candles always match the trades they were built from.

Selecting only `binance/candles_1m` rebuilds candles from the trades already in the warehouse.
"""

import asyncio

import dagster as dg

from warehouse_assets.defs.partitions import (
    BACKFILL_POLICY,
    BINANCE_API_POOL,
    BINANCE_DAILY_BY_SYMBOL,
    days_by_symbol,
)
from warehouse_assets.defs.resources import BinanceResource, WarehouseResource, column_schema
from warehouse_assets.defs.trades.checks import AGG_TRADES, CHECK_SPECS, check_results
from warehouse_assets.lib import trades_store
from warehouse_assets.lib.trades_backfill import DayLoad, backfill_agg_trades, rebuild_days
from warehouse_assets.lib.warehouse import Warehouse

CANDLES = dg.AssetKey(["binance", "candles_1m"])
_COMMON = {"kinds": {"clickhouse", "python"}, "owners": ["team:market-data"], "group_name": "binance"}


def _specs() -> list[dg.AssetSpec]:
    # Built in a function: the defs loader would also pick up specs lying at module level.
    return [
        dg.AssetSpec(
            AGG_TRADES,
            description=(
                "Binance spot aggregate trades (`market.trades`) for each UTC day and registered symbol: the "
                "sha256-verified data.binance.vision file where published (parsed by ClickHouse, checked against "
                "the day's aggregate ids per REST), REST /api/v3/aggTrades otherwise (column `source`). Exact "
                "decimals, µs timestamps whatever the source; re-materializing replaces the day."
            ),
            skippable=True,
            **_COMMON,  # type: ignore[arg-type]
        ),
        dg.AssetSpec(
            CANDLES,
            deps=[AGG_TRADES],
            description=(
                "1-minute candles built from binance/agg_trades (`market.candles_1m`): open/close by aggregate "
                "trade id, exact volumes and quote volumes, trade counts as in klines. Rebuilt per day, so "
                "re-loading trades never double counts."
            ),
            skippable=True,
            **_COMMON,  # type: ignore[arg-type]
        ),
    ]


def _partition_metadata(load: DayLoad) -> tuple[dict[str, object], dict[str, object]]:
    f = load.facts
    trades_meta: dict[str, object] = {
        "dagster/partition_row_count": f.row_count,
        "rows": f.row_count,
        "trades": f.trades,
        "volume": float(f.volume),  # a Plots trend; the exact value is in the warehouse
        "missing_ids": f.missing_ids,
        "source": load.source,
    }
    if f.first_id is not None:
        trades_meta["first_trade_id"] = f.first_id
        trades_meta["last_trade_id"] = f.last_id
    candles_meta: dict[str, object] = {
        "dagster/partition_row_count": load.candles.built,
        "candles": load.candles.built,
        "mismatched_minutes_vs_klines": len(load.reconciliation.mismatches),
    }
    return trades_meta, candles_meta


@dg.multi_asset(
    name="binance_agg_trades",
    specs=_specs(),
    check_specs=CHECK_SPECS,
    partitions_def=BINANCE_DAILY_BY_SYMBOL,
    backfill_policy=BACKFILL_POLICY,
    pool=BINANCE_API_POOL,
    can_subset=True,
)
def agg_trades_and_candles(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, binance: BinanceResource
):  # type: ignore[no-untyped-def]
    wh = warehouse.get()
    plan = days_by_symbol(context.partition_keys)
    fetch = AGG_TRADES in context.selected_asset_keys
    context.log.info(
        "%s %d partitions (%s) in %s",
        "loading trades and candles for" if fetch else "rebuilding candles from stored trades for",
        len(context.partition_keys),
        ", ".join(f"{s}: {len(d)} days" for s, d in plan.items()),
        wh.describe(),
    )
    loads: list[DayLoad] = []

    def on_day(load: DayLoad) -> None:
        loads.append(load)
        context.log.info(
            "%s %s: %d trades from %s (%d older rows replaced), %d candles",
            load.symbol,
            load.day,
            load.write.inserted,
            load.source,
            load.write.replaced_older,
            load.candles.built,
        )

    if fetch:
        asyncio.run(_fetch(wh, binance, plan, on_day))
    else:
        for symbol, days in plan.items():
            for load in rebuild_days(wh, symbol, days):
                on_day(load)

    # Per-partition metadata after the work: each call is validated against the run's whole key range.
    for load in loads:
        key = dg.MultiPartitionKey({"date": load.day.isoformat(), "symbol": load.symbol})
        trades_meta, candles_meta = _partition_metadata(load)
        if fetch:
            context.add_asset_metadata(trades_meta, asset_key=AGG_TRADES, partition_key=key)
        if CANDLES in context.selected_asset_keys:
            context.add_asset_metadata(candles_meta, asset_key=CANDLES, partition_key=key)

    with wh.session() as client:
        schemas = {
            key: column_schema(client, wh, table)
            for key, table in ((AGG_TRADES, trades_store.TABLE), (CANDLES, trades_store.CANDLES_TABLE))
        }
    if fetch:
        selected_checks = {key.name for key in context.selected_asset_check_keys}
        yield dg.MaterializeResult(
            asset_key=AGG_TRADES,
            metadata={
                "dagster/table_name": f"{wh.database}.{trades_store.TABLE}",
                "dagster/column_schema": schemas[AGG_TRADES],
                "rows_in_run": sum(d.facts.row_count for d in loads),
                "from_archive_days": sum(d.source == "archive" for d in loads),
                "from_rest_days": sum(d.source == "rest" for d in loads),
            },
            check_results=[r for r in check_results(loads) if r.check_name in selected_checks],
        )
    if CANDLES in context.selected_asset_keys:
        yield dg.MaterializeResult(
            asset_key=CANDLES,
            metadata={
                "dagster/table_name": f"{wh.database}.{trades_store.CANDLES_TABLE}",
                "dagster/column_schema": schemas[CANDLES],
                "candles_in_run": sum(d.candles.built for d in loads),
                "mismatched_minutes_vs_klines": sum(len(d.reconciliation.mismatches) for d in loads),
            },
        )


async def _fetch(wh: Warehouse, binance: BinanceResource, plan: dict, on_day) -> None:  # type: ignore[no-untyped-def,type-arg]
    async with binance.connected(plan) as (client, archive):
        # Symbols one after another: a day of a liquid symbol already keeps both cores busy in ClickHouse.
        for symbol, days in plan.items():
            await backfill_agg_trades(wh, client, archive, symbol, days, on_day=on_day)
