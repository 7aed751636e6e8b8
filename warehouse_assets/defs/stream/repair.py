"""`binance_gap_repair`: one run fills the holes the gap-repair sensor found for one symbol, from REST."""

import asyncio

import dagster as dg

from warehouse_assets.defs.partitions import BINANCE_API_POOL
from warehouse_assets.defs.resources import BinanceResource, WarehouseResource
from warehouse_assets.lib import gap_repair

KLINES = dg.AssetKey(["binance", "klines_1m"])
AGG_TRADES = dg.AssetKey(["binance", "agg_trades"])


class GapRepairConfig(dg.Config):
    symbol: str
    missing_minutes: list[list[int]]  # inclusive [first, last] open times, epoch ms
    trade_gaps: list[list[int]]  # [id before, id after]: the ids strictly between are missing


@dg.op(
    pool=BINANCE_API_POOL,
    description="Fetch exactly the missing minutes and aggregate ids from REST and write them.",
)
def repair_gaps(
    context: dg.OpExecutionContext,
    config: GapRepairConfig,
    warehouse: WarehouseResource,
    binance: BinanceResource,
) -> None:
    gaps = gap_repair.Gaps(
        config.symbol,
        [(int(a), int(b)) for a, b in config.missing_minutes],
        [(int(a), int(b)) for a, b in config.trade_gaps],
    )

    async def run() -> gap_repair.Repair:
        async with binance.client() as client:
            return await gap_repair.repair(warehouse.get(), client, gaps)

    result = asyncio.run(run())
    context.log.info(
        "%s: %d of %d missing minutes filled (%d the exchange lacks), %d of %d missing trades filled (%d lacking)",
        gaps.symbol, result.minutes_filled, gaps.minutes, result.minutes_exchange_gap,
        result.trades_filled, gaps.trade_ids, result.trade_ids_exchange_gap,
    )  # fmt: skip
    for key, filled, lacking in (
        (KLINES, result.minutes_filled, result.minutes_exchange_gap),
        (AGG_TRADES, result.trades_filled, result.trade_ids_exchange_gap),
    ):
        context.log_event(
            dg.AssetObservation(
                asset_key=key,
                metadata={
                    "gap_repair/filled": filled,
                    "gap_repair/exchange_gap": lacking,
                    "symbol": gaps.symbol,
                },
            )
        )


@dg.job(
    name="binance_gap_repair",
    description="Fills holes in recent klines and aggregate trades of one symbol from REST (launched by the stream_gap_repair sensor).",
    tags={"warehouse/kind": "gap_repair"},
)
def binance_gap_repair() -> None:
    repair_gaps()
