"""The streaming fault matrix end to end: real processes, WebSocket over loopback, chDB and Dagster runs.

`binance_stream` runs in a subprocess (a small driver, written below) against a Dagster instance and an
embedded warehouse shared with this test, while the simulator injects faults: skipped, malformed and
repeated messages, a dropped connection, a stall (the silence watchdog reconnects), rotations (the
connection lifetime and serverShutdown), SIGKILL of the ingesting process mid-flush (the block written,
not committed in the spool) and a restart while another process holds the warehouse for 30 s. Then the
`stream_gap_repair` sensor is evaluated and its `binance_gap_repair` runs executed. Afterwards a plain
SELECT holds every trade of the streamed id range once, equal to REST value for value, no minute twice,
and every malformed message (and nothing else) in dead letters.

Holes before the repair are checked too: each is the skipped ids, or lies inside the time window of a
drop, the stall or the kill-restart; rotations and the locked warehouse leave none.

The simulator's clock runs 3 minutes behind the wall clock, so every streamed trade is older than the
sensor's settling time (2 minutes) when the sensor runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import pyarrow as pa
import pytest

from warehouse_assets.definitions import defs as load_defs
from warehouse_assets.defs.resources import WarehouseResource
from warehouse_assets.lib.binance.rest import BinanceRestClient
from warehouse_assets.lib.spool import Spool
from warehouse_assets.lib.warehouse import SqlFile, Warehouse
from warehouse_assets.simulator.testing import REPO_ROOT, SimulatorHandle, run_simulator
from warehouse_assets.simulator.ws_wire import wrap
from warehouse_assets_tests.conftest import sql

pytestmark = pytest.mark.slow

AGG = "btcusdt@aggTrade"
OFFSET_S = -180  # the simulator's clock behind the wall clock (see the module docstring)
SILENCE_S = 3.0  # the stream's silence timeout; the simulator's trades are never 1.8 s apart
LOCK_S = 30.0  # the "warehouse locked by another process for 30 s"
MINUTE_US = 60_000_000
SLACK_US = 2_000_000  # a hole may start or end up to one inter-trade gap outside its fault window
T = TypeVar("T")

DRIVER = r'''
"""One binance_stream run in this process (the test's ingesting process).

argv: work dir, window s, lifetime s, silence timeout s. Test hook, not product code: the spool's commit is
wrapped. A block is committed once its flush returned, i.e. once the warehouse has it, so the wrapper logs
each committed block to <work>/progress.jsonl (when, how many frames, its newest trade time) and its frames
to <work>/committed.log; once <work>/kill exists, the next block holding trades is not committed: this
process group (the ingester and any writer process it started) is killed with SIGKILL instead, mid-flush.
"""
import json, logging, os, signal, sys, time
from pathlib import Path

import dagster as dg

from warehouse_assets.lib.spool import Spool

work = Path(sys.argv[1])
window, lifetime, silence = (float(a) for a in sys.argv[2:5])
real_commit = Spool.commit


def newest_trade_us(frames):
    newest = None
    for frame in frames:
        try:
            data = json.loads(frame)["data"]
            if data["e"] == "aggTrade" and isinstance(data["T"], int) and isinstance(data["a"], int):
                newest = max(newest or 0, data["T"])
        except (ValueError, KeyError, TypeError):
            pass
    return newest


def commit(self, block):
    newest = newest_trade_us(block.frames)
    line = json.dumps({"at": time.time(), "frames": len(block.frames), "newest_us": newest})
    if newest and (work / "kill").exists():
        (work / "killed").write_text(line)
        os.killpg(os.getpgid(0), signal.SIGKILL)  # written to the warehouse, not committed in the spool
    with open(work / "committed.log", "ab") as committed:
        committed.write(b"".join(frame + b"\n" for frame in block.frames))
    with open(work / "progress.jsonl", "a") as progress:
        progress.write(line + "\n")
    return real_commit(self, block)


Spool.commit = commit
logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
logging.getLogger("warehouse_assets").setLevel(logging.INFO)

from warehouse_assets.definitions import defs  # noqa: E402

config = {"window_seconds": window, "flush_interval_seconds": 0.5, "silence_timeout_seconds": silence,
          "lifetime_seconds": lifetime}
with dg.DagsterInstance.get() as instance:
    result = defs().resolve_job_def("binance_stream").execute_in_process(
        instance=instance, run_config={"ops": {"stream_binance": {"config": config}}}, raise_on_error=False
    )
metadata = {
    key: value.value
    for event in result.all_events
    if event.event_type == dg.DagsterEventType.ASSET_OBSERVATION
    for key, value in event.event_specific_data.asset_observation.metadata.items()
}
print(json.dumps({"success": result.success, "metadata": metadata}), flush=True)
sys.exit(0 if result.success else 1)
'''

# No background merges in the ReplacingMergeTrees the test reads: a row written twice stays visible to a
# plain SELECT instead of being folded away, by chance, before the test looks.
NO_MERGES = """
ALTER TABLE ${database}.${table} MODIFY SETTING
    max_bytes_to_merge_at_max_space_in_pool = 1, max_bytes_to_merge_at_min_space_in_pool = 1
"""

HOLDER = r"""
import sys, time
from warehouse_assets.lib.warehouse import Warehouse

with Warehouse(sys.argv[1], lock_timeout=60).session():
    print("held", time.time(), flush=True)
    time.sleep(float(sys.argv[2]))
print("released", time.time(), flush=True)
"""


def sim_now_us() -> int:
    return time.time_ns() // 1000 + OFFSET_S * 1_000_000


def wait_until(
    what: str, condition: Callable[[], T | None], timeout: float, *, alive: tuple[Ingester, ...] = ()
) -> T:
    """Poll `condition` until it returns a truthy value; fail naming `what` (and a driver that died)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for ingester in alive:
            if ingester.process.poll() is not None:
                pytest.fail(f"the ingesting process exited ({ingester.process.returncode}) while waiting for "
                            f"{what}:\n{ingester.log_tail()}")  # fmt: skip
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


class Ingester:
    """The driver in its own process group, with its progress file and logs in `work`."""

    def __init__(self, work: Path, *, window: float, lifetime: float) -> None:
        work.mkdir()
        self.work = work
        driver = work / "driver.py"
        driver.write_text(DRIVER)
        with (work / "stdout.log").open("w") as out, (work / "stderr.log").open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(driver), str(work), str(window), str(lifetime), str(SILENCE_S)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=REPO_ROOT, start_new_session=True,
            )  # fmt: skip

    def progress(self) -> list[dict[str, Any]]:
        path = self.work / "progress.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        parsed = []
        for line in lines:
            try:
                parsed.append(json.loads(line))
            except ValueError:  # a line being written
                break
        return parsed

    def committed(self) -> set[bytes]:
        path = self.work / "committed.log"
        return set(path.read_bytes().splitlines()) if path.exists() else set()

    def newest_us(self) -> int:
        return max((p["newest_us"] or 0 for p in self.progress()), default=0)

    def log(self) -> str:
        return (self.work / "stderr.log").read_text()

    def log_tail(self) -> str:
        return self.log()[-4000:]

    def result(self) -> dict[str, Any]:
        lines = (self.work / "stdout.log").read_text().splitlines()
        parsed: dict[str, Any] = json.loads(lines[-1])
        return parsed

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def sim() -> Iterator[SimulatorHandle]:
    with run_simulator(
        trades_per_day=2_000_000, ws_ping_interval=2.0, clock_offset_ms=OFFSET_S * 1000
    ) as handle:
        yield handle


