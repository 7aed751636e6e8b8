"""`schema`: a blocking check that validates the stored klines of a run's partitions against the pandera model.

It reads the warehouse (not the run's own writes), so it also catches bad rows that reached `klines_1m`
another way (a stream, a manual fix). It runs after the klines step and before the aggregates: a failure
stops them being built from bad minutes. Run it alone (with the aggregates) to re-check stored days.
"""

import dagster as dg

from warehouse_assets.defs.klines.assets import KLINES_KEY
from warehouse_assets.defs.partitions import BINANCE_DAILY_BY_SYMBOL, days_by_symbol
from warehouse_assets.defs.resources import WarehouseResource
from warehouse_assets.lib import aggregates_store
from warehouse_assets.lib.klines_backfill import EXCHANGE

MAX_LISTED = 50


@dg.asset_check(
    asset=KLINES_KEY,
    name="schema",
    blocking=True,
    partitions_def=BINANCE_DAILY_BY_SYMBOL,
    description=(
        "The stored klines of each partition satisfy the `Klines1m` pandera model (types, positive prices, "
        "non-negative volumes, OHLC invariants, taker volumes within volumes, minute alignment, one row per "
        "minute). Blocking: the hourly and daily aggregates are not built on a failure."
    ),
)
def klines_schema(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    wh = warehouse.get()
    failing: list[str] = []
    rows = checked = failures = 0
    with wh.session() as client:
        for symbol, days in days_by_symbol(context.partition_keys).items():
            for day in sorted(days):
                report = aggregates_store.validate_klines_day(
                    client, wh.database, exchange=EXCHANGE, symbol=symbol, day=day
                )
                checked += 1
                rows += report.rows
                failures += report.failure_count
                if not report.passed:
                    failing.append(
                        f"**{symbol} {day}** ({report.failing_rows} rows)\n\n{report.markdown(10)}"
                    )
    return dg.AssetCheckResult(
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "partitions_checked": checked,
            "rows_checked": rows,
            "failures": failures,
            "failing_partitions": len(failing),
            "failure_cases": dg.MetadataValue.md("\n\n".join(failing[:MAX_LISTED]) or "none"),
        },
    )
