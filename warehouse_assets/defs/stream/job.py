"""`binance_stream`: one bounded streaming run (aggTrade and kline_1m of every registered symbol), and the
sensor that keeps one running.

A run receives for STREAM_WINDOW_SECONDS, then flushes its spool and ends; `binance_stream_supervisor`
starts a new run whenever none is active, so a crash or the end of a window is followed by a new run within
a minute. Holes a restart leaves are found and filled by `stream_gap_repair`.
"""

import asyncio
import time

import dagster as dg

from warehouse_assets.defs.partitions import BINANCE_SYMBOLS
from warehouse_assets.defs.resources import WarehouseResource
from warehouse_assets.defs.stream.repair import AGG_TRADES, KLINES
from warehouse_assets.lib import settings
from warehouse_assets.lib.binance.ws import DEFAULT_LIFETIME, BinanceStreamClient
from warehouse_assets.lib.spool import Spool
from warehouse_assets.lib.stream_flush import FlushResult
from warehouse_assets.lib.stream_ingest import IngestStats, ingest

STREAM_TAG = "warehouse/stream"
ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


STREAM_KINDS = ("aggTrade", "trade", "kline_1m")


class StreamConfig(dg.Config):
    window_seconds: float = 0.0  # 0: STREAM_WINDOW_SECONDS
    flush_interval_seconds: float = 1.0
    # Which streams of each registered symbol: aggTrade -> trades, trade -> individual_trades, kline_1m -> klines_1m.
    kinds: list[str] = ["aggTrade", "kline_1m"]
    silence_timeout_seconds: float = 10.0  # no frame for this long means a dead connection
    lifetime_seconds: float = 0.0  # rotate connections after this long; 0: just under Binance's 24 h limit


@dg.op(
    description="Receives the registered symbols' aggTrade and kline_1m streams for a window, spooling and flushing them."
)
def stream_binance(
    context: dg.OpExecutionContext, config: StreamConfig, warehouse: WarehouseResource
) -> None:
    symbols = sorted(context.instance.get_dynamic_partitions(BINANCE_SYMBOLS.name or "binance_symbols"))
    if not symbols:
        context.log.warning(
            "no symbols are registered (WAREHOUSE_SYMBOLS, or binance_symbols partitions): nothing to stream"
        )
        return
    unknown = sorted(set(config.kinds) - set(STREAM_KINDS))
    if unknown or not config.kinds:
        raise dg.Failure(
            f"stream kinds {unknown or config.kinds} are not supported; choose from {list(STREAM_KINDS)}"
        )
    streams = [f"{s.lower()}@{kind}" for s in symbols for kind in config.kinds]
    window = config.window_seconds or settings.stream_window_seconds()
    context.log.info("streaming %s for %.0f s", ", ".join(streams), window)
    last_report = [time.monotonic()]

    def on_flush(result: FlushResult, stats: IngestStats) -> None:
        if time.monotonic() - last_report[0] >= 60:
            last_report[0] = time.monotonic()
            context.log.info(
                "received %d, trades written %d, klines written %d, dead letters %d, lag %s",
                stats.received, stats.flush.trades_inserted, stats.flush.klines_inserted,
                stats.flush.dead_letters, stats.lag_summary(),
            )  # fmt: skip

    async def run() -> tuple[IngestStats, dict[str, int]]:
        client = BinanceStreamClient(
            streams,
            silence_timeout=config.silence_timeout_seconds,
            lifetime=config.lifetime_seconds or DEFAULT_LIFETIME,
        )
        with Spool(settings.stream_spool_dir(), max_bytes=settings.stream_spool_max_bytes()) as spool:
            stats = await ingest(
                warehouse.get(), client, spool, duration=window,
                flush_interval=config.flush_interval_seconds, on_flush=on_flush,
            )  # fmt: skip
        return stats, dict(client.stats().reconnects)

    stats, reconnects = asyncio.run(run())
    lag = stats.lag_summary()
    metadata = {
        "messages_received": stats.received,
        "trades_written": stats.flush.trades_inserted,
        "klines_written": stats.flush.klines_inserted,
        "individual_trades_written": stats.flush.individual_trades_inserted,
        "dead_letters": stats.flush.dead_letters,
        "reconnects": sum(reconnects.values()),
        "warehouse_waits": stats.warehouse_waits,
        "warehouse_yields": stats.writer_yields,
        "spool_bytes_max": stats.spool_bytes_max,
        "lag_p50_ms": round(lag.get("p50_ms", 0.0), 1),
        "lag_p99_ms": round(lag.get("p99_ms", 0.0), 1),
    }
    context.log.info("stream window done: %s", metadata)
    for key in (AGG_TRADES, KLINES):
        context.log_event(
            dg.AssetObservation(asset_key=key, metadata={f"stream/{k}": v for k, v in metadata.items()})
        )


@dg.job(
    name="binance_stream",
    tags={STREAM_TAG: "binance"},
    description="One bounded window of Binance market streams into the warehouse (started by binance_stream_supervisor).",
)
def binance_stream() -> None:
    stream_binance()


@dg.sensor(
    name="binance_stream_supervisor",
    job=binance_stream,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING
    if settings.stream_enabled()
    else dg.DefaultSensorStatus.STOPPED,
    description="Starts binance_stream whenever no run of it is active (after a crash or at the end of a window).",
)
def binance_stream_supervisor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    active = context.instance.get_runs(
        filters=dg.RunsFilter(job_name="binance_stream", statuses=ACTIVE), limit=1
    )
    if active:
        return dg.SkipReason(f"run {active[0].run_id} is streaming")
    window = settings.stream_window_seconds()
    return dg.RunRequest(
        run_key=f"stream:{int(time.time())}",
        # A backstop if a run hangs: run monitoring ends it a quarter hour after its window.
        tags={"dagster/max_runtime": str(int(window + 900))},
    )