@pytest.fixture
def instance(
    sim: SimulatorHandle, warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """A persistent Dagster instance in DAGSTER_HOME with BTCUSDT registered; the environment the ingesting
    processes inherit (simulator URLs, spool, DAGSTER_HOME); the tables read without background merges."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    for name, value in {
        "DAGSTER_HOME": str(home),
        "BINANCE_WS_URL": sim.ws_url(""),
        "BINANCE_API_URL": sim.base_url,
        "STREAM_SPOOL_DIR": str(tmp_path / "spool"),
        "STREAM_REPAIR_WINDOW_HOURS": "0.25",
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
    }.items():
        monkeypatch.setenv(name, value)
    no_merges = SqlFile(name="<test>", text=NO_MERGES)
    with warehouse.session() as client:
        for table in ("trades", "klines_1m"):
            client.command(no_merges.render(database=warehouse.database, table=table))
    with dg.DagsterInstance.get() as dagster:
        dagster.add_dynamic_partitions("binance_symbols", ["BTCUSDT"])
        yield dagster


@dataclass
class Streamed:
    windows: list[tuple[str, int, int]]  # (fault, from, to) in simulator µs: where a hole may be
    ws_stats: dict[str, Any]  # the simulator's: what it sent, skipped, repeated, malformed, closed
    runs: tuple[Ingester, Ingester]
    held: tuple[float, float]  # when the other process held the warehouse (wall clock)


def stream_under_faults(sim: SimulatorHandle, warehouse: Warehouse, tmp_path: Path) -> Streamed:
    """Run 1 meets the message and connection faults and is killed mid-flush; run 2 streams while another
    process holds the warehouse for 30 s (more faults meanwhile) and drains it all afterwards."""
    spool_dir = Path(os.environ["STREAM_SPOOL_DIR"])
    windows: list[tuple[str, int, int]] = []
    runs: list[Ingester] = []
    holder: subprocess.Popen[bytes] | None = None
    try:
        # No lifetime rotation in run 1: one during the stall would replace the stalled connection first.
        first = Ingester(tmp_path / "run1", window=300, lifetime=0)
        runs.append(first)
        wait_until("run 1 to write trades", lambda: first.newest_us(), 60, alive=(first,))

        sim.ws_faults(skip={AGG: 3}, malformed={AGG: 4}, repeat={AGG: 5})
        wait_until("the first faults to be sent", lambda: len(sim.ws_stats()["malformed"]) == 4, 10)
        bad = {wrap(m["stream"], m["payload"]).encode() for m in sim.ws_stats()["malformed"]}
        wait_until(
            "run 1 to flush the malformed messages", lambda: bad <= first.committed(), 15, alive=(first,)
        )

        start = sim_now_us()
        assert sim.ws_faults(drop=True)["dropped"]
        # A trade this new came on a new connection: the drop's hole, if any, ends before the newest one.
        newest = wait_until("trades after the drop", newer_than(first, start + 1_500_000), 20, alive=(first,))
        windows.append(("drop", start, newest))

        start = sim_now_us()
        assert sim.ws_faults(stall={"seconds": SILENCE_S + 3, "answer_pings": True})["stalled"]
        after = start + int((SILENCE_S + 2) * 1e6)  # the watchdog's reconnect is done by then
        newest = wait_until("trades after the stall", newer_than(first, after), 30, alive=(first,))
        windows.append(("stall", start, newest))

        start = sim_now_us()
        assert sim.ws_shutdown(close_after_seconds=3)  # a rotation: no window, it must leave no hole
        wait_until("trades after serverShutdown", newer_than(first, start + 2_000_000), 20, alive=(first,))

        killed_from = sim_now_us()
        (first.work / "kill").touch()
        first.process.wait(timeout=30)
        assert first.process.returncode == -signal.SIGKILL, first.log_tail()
        killed = json.loads((first.work / "killed").read_text())
        assert killed["newest_us"]  # it died right after a block of trades was written, before its commit
        with Spool(spool_dir) as spool:
            assert spool.stats().unflushed_records >= killed["frames"]
        wait_until("the killed connection to close", lambda: sim.ws_stats()["connections_open"] == 0, 10)

        holder_out = tmp_path / "holder.log"
        with holder_out.open("w") as out:
            holder = subprocess.Popen(
                [sys.executable, "-c", HOLDER, warehouse.url, str(LOCK_S)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
            )  # fmt: skip
        held_at = float(
            wait_until("the other process to hold the warehouse", lambda: _word(holder_out, "held"), 60)
        )
        second = Ingester(tmp_path / "run2", window=LOCK_S, lifetime=8)
        runs.append(second)
        wait_until("run 2 to connect", lambda: sim.ws_stats()["connections_open"] >= 1, 30, alive=(second,))
        windows.append(("kill and restart", killed_from, sim_now_us() + 1_500_000))

        sent = sim.ws_stats()["messages_sent"].get(AGG, 0)
        wait_until(
            "run 2 to receive trades", lambda: sim.ws_stats()["messages_sent"].get(AGG, 0) > sent + 10, 20
        )
        sim.ws_faults(skip={AGG: 2}, malformed={AGG: 4}, repeat={AGG: 3})
        wait_until("the second faults to be sent", lambda: len(sim.ws_stats()["malformed"]) == 8, 10)
        closed = sum(sim.ws_stats()["closed"].values())
        assert sim.ws_shutdown(close_after_seconds=3)
        wait_until(
            "the rotated connection to close", lambda: sum(sim.ws_stats()["closed"].values()) > closed, 15
        )
        assert holder.poll() is None, "run 2's faults were meant to happen while the warehouse is held"
        assert not second.progress()  # nothing was flushed while it is held

        released_at = float(
            wait_until("the other process to let go", lambda: _word(holder_out, "released"), 60)
        )
        second.process.wait(timeout=120)
        assert second.process.returncode == 0, second.log_tail()
        return Streamed(windows, sim.ws_stats(), (first, second), (held_at, released_at))
    finally:
        for run in runs:
            run.stop()
        if holder is not None and holder.poll() is None:
            holder.kill()
        if holder is not None:
            holder.wait()


def newer_than(run: Ingester, us: int) -> Callable[[], int]:
    """A condition: the newest trade time run has flushed, once it is after `us` (simulator µs)."""
    return lambda: newest if (newest := run.newest_us()) > us else 0


def stored(wh: Warehouse) -> list[tuple[Any, ...]]:
    with wh.session() as client:
        rows = client.query(
            sql(wh, "SELECT trade_id, price, qty, first_trade_id, last_trade_id, toUnixTimestamp64Micro(ts), "
                    "is_buyer_maker FROM ${database}.trades WHERE symbol = 'BTCUSDT' ORDER BY trade_id")
        ).result_rows  # fmt: skip
    return [tuple(r) for r in rows]


def rest_rows(sim: SimulatorHandle, first: int, last: int) -> list[tuple[Any, ...]]:
    """The aggregate trades first..last as REST serves them, in the shape of `stored`."""

    async def go() -> pa.Table:
        async with BinanceRestClient(sim.base_url) as client:
            parts, next_id = [], first
            while next_id <= last:
                page = await client.agg_trades_from("BTCUSDT", next_id, limit=min(1000, last + 1 - next_id))
                assert page.num_rows, f"REST has no aggregate trade {next_id}"
                parts.append(page)
                next_id += page.num_rows
            return pa.concat_tables(parts)

    table = asyncio.run(go())
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    table = table.set_column(table.schema.get_field_index("ts"), "ts", table.column("ts").cast(pa.int64()))
    columns = ["trade_id", "price", "qty", "first_trade_id", "last_trade_id", "ts", "is_buyer_maker"]
    return [tuple(row[c] for c in columns) for row in table.select(columns).to_pylist()]


def test_under_faults_every_trade_lands_once_and_every_malformed_message_is_a_dead_letter(
    sim: SimulatorHandle, warehouse: Warehouse, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    streamed = stream_under_faults(sim, warehouse, tmp_path)
    first, second = streamed.runs
    stats = streamed.ws_stats
    held_at, released_at = streamed.held

    # ---- the faults happened as meant ---------------------------------------------------------------------
    assert released_at >= held_at + LOCK_S
    flushes = second.progress()
    assert flushes and min(p["at"] for p in flushes) >= held_at + LOCK_S  # run 2 wrote only after the release
    meta = second.result()["metadata"]
    assert meta["stream/warehouse_waits"] > 0 and meta["stream/dead_letters"] >= 4
    for run, reasons in ((first, ("server_shutdown",)), (second, ("server_shutdown", "lifetime"))):
        for reason in reasons:
            assert f"({reason}) after its first frame" in run.log(), (
                f"no {reason} rotation in {run.work.name}"
            )
    assert "no data frame for" in first.log()  # the stall was ended by the silence watchdog
    assert stats["closed"].get("dropped", 0) >= 1
    skipped = set(stats["skipped_ids"][AGG])
    assert len(skipped) == 5 and len(stats["repeated_ids"][AGG]) == 8 and len(stats["malformed"]) == 8

    # ---- before the repair: nothing twice, and holes only where a fault explains them ---------------------
    before = stored(warehouse)
    ids = [r[0] for r in before]
    assert len(ids) == len(set(ids))
    times = {r[0]: r[5] for r in before}
    holes = [(a, b) for a, b in zip(ids, ids[1:], strict=False) if b > a + 1]
    missing = {i for a, b in holes for i in range(a + 1, b)}
    assert skipped <= missing  # never delivered to anyone: only the repair can bring them
    for a, b in holes:
        assert set(range(a + 1, b)) <= skipped or any(
            lo - SLACK_US <= times[a] and times[b] <= hi + SLACK_US for _, lo, hi in streamed.windows
        ), f"hole {a}..{b} ({times[a]}..{times[b]} µs) is outside every fault window {streamed.windows}"

    # ---- the gap-repair sensor and its runs ---------------------------------------------------------------
    defs = load_defs()
    tick = defs.resolve_sensor_def("stream_gap_repair").evaluate_tick(
        dg.build_sensor_context(
            instance=instance, definitions=defs, resources={"warehouse": WarehouseResource()}
        )
    )
    requests = tick.run_requests or []
    found = {tuple(g) for r in requests for g in r.run_config["ops"]["repair_gaps"]["config"]["trade_gaps"]}
    assert found == set(holes)
    job = defs.resolve_job_def("binance_gap_repair")
    for request in requests:
        assert job.execute_in_process(
            run_config=request.run_config, instance=instance, tags=request.tags
        ).success

    # ---- after: each trade of the streamed range once and equal to REST, minutes once, dead letters exact
    rows = stored(warehouse)
    first_minute, last_us = rows[0][5] // MINUTE_US * MINUTE_US, rows[-1][5]
    with warehouse.session() as client:
        count, distinct, lo, hi = client.query(
            sql(warehouse, "SELECT count(), uniqExact(trade_id), min(trade_id), max(trade_id) "
                           "FROM ${database}.trades WHERE symbol = 'BTCUSDT'")
        ).result_rows[0]  # fmt: skip
        minutes = [r[0] for r in client.query(
            sql(warehouse, "SELECT toUnixTimestamp64Micro(open_time) FROM ${database}.klines_1m "
                           "WHERE symbol = 'BTCUSDT' "
                           "AND open_time >= fromUnixTimestamp64Micro({a:Int64}, 'UTC') "
                           "AND open_time <= fromUnixTimestamp64Micro({b:Int64}, 'UTC')"),
            parameters={"a": first_minute, "b": last_us},
        ).result_rows]  # fmt: skip
        letters = client.query(
            sql(warehouse, "SELECT payload, reason FROM ${database}.dead_letters WHERE source = 'stream'")
        ).result_rows
    assert (lo, hi) == (ids[0], ids[-1]) and count == distinct == hi - lo + 1 > 100
    assert rows == rest_rows(sim, lo, hi)  # value for value, µs times
    # Each minute once, and all of them but the last: that one may still be open on the simulator's clock
    # (3 minutes behind) when the sensor asks REST for it, which then records it as an exchange gap.
    assert len(minutes) == len(set(minutes))
    assert set(range(first_minute, last_us // MINUTE_US * MINUTE_US, MINUTE_US)) <= set(minutes)
    expected = sorted(wrap(m["stream"], m["payload"]) for m in stats["malformed"])
    assert sorted(p for p, _ in letters) == expected and all(reason for _, reason in letters)


def _word(path: Path, word: str) -> str | None:
    """What follows `word` on the line of the holder's output that starts with it, once it printed it."""
    for line in path.read_text().splitlines():
        if line.startswith(word + " "):
            return line.split()[1]
    return None
