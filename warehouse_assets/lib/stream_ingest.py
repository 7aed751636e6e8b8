"""The streaming ingester: WebSocket frames → durable spool → warehouse, for a bounded window.

Every received batch is appended to the spool (fsync per batch) before it counts as received. A flush
loop takes spooled blocks every `flush_interval` seconds and writes them (`stream_flush`), then commits them
in the spool. With a ClickHouse server each flush is its own short session. With the embedded warehouse a
writer process keeps one session open and gives the directory to any other process that waits for it
(`stream_writer`). If the warehouse is locked or down, blocks stay in the spool (it grows, up to its cap)
and are flushed when it is back; after a crash, unflushed blocks are flushed first on the next start.
Flushing is idempotent, so a block written but not committed before a crash adds nothing the second time.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

from warehouse_assets.lib.spool import Spool
from warehouse_assets.lib.stream_flush import FlushResult, join_frames
from warehouse_assets.lib.stream_writer import WarehouseBusyError, open_writer
from warehouse_assets.lib.warehouse import Warehouse, WarehouseOpenError

log = logging.getLogger(__name__)


class FrameSource(Protocol):
    """What the ingester needs of `binance.ws.BinanceStreamClient`."""

    def frames(self) -> AsyncIterator[object]: ...

    async def aclose(self) -> None: ...


@dataclass
class IngestStats:
    received: int = 0  # frames appended to the spool
    blocks_flushed: int = 0
    flush: FlushResult = field(default_factory=FlushResult)
    warehouse_waits: int = 0  # flush attempts that found the warehouse locked or down
    writer_yields: int = 0  # times the embedded warehouse was given to another process
    lag_ms: list[float] = field(default_factory=list)  # per block: flush done - oldest event time in it
    spool_bytes_max: int = 0

    def lag_summary(self) -> dict[str, float]:
        if not self.lag_ms:
            return {}
        ordered = sorted(self.lag_ms)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return {"p50_ms": statistics.median(ordered), "p99_ms": p99, "max_ms": ordered[-1]}


async def ingest(
    warehouse: Warehouse,
    source: FrameSource,
    spool: Spool,
    *,
    duration: float,
    flush_interval: float = 1.0,
    max_block: int = 200_000,
    final_flush_timeout: float = 300.0,
    on_flush: Callable[[FlushResult, IngestStats], None] | None = None,
    yield_hold_off: float = 5.0,
) -> IngestStats:
    """Receive for `duration` seconds, flushing as it goes; then stop receiving and flush what is left."""
    stats = IngestStats()
    receiving_done = asyncio.Event()
    writer = open_writer(warehouse, hold_off=yield_hold_off)

    async def receive() -> None:
        try:
            async for batch in source.frames():
                frames: list[bytes] = batch.frames  # type: ignore[attr-defined]
                spool.append(frames, batch.received_ns)  # type: ignore[attr-defined]
                stats.received += len(frames)
        finally:
            receiving_done.set()

    async def flush_available() -> bool:
        """Flush the spooled blocks (full blocks back to back while there is a backlog); False when the warehouse
        could not be reached (retry later)."""
        if await asyncio.to_thread(writer.maybe_yield):
            stats.writer_yields += 1
        while True:
            if not writer.available():  # holding off, or another process waits for or holds the warehouse
                pending = spool.stats().unflushed_records
                stats.warehouse_waits += bool(pending)
                return not pending
            if (block := spool.read_block(max_block)) is None:
                break
            joined, count, broken = join_frames(block.frames)
            try:
                result = await asyncio.to_thread(writer.flush, joined, count, broken)
            except WarehouseOpenError as exc:  # locked by another process, or the server is down
                spool.rewind()
                stats.warehouse_waits += 1
                level = logging.DEBUG if isinstance(exc, WarehouseBusyError) else logging.WARNING
                log.log(
                    level, "warehouse not available, %d frames wait in the spool: %s", len(block.frames), exc
                )
                return False
            spool.commit(block)
            stats.blocks_flushed += 1
            stats.flush.add(result)
            if result.oldest_trade_us is not None:
                stats.lag_ms.append(time.time() * 1000 - result.oldest_trade_us / 1000)
            stats.spool_bytes_max = max(stats.spool_bytes_max, spool.stats().size_bytes)
            if on_flush is not None:
                on_flush(result, stats)
            if len(block.frames) < max_block:
                # Caught up: what arrived meanwhile waits for the next interval, so a quiet stream costs one
                # flush (one part per table) per interval instead of back-to-back small flushes.
                break
        return True

    receiver = asyncio.create_task(receive())
    deadline = time.monotonic() + duration
    try:
        try:
            # A flush starts every flush_interval (fixed rate, not fixed delay): a message waits at most about
            # one interval plus one flush, and when a flush takes longer than the interval they run back to back.
            next_flush = time.monotonic() + flush_interval
            while time.monotonic() < deadline and not receiving_done.is_set():
                await asyncio.sleep(max(0.0, min(next_flush, deadline) - time.monotonic()))
                next_flush = time.monotonic() + flush_interval
                await flush_available()
        finally:
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
            await source.aclose()
        # What was received is in the spool whatever happened to the connection: flush it before anything.
        final_deadline = time.monotonic() + final_flush_timeout
        while True:
            flushed = await flush_available()
            if flushed and not spool.stats().unflushed_records:
                break
            if time.monotonic() > final_deadline:
                log.error(
                    "the warehouse stayed unavailable; %s remain in the spool for the next run", spool.stats()
                )
                break
            if not flushed:
                await asyncio.sleep(flush_interval)
    finally:
        await asyncio.to_thread(writer.close)
    if not receiver.cancelled() and receiver.exception() is not None:
        raise receiver.exception()  # type: ignore[misc]  # e.g. the stream URL was refused
    return stats
