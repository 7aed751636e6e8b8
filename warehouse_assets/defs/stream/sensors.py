"""`stream_gap_repair`: scans the recent window of every registered symbol for holes and launches repairs.

Holes come from stream outages, restarts and skipped messages. The run key holds the scan time, so a later
repair of the same range is not dropped as a duplicate (reference/dagster.md §6.3). Gaps found are recorded
as observations with numeric metadata, so the assets' Plots show them over time.
"""

import time

import dagster as dg

from warehouse_assets.defs.partitions import BINANCE_SYMBOLS
from warehouse_assets.defs.resources import WarehouseResource
from warehouse_assets.defs.stream import repair
from warehouse_assets.lib import gap_repair, settings
from warehouse_assets.lib.records import MINUTE_MS
from warehouse_assets.lib.warehouse import WarehouseLockedError

SETTLE_MS = 2 * MINUTE_MS  # the newest minutes are still being flushed by the stream


@dg.sensor(
    name="stream_gap_repair",
    job=repair.binance_gap_repair,
    minimum_interval_seconds=300,
    # Part of streaming: on with the stream supervisor (WAREHOUSE_STREAM=true), or toggled in the UI.
    default_status=dg.DefaultSensorStatus.RUNNING
    if settings.stream_enabled()
    else dg.DefaultSensorStatus.STOPPED,
    description="Every 5 minutes: missing minutes and aggregate-id holes in the last STREAM_REPAIR_WINDOW_HOURS (48) of each registered symbol, repaired from REST.",
)
def stream_gap_repair(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    symbols = sorted(context.instance.get_dynamic_partitions(BINANCE_SYMBOLS.name or "binance_symbols"))
    if not symbols:
        return dg.SkipReason("no symbols are registered")
    now_ms = int(time.time() * 1000)
    start_ms = now_ms - int(settings.stream_repair_window_hours() * 3_600_000)
    wh = warehouse.get()
    wh.lock_timeout = min(wh.lock_timeout, 20.0)  # a sensor tick must end within 60 s
    try:
        with wh.session() as client:
            found = [
                gap_repair.find_gaps(
                    client, wh.database, symbol=s, start_ms=start_ms, end_ms=now_ms - SETTLE_MS
                )
                for s in symbols
            ]
    except WarehouseLockedError as exc:
        return dg.SkipReason(f"the warehouse is busy; next tick: {exc}")
    requests = [
        dg.RunRequest(
            run_key=f"repair:{g.symbol}:{now_ms}",
            run_config={
                "ops": {
                    "repair_gaps": {
                        "config": {
                            "symbol": g.symbol,
                            "missing_minutes": [list(r) for r in g.missing_minutes],
                            "trade_gaps": [list(r) for r in g.trade_gaps],
                        }
                    }
                }
            },
            tags={"warehouse/symbol": g.symbol},
        )
        for g in found
        if g.missing_minutes or g.trade_gaps
    ]
    observations = [
        dg.AssetObservation(asset_key=key, metadata={f"gaps_found/{g.symbol}": count})
        for g in found
        for key, count in ((repair.KLINES, g.minutes), (repair.AGG_TRADES, g.trade_ids))
    ]
    if not requests:
        return dg.SensorResult(skip_reason="no holes in the window", asset_events=observations)
    return dg.SensorResult(run_requests=requests, asset_events=observations)
