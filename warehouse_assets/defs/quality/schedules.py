"""The nightly schedules: yesterday's klines, aggregates and checks for every registered symbol at 00:10 UTC,
then the warehouse health and freshness at 00:40 UTC.

Stopped by default; WAREHOUSE_SCHEDULES=true starts them (the demo does), or toggle them in the UI under
Automation.
"""

from datetime import timedelta

import dagster as dg

from warehouse_assets.defs.aggregates.checks import OHLCV_1D, OHLCV_1H
from warehouse_assets.defs.klines.assets import KLINES_KEY
from warehouse_assets.defs.partitions import BINANCE_SYMBOLS
from warehouse_assets.defs.quality.assets import WAREHOUSE_HEALTH
from warehouse_assets.lib import settings

nightly_binance_job = dg.define_asset_job(
    "nightly_binance",
    selection=dg.AssetSelection.assets(KLINES_KEY, OHLCV_1H, OHLCV_1D),  # their checks come with them
    description="One UTC day of one symbol: klines, then (if the blocking checks pass) the hourly and daily aggregates.",
)
warehouse_health_job = dg.define_asset_job(
    "warehouse_health_job",
    selection=dg.AssetSelection.assets(WAREHOUSE_HEALTH)
    | dg.AssetSelection.checks(dg.AssetCheckKey(KLINES_KEY, "fresh")),
    description="Table health (system.parts) and per-symbol klines freshness.",
)


def _status() -> dg.DefaultScheduleStatus:
    return (
        dg.DefaultScheduleStatus.RUNNING if settings.schedules_enabled() else dg.DefaultScheduleStatus.STOPPED
    )


@dg.schedule(
    name="nightly_binance_schedule",
    job=nightly_binance_job,
    cron_schedule="10 0 * * *",
    execution_timezone="UTC",
    default_status=_status(),
    description="00:10 UTC: yesterday's klines, aggregates and checks, one run per registered symbol.",
)
def nightly_binance(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
    yesterday = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    symbols = sorted(context.instance.get_dynamic_partitions(BINANCE_SYMBOLS.name or "binance_symbols"))
    if not symbols:
        return dg.SkipReason(
            "no symbols are registered (WAREHOUSE_SYMBOLS, or add binance_symbols partitions)"
        )
    tick = int(context.scheduled_execution_time.timestamp())
    return [
        dg.RunRequest(
            # The tick in the key: the same tick evaluated twice is dropped, a later tick is not.
            run_key=f"nightly:{yesterday}:{symbol}:{tick}",
            partition_key=dg.MultiPartitionKey({"date": yesterday, "symbol": symbol}),
            tags={"warehouse/schedule": "nightly"},
        )
        for symbol in symbols
    ]


@dg.schedule(
    name="warehouse_health_schedule",
    job=warehouse_health_job,
    cron_schedule="40 0 * * *",
    execution_timezone="UTC",
    default_status=_status(),
    description="00:40 UTC, after the nightly klines: warehouse health and per-symbol freshness.",
)
def warehouse_health_nightly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"health:{int(context.scheduled_execution_time.timestamp())}")
