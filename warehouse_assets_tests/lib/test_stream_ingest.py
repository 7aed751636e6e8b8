"""The streaming ingester end to end over loopback: the simulator's live aggTrade and kline_1m streams,
the real WebSocket client, a durable spool and a real embedded ClickHouse."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from warehouse_assets.lib.binance.rest import BinanceRestClient
from warehouse_assets.lib.binance.ws import BinanceStreamClient
from warehouse_assets.lib.spool import Spool
from warehouse_assets.lib.stream_ingest import IngestStats, ingest
from warehouse_assets.lib.warehouse import Warehouse
from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator
from warehouse_assets_tests.conftest import sql

pytestmark = pytest.mark.slow
STREAMS = ["btcusdt@aggTrade", "btcusdt@kline_1m"]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with run_simulator(trades_per_day=2_000_000, ws_ping_interval=2.0) as handle:
        yield handle


def stream(sim: SimulatorHandle, warehouse: Warehouse, spool_dir: Path, seconds: float) -> IngestStats:
    async def go() -> IngestStats:
        client = BinanceStreamClient(STREAMS, base_url=sim.ws_url(""), silence_timeout=5.0)
        with Spool(spool_dir) as spool:
            return await ingest(warehouse, client, spool, duration=seconds, flush_interval=0.5)

    return asyncio.run(go())


def stored(wh: Warehouse) -> list[tuple]:
    with wh.session() as client:
        return client.query(
            sql(wh, "SELECT trade_id, price, qty, first_trade_id, last_trade_id, toUnixTimestamp64Micro(ts), "
                    "is_buyer_maker FROM ${database}.trades ORDER BY trade_id")
        ).result_rows  # fmt: skip


def rest_rows(sim: SimulatorHandle, first: int, count: int) -> list[tuple]:
    async def go() -> pa.Table:
        async with BinanceRestClient(sim.base_url) as client:
            parts, next_id = [], first
            while next_id < first + count:
                page = await client.agg_trades_from(
                    "BTCUSDT", next_id, limit=min(1000, first + count - next_id)
                )
                parts.append(page)
                next_id += page.num_rows
            return pa.concat_tables(parts)

    table = asyncio.run(go())
    return [
        (
            t["trade_id"],
            t["price"],
            t["qty"],
            t["first_trade_id"],
            t["last_trade_id"],
            int(t["ts"].timestamp() * 1_000_000),
            t["is_buyer_maker"],
        )  # fmt: skip
        for t in table.to_pylist()
    ]


def test_every_streamed_trade_lands_once_and_equals_rest(
    sim: SimulatorHandle, warehouse: Warehouse, tmp_path: Path
) -> None:
    stats = stream(sim, warehouse, tmp_path / "spool", seconds=6)
    rows = stored(warehouse)
    assert len(rows) > 20 and stats.flush.dead_letters == 0
    ids = [r[0] for r in rows]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # contiguous, each once
    assert rows == rest_rows(sim, ids[0], len(ids))  # value for value what REST serves, µs times
    assert stats.flush.trades_inserted == len(rows) and stats.received >= len(rows)
    assert stats.lag_summary()["max_ms"] < 5_000
    with Spool(tmp_path / "spool") as spool:
        assert spool.stats().unflushed_records == 0  # everything flushed and committed


def test_a_locked_warehouse_makes_the_spool_wait_and_drain(
    sim: SimulatorHandle, warehouse: Warehouse, tmp_path: Path
) -> None:
    assert warehouse.target.path is not None
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, clickhouse_connect; c = clickhouse_connect.get_client(interface='chdb', path=sys.argv[1]); "
         "print('held', flush=True); time.sleep(float(sys.argv[2]))",
         str(warehouse.target.path), "4"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        warehouse.lock_timeout = 0.5  # each flush attempt gives up quickly; the spool keeps the frames
        stats = stream(sim, warehouse, tmp_path / "spool", seconds=7)
    finally:
        holder.wait(timeout=30)
    assert stats.warehouse_waits > 0
    ids = [r[0] for r in stored(warehouse)]
    assert ids == list(range(ids[0], ids[0] + len(ids))) and len(ids) > 20


def stream_into(
    result: list[IngestStats | BaseException],
    sim: SimulatorHandle,
    wh: Warehouse,
    spool: Path,
    seconds: float,
) -> None:
    """`stream` in a thread: its stats, or what it raised, go into `result`."""
    try:
        result.append(stream(sim, wh, spool, seconds))
    except BaseException as exc:  # noqa: BLE001  # reported by the test's assertion
        result.append(exc)


WAITER = """
import sys, time
from warehouse_assets.lib.warehouse import Warehouse
from warehouse_assets_tests.conftest import sql
wh = Warehouse(sys.argv[1], lock_timeout=60)
started = time.monotonic()
with wh.session() as client:
    waited = time.monotonic() - started
    count = client.query(sql(wh, "SELECT count() FROM ${database}.trades")).result_rows[0][0]
    time.sleep(1.0)  # a unit of work
