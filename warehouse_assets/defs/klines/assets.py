"""`binance/klines_1m`: Binance spot 1m klines per (UTC day, symbol), replaced idempotently in ClickHouse."""

import asyncio

import dagster as dg

from warehouse_assets.defs.freshness import NIGHTLY_FRESHNESS
from warehouse_assets.defs.klines.checks import CHECK_SPECS, check_results, describe_minute_ranges
from warehouse_assets.defs.partitions import (
    BACKFILL_POLICY,
    BINANCE_API_POOL,
    BINANCE_DAILY_BY_SYMBOL,
    days_by_symbol,
)
from warehouse_assets.defs.resources import BinanceResource, WarehouseResource, column_schema
from warehouse_assets.lib import klines_store
from warehouse_assets.lib.klines_backfill import BatchResult, DayResult, backfill_symbol

KLINES_KEY = dg.AssetKey(["binance", "klines_1m"])


def _partition_metadata(result: DayResult) -> dict[str, object]:
    q = result.quality
    meta: dict[str, object] = {
        "dagster/partition_row_count": q.row_count,
        "rows": q.row_count,
        "fetched_rows": result.fetched,
        "missing_minutes": len(q.missing_minutes),
        "duplicate_rows": q.duplicate_rows,
    }
    if q.missing_minutes:
        meta["missing_minute_ranges"] = dg.MetadataValue.text(describe_minute_ranges(q.missing_minutes))
    if q.first_open_ms is not None and q.last_open_ms is not None:
        meta["first_open_time"] = dg.MetadataValue.timestamp(q.first_open_ms / 1000)
        meta["last_open_time"] = dg.MetadataValue.timestamp(q.last_open_ms / 1000)
    return meta


@dg.asset(
    key=KLINES_KEY,
    partitions_def=BINANCE_DAILY_BY_SYMBOL,
    backfill_policy=BACKFILL_POLICY,
    pool=BINANCE_API_POOL,
    kinds={"clickhouse", "python"},
    owners=["team:market-data"],
    group_name="binance",
    check_specs=CHECK_SPECS,
    freshness_policy=NIGHTLY_FRESHNESS,
    description=(
        "Binance spot 1-minute klines (OHLCV, trade count, taker volumes) for each UTC day and registered "
        "symbol: whole days from the sha256-verified data.binance.vision archive where published, REST "
        "/api/v3/klines otherwise (column `source`), stored exactly (decimal strings, never float) in "
        "`market.klines_1m`. Re-materializing a partition replaces it: a plain SELECT sees one row per minute."
    ),
)
def klines_1m(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, binance: BinanceResource
) -> dg.MaterializeResult:
    wh = warehouse.get()
    plan = days_by_symbol(context.partition_keys)
    context.log.info(
        "writing %d partitions (%s) into %s",
        len(context.partition_keys),
        ", ".join(f"{s}: {len(d)} days" for s, d in plan.items()),
        wh.describe(),
    )
    all_days: list[DayResult] = []

    def on_batch(batch: BatchResult) -> None:
        all_days.extend(batch.days)
        context.log.info(
            "%s %s..%s: %d rows written (%d older rows replaced)",
            batch.symbol,
            batch.first_day,
            batch.last_day,
            batch.inserted,
            batch.replaced_older,
        )

    async def run() -> None:
        async with binance.connected(plan) as (client, archive):
            await asyncio.gather(
                *(
                    backfill_symbol(wh, client, s, days, on_batch=on_batch, archive=archive)
                    for s, days in plan.items()
                )
            )

    asyncio.run(run())

    # Per-partition metadata after the downloads: Dagster validates each call against the whole run's
    # key range (O(run size) per call), which would otherwise stall the fetch pipeline.
    for day in all_days:
        key = dg.MultiPartitionKey({"date": day.quality.day, "symbol": day.symbol})
        context.add_asset_metadata(_partition_metadata(day), partition_key=key)

    with wh.session() as client:
        schema = column_schema(client, wh, klines_store.TABLE)
    return dg.MaterializeResult(
        metadata={
            "dagster/table_name": f"{wh.database}.{klines_store.TABLE}",
            "dagster/column_schema": schema,
            "warehouse": wh.describe(),
            "rows_in_run": sum(d.quality.row_count for d in all_days),
            "missing_minutes_in_run": sum(len(d.quality.missing_minutes) for d in all_days),
        },
        check_results=check_results(all_days),
    )
