"""Registers the symbols of WAREHOUSE_SYMBOLS as `binance_symbols` partitions, after checking exchangeInfo.

Symbols can also be added by hand in the UI (the asset's partition view, "add partition"); the asset
validates them before fetching anything.
"""

import asyncio

import dagster as dg

from warehouse_assets.defs.partitions import BINANCE_SYMBOLS
from warehouse_assets.lib import settings
from warehouse_assets.lib.binance.rest import BinanceRestClient
from warehouse_assets.lib.errors import UnknownSymbolError


async def listed_symbols(symbols: list[str]) -> tuple[list[str], dict[str, str]]:
    """(listed symbols, {unlisted symbol: reason}) according to exchangeInfo."""
    async with BinanceRestClient() as client:
        info = await client.exchange_info()
    ok = [s for s in symbols if s in info.symbols]
    bad = {s: str(UnknownSymbolError(s)) for s in symbols if s not in info.symbols}
    return ok, bad


@dg.sensor(
    name="register_binance_symbols",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds each symbol of WAREHOUSE_SYMBOLS (comma-separated) that Binance lists to the binance_symbols partitions.",
)
def register_binance_symbols(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    wanted = settings.configured_symbols()
    if not wanted:
        return dg.SkipReason(
            "WAREHOUSE_SYMBOLS is empty; add symbols there or in the UI (binance_symbols partitions)"
        )
    existing = set(context.instance.get_dynamic_partitions(BINANCE_SYMBOLS.name or "binance_symbols"))
    new = [s for s in wanted if s not in existing]
    if not new:
        return dg.SkipReason(f"all {len(wanted)} symbols of WAREHOUSE_SYMBOLS are registered")
    listed, unlisted = asyncio.run(listed_symbols(new))
    for reason in unlisted.values():
        context.log.error(reason)
    if not listed:
        return dg.SkipReason("not registered: " + "; ".join(unlisted.values()))
    context.log.info("registering %s", ", ".join(listed))
    return dg.SensorResult(dynamic_partitions_requests=[BINANCE_SYMBOLS.build_add_request(listed)])
