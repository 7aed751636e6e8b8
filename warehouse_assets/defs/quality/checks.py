"""`fresh`: the newest complete UTC day of each registered symbol is no older than KLINES_FRESHNESS_HOURS.

Dagster's own freshness policy (applied in definitions.py) watches the asset as a whole; this check looks
at every symbol, so one symbol falling behind is not hidden by the others.
"""

from datetime import UTC, datetime

import dagster as dg

from warehouse_assets.defs.klines.assets import KLINES_KEY
from warehouse_assets.defs.partitions import BINANCE_SYMBOLS
from warehouse_assets.defs.resources import WarehouseResource
from warehouse_assets.lib import quality, settings
from warehouse_assets.lib.klines_backfill import EXCHANGE


@dg.asset_check(
    asset=KLINES_KEY,
    name="fresh",
    description=(
        "For every registered symbol, the newest ended UTC day with klines is at most KLINES_FRESHNESS_HOURS "
        "(default 36) old. WARN listing the symbols behind."
    ),
)
def klines_fresh(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    limit = settings.klines_freshness_hours()
    symbols = sorted(context.instance.get_dynamic_partitions(BINANCE_SYMBOLS.name or "binance_symbols"))
    wh = warehouse.get()
    with wh.session() as client:
        states = quality.klines_freshness(
            client, wh.database, exchange=EXCHANGE, symbols=symbols, now=datetime.now(UTC)
        )
    stale = [s for s in states if not s.fresh(limit)]
    ages = [s.age_hours for s in states if s.age_hours is not None]
    return dg.AssetCheckResult(
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "limit_hours": limit,
            "symbols": len(states),
            "stale_symbols": len(stale),
            "oldest_age_hours": max(ages) if ages else -1.0,
            "by_symbol": dg.MetadataValue.md(
                "| symbol | newest day | minutes | age (h) |\n|---|---|---|---|\n"
                + "\n".join(
                    f"| {s.symbol} | {s.newest_day or 'none in 60 days'} | {s.minutes} | "
                    f"{s.age_hours if s.age_hours is not None else '—'} |"
                    for s in states
                )
            ),
        },
    )
