"""`binance/ohlcv_1h` and `binance/ohlcv_1d`: hourly and daily OHLCV per (UTC day, symbol) from the 1m klines.

Built together in one step (a day's hours, then the day from its hours), downstream of `binance/klines_1m`.
A backfill of klines also produces them: their automation condition requests the aggregates of any day
whose klines were materialized, backfilled history included (the `aggregates_automation` sensor), and the
nightly job selects them with the klines.
"""

from datetime import date

import dagster as dg

from warehouse_assets.defs.aggregates.checks import CHECK_SPECS, OHLCV_1D, OHLCV_1H, check_results
from warehouse_assets.defs.freshness import NIGHTLY_FRESHNESS
from warehouse_assets.defs.klines.assets import KLINES_KEY
from warehouse_assets.defs.partitions import BACKFILL_POLICY, BINANCE_DAILY_BY_SYMBOL, days_by_symbol
from warehouse_assets.defs.resources import WarehouseResource
from warehouse_assets.lib import aggregates_store
from warehouse_assets.lib.aggregates_store import BadKlinesError, DayBuild
from warehouse_assets.lib.klines_backfill import EXCHANGE

# eager() alone ignores partitions outside the latest time window, i.e. every backfilled day
# (reference/dagster.md §2): without that clause, a klines backfill propagates to its days.
AUTOMATION = dg.AutomationCondition.eager().without(dg.AutomationCondition.in_latest_time_window())
_COMMON = {
    "kinds": {"clickhouse"},
    "owners": ["team:market-data"],
    "group_name": "binance",
    "freshness_policy": NIGHTLY_FRESHNESS,
}


def _specs() -> list[dg.AssetSpec]:
    # Built in a function: the defs loader would also pick up specs lying at module level.
    return [
        dg.AssetSpec(
            OHLCV_1H,
            deps=[KLINES_KEY],
            automation_condition=AUTOMATION,
            description=(
                "Hourly OHLCV (`market.ohlcv_1h`) from binance/klines_1m: open = first minute's open, close = "
                "last minute's close, high/low extremes, exact sums; `minutes` < 60 marks an incomplete hour."
            ),
            **_COMMON,  # type: ignore[arg-type]
        ),
        dg.AssetSpec(
            OHLCV_1D,
            deps=[OHLCV_1H],
            automation_condition=AUTOMATION,
            description=(
                "Daily OHLCV (`market.ohlcv_1d`, UTC days) from binance/ohlcv_1h; `minutes` < 1440 marks an "
                "incomplete day."
            ),
            **_COMMON,  # type: ignore[arg-type]
        ),
    ]


@dg.multi_asset(
    name="binance_ohlcv",
    specs=_specs(),
    check_specs=CHECK_SPECS,
    partitions_def=BINANCE_DAILY_BY_SYMBOL,
    backfill_policy=BACKFILL_POLICY,
)
def ohlcv(context: dg.AssetExecutionContext, warehouse: WarehouseResource):  # type: ignore[no-untyped-def]
    wh = warehouse.get()
    plan = days_by_symbol(context.partition_keys)
    builds: list[DayBuild] = []
    with wh.session() as client:
        # Every day's klines are validated before anything is built: a bad day fails the whole run.
        bad = []
        for symbol, days in plan.items():
            for day in sorted(days):
                report = aggregates_store.validate_klines_day(
                    client, wh.database, exchange=EXCHANGE, symbol=symbol, day=day
                )
                if not report.passed:
                    bad.append(BadKlinesError(symbol, day.isoformat(), report))
        if bad:
            raise dg.Failure(
                description="; ".join(str(e) for e in bad[:5])
                + (f"; … {len(bad) - 5} more" if len(bad) > 5 else ""),
                metadata={
                    "bad_days": len(bad),
                    "failure_cases": dg.MetadataValue.md(
                        "\n\n".join(f"**{e.symbol} {e.day}**\n\n{e.report.markdown(10)}" for e in bad[:20])
                    ),
                },
            )
        for symbol, days in plan.items():
            for day in sorted(days):
                builds.append(_rebuild(client, wh.database, symbol, day))
    context.log.info("built the hours and days of %d partitions", len(builds))

    for build in builds:
        key = dg.MultiPartitionKey({"date": build.day, "symbol": build.symbol})
        context.add_asset_metadata(
            {
                "dagster/partition_row_count": build.hours,
                "hours": build.hours,
                "incomplete_hours": build.incomplete_hours,
                "minutes": build.minutes,
                "reconciliation_differences": len(build.hour_mismatches),
            },
            asset_key=OHLCV_1H,
            partition_key=key,
        )
        context.add_asset_metadata(
            {
                "dagster/partition_row_count": 1 if build.hours else 0,
                "minutes": build.minutes,
                "missing_minutes": 1440 - build.minutes,
                "reconciliation_differences": len(build.day_mismatches),
            },
            asset_key=OHLCV_1D,
            partition_key=key,
        )
    results = check_results(builds)
    for asset_key, table in (
        (OHLCV_1H, aggregates_store.HOURS_TABLE),
        (OHLCV_1D, aggregates_store.DAYS_TABLE),
    ):
        yield dg.MaterializeResult(
            asset_key=asset_key,
            metadata={
                "dagster/table_name": f"{wh.database}.{table}",
                "incomplete_hours_in_run": sum(b.incomplete_hours for b in builds),
                "reconciliation_differences_in_run": sum(
                    len(b.hour_mismatches if asset_key == OHLCV_1H else b.day_mismatches) for b in builds
                ),
            },
            check_results=[r for r in results if r.asset_key == asset_key],
        )


def _rebuild(client: aggregates_store.Client, database: str, symbol: str, day: date) -> DayBuild:
    return aggregates_store.rebuild_day(client, database, exchange=EXCHANGE, symbol=symbol, day=day)
