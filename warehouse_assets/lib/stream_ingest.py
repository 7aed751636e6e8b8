"""The streaming ingester: WebSocket frames → durable spool → warehouse, for a bounded window.

Every received batch is appended to the spool (fsync per batch) before it counts as received. A flush
loop takes spooled blocks every `flush_interval` seconds and writes them (`stream_flush`), then commits them
in the spool. With a ClickHouse server each flush is its own short session. With the embedded warehouse the
run keeps one session open while it flushes, because starting chDB's engine once a second leaks about five
threads per start and was seen to hang after a few dozen starts; other processes get the directory between
runs (the run is bounded, see the streaming job). If the warehouse is locked or down, blocks stay in the
spool (it grows, up to its cap) and are flushed when it is back; after a crash, unflushed blocks are flushed
first on the next start. Flushing is idempotent, so a block written but not committed before a crash
adds nothing the second time.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from clickhouse_connect.driver.client import Client

from warehouse_assets.lib.spool import Spool
from warehouse_assets.lib.stream_flush import FlushResult, flush_frames
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
) -> IngestStats:
    """Receive for `duration` seconds, flushing as it goes; then stop receiving and flush what is left."""
    stats = IngestStats()
    receiving_done = asyncio.Event()
    writer = _Writer(warehouse)

    async def receive() -> None:
        try:
            async for batch in source.frames():
                frames: list[bytes] = batch.frames  # type: ignore[attr-defined]
                spool.append(frames, batch.received_ns)  # type: ignore[attr-defined]
                stats.received += len(frames)
        finally:
            receiving_done.set()

    async def flush_available() -> bool:
        """Flush every spooled block; False when the warehouse could not be reached (retry later)."""
        while (block := spool.read_block(max_block)) is not None:
            try:
                result = await asyncio.to_thread(writer.flush, block.frames)
            except WarehouseOpenError as exc:  # locked by another process, or the server is down
                spool.rewind()
                stats.warehouse_waits += 1
                log.warning(
                    "warehouse not available, %d frames wait in the spool: %s", len(block.frames), exc
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
        return True

    receiver = asyncio.create_task(receive())
    deadline = time.monotonic() + duration
    try:
        try:
            while time.monotonic() < deadline and not receiving_done.is_set():
                await asyncio.sleep(min(flush_interval, max(0.0, deadline - time.monotonic())))
                await flush_available()
        finally:
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
            await source.aclose()
        # What was received is in the spool whatever happened to the connection: flush it before anything.
        final_deadline = time.monotonic() + final_flush_timeout
        while not await flush_available():
            if time.monotonic() > final_deadline:
                log.error(
                    "the warehouse stayed unavailable; %s remain in the spool for the next run", spool.stats()
                )
                break
            await asyncio.sleep(flush_interval)
    finally:
        await asyncio.to_thread(writer.close)
    if not receiver.cancelled() and receiver.exception() is not None:
        raise receiver.exception()  # type: ignore[misc]  # e.g. the stream URL was refused
    return stats


class _Writer:
    """Writes blocks through one session kept open (embedded) or a session per block (server)."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self.keep_open = warehouse.target.embedded
        self._session: AbstractContextManager[Client] | None = None
        self._client: Client | None = None

    def flush(self, frames: list[bytes]) -> FlushResult:
        if not self.keep_open:
            with self.warehouse.session() as client:
                return flush_frames(client, self.warehouse.database, frames)
        if self._client is None:
            session = self.warehouse.session()
            self._client = session.__enter__()  # raises WarehouseOpenError while another process holds it
            self._session = session
        try:
            return flush_frames(self._client, self.warehouse.database, frames)
        except BaseException:
            self.close()  # reopen on the next block rather than reuse a client in an unknown state
            raise

    def close(self) -> None:
        session, self._session, self._client = self._session, None, None
        if session is not None:
            session.__exit__(None, None, None)