print(f"{waited:.3f} {count}", flush=True)
"""


def test_the_stream_gives_the_embedded_warehouse_to_a_waiting_process(
    sim: SimulatorHandle, warehouse: Warehouse, tmp_path: Path
) -> None:
    """The writer process holds the directory while streaming, yet another process that asks for it gets it
    within seconds (the writer yields), and streaming resumes afterwards with every trade once."""
    result: list[IngestStats | BaseException] = []
    streamer = threading.Thread(target=stream_into, args=(result, sim, warehouse, tmp_path / "spool", 20))
    streamer.start()
    try:
        time.sleep(4)  # the writer process holds the directory by now
        assert warehouse.held_by_other_process()
        waiter = subprocess.run(
            [sys.executable, "-c", WAITER, warehouse.url],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    finally:
        streamer.join(timeout=120)
    waited, seen = waiter.stdout.split()
    assert float(waited) < 6.0  # a flush interval plus the yield, not the rest of the stream's 20 s window
    (stats,) = result
    assert isinstance(stats, IngestStats), f"the stream failed: {stats!r}"
    assert stats.writer_yields >= 1
    ids = [r[0] for r in stored(warehouse)]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # contiguous, each once, across the yield
    assert 0 < int(seen) < len(ids)  # the waiter saw the stream's rows; more landed after it finished
    assert stats.flush.trades_inserted == len(ids)


def writer_processes() -> list[int]:
    """PIDs of stream writer processes (children started by this test process)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == os.getpid() and b"warehouse_assets.lib.stream_writer" in cmdline:
                pids.append(int(entry.name))
    return pids


def test_a_killed_writer_process_is_replaced_and_nothing_is_lost_or_doubled(
    sim: SimulatorHandle, warehouse: Warehouse, tmp_path: Path
) -> None:
    """SIGKILL the writer process twice while it streams: its block stays in the spool, a new writer
    process writes it again, and the flush is idempotent, so every trade is stored once."""
    result: list[IngestStats | BaseException] = []
    streamer = threading.Thread(target=stream_into, args=(result, sim, warehouse, tmp_path / "spool", 14))
    streamer.start()
    killed = []
    try:
        for _ in range(2):
            deadline = time.monotonic() + 15
            while not writer_processes() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(2.5)  # it has written blocks by now, and likely is writing one
            for pid in writer_processes():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    finally:
        streamer.join(timeout=120)
    assert len(killed) >= 2
    (stats,) = result
    assert isinstance(stats, IngestStats), f"the stream failed: {stats!r}"
    assert stats.warehouse_waits >= 1  # the lost flushes were retried, not dropped
    ids = [r[0] for r in stored(warehouse)]
    assert len(ids) > 100 and ids == list(range(ids[0], ids[0] + len(ids)))  # contiguous, each once
    with Spool(tmp_path / "spool") as spool:
        assert spool.stats().unflushed_records == 0
