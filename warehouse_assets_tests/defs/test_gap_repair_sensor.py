"""The gap-repair sensor on a test instance and its repair run against the simulator: holes found in the
recent window become one run per symbol whose run fills exactly them; a later scan finds nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import dagster as dg
import pyarrow as pa
import pytest

from warehouse_assets.definitions import defs as load_defs
from warehouse_assets.defs.resources import WarehouseResource
from warehouse_assets.lib import klines_store
from warehouse_assets.lib.binance.rest import BinanceRestClient
from warehouse_assets.lib.warehouse import Warehouse
from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator
from warehouse_assets_tests.conftest import sql

pytestmark = pytest.mark.slow
RESOURCES = {"warehouse": WarehouseResource()}
MINUTE = 60_000


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorHandle]:
    with run_simulator(trades_per_day=20_000) as sim:
        yield sim


@pytest.fixture
def sim(simulator: SimulatorHandle, monkeypatch: pytest.MonkeyPatch) -> SimulatorHandle:
    simulator.reset()
    monkeypatch.setenv("BINANCE_API_URL", simulator.base_url)
    monkeypatch.setenv("STREAM_REPAIR_WINDOW_HOURS", "1")
    return simulator


def test_holes_in_the_window_become_a_repair_run_that_fills_them(
    sim: SimulatorHandle, warehouse: Warehouse
) -> None:
    now = int(time.time() * 1000)
    start, end = (now - 3_600_000) // MINUTE * MINUTE, (now - 3 * MINUTE) // MINUTE * MINUTE

    async def fetch() -> pa.Table:
        async with BinanceRestClient(sim.base_url) as client:
            return await client.kline_table("BTCUSDT", start, end)

    klines = asyncio.run(fetch())
    holes = [10, 11, 12, 40]
    with warehouse.session() as client:
        klines_store.replace_window(
            client, warehouse.database, exchange="binance", symbol="BTCUSDT", start_ms=start, end_ms=end,
            klines=klines.take([i for i in range(klines.num_rows) if i not in holes]), source="stream",
        )  # fmt: skip

    defs = load_defs()
    sensor = defs.resolve_sensor_def("stream_gap_repair")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("binance_symbols", ["BTCUSDT"])
        result = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs, resources=RESOURCES)
        )
        (request,) = result.run_requests or []
        config = request.run_config["ops"]["repair_gaps"]["config"]
        open_ms = klines.column("open_time").cast(pa.int64()).to_pylist()
        assert config["symbol"] == "BTCUSDT" and config["trade_gaps"] == []
        # The holes, plus the minutes of the window after `end` that nothing loaded yet.
        assert [open_ms[10], open_ms[12]] in config["missing_minutes"] and [
            open_ms[40],
            open_ms[40],
        ] in config["missing_minutes"]
        assert request.run_key and request.run_key.startswith("repair:BTCUSDT:")
        observed = {e.asset_key.path[-1]: e.metadata["gaps_found/BTCUSDT"].value for e in result.asset_events}
        assert observed["klines_1m"] >= 4 and observed["agg_trades"] == 0

        job = defs.resolve_job_def("binance_gap_repair")
        run = job.execute_in_process(run_config=request.run_config, instance=instance)
        assert run.success
        with warehouse.session() as client:
            got = [r[0] for r in client.query(
                sql(warehouse, "SELECT toUnixTimestamp64Milli(open_time) FROM ${database}.klines_1m ORDER BY open_time")
            ).result_rows]  # fmt: skip
        assert set(open_ms) <= set(got) and len(got) == len(set(got))  # filled, each minute once
        again = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs, resources=RESOURCES)
        )
        left = [
            r
            for req in again.run_requests or []
            for r in req.run_config["ops"]["repair_gaps"]["config"]["missing_minutes"]
        ]
        assert all(first >= end for first, _ in left)  # only minutes newer than the load may still be open
