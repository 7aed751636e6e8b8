"""The streaming job for real against the simulator's live streams, and its supervisor sensor."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from warehouse_assets.definitions import defs as load_defs
from warehouse_assets.lib.warehouse import Warehouse
from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator
from warehouse_assets_tests.conftest import SHARED_DATA, sql

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorHandle]:
    with run_simulator(trades_per_day=2_000_000) as sim:
        yield sim


@pytest.fixture
def env(simulator: SimulatorHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SimulatorHandle:
    monkeypatch.setenv("BINANCE_WS_URL", simulator.ws_url(""))
    monkeypatch.setenv("STREAM_SPOOL_DIR", str(tmp_path / "spool"))
    return simulator


def test_a_stream_window_writes_the_trades_and_reports_them(
    env: SimulatorHandle, warehouse: Warehouse
) -> None:
    defs = load_defs()
    job = defs.resolve_job_def("binance_stream")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("binance_symbols", ["BTCUSDT"])
        result = job.execute_in_process(
            instance=instance, run_config={"ops": {"stream_binance": {"config": {"window_seconds": 5}}}}
        )
        assert result.success
        observations = [
            e.event_specific_data.asset_observation  # type: ignore[union-attr]
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION
        ]
    meta = {o.asset_key.path[-1]: o.metadata for o in observations}["agg_trades"]
    with warehouse.session() as client:
        count, distinct, lo, hi = client.query(
            sql(
                warehouse,
                "SELECT count(), uniqExact(trade_id), min(trade_id), max(trade_id) FROM ${database}.trades",
            )
        ).result_rows[0]
    assert count > 10 and count == distinct == hi - lo + 1  # every trade once, no hole
    assert meta["stream/trades_written"].value == count
    assert meta["stream/messages_received"].value >= count and meta["stream/dead_letters"].value == 0


def test_the_supervisor_starts_a_run_only_when_none_is_active() -> None:
    defs = load_defs()
    sensor = defs.resolve_sensor_def("binance_stream_supervisor")
    with dg.instance_for_test() as instance:
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
        (request,) = first.run_requests or []
        assert request.run_key and request.run_key.startswith("stream:")
        assert int(request.tags["dagster/max_runtime"]) > 3600
        job = defs.resolve_job_def("binance_stream")
        instance.create_run_for_job(job_def=job, status=dg.DagsterRunStatus.STARTED)
        second = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
        assert not second.run_requests and "is streaming" in (second.skip_message or "")


CAPTURES = SHARED_DATA / "ws_captures" / "binance_hftbacktest"
REPLAY = [CAPTURES / "binance_spot_btcusdt_20240808.gz", CAPTURES / "binance_spot_btcusdt_20240809.gz"]


def capture_trades() -> dict[int, tuple[Decimal, Decimal, int, bool]]:
    """The capture's BTCUSDT trades straight from the files: id -> (price, qty, time µs, buyer is maker)."""
    trades = {}
    for path in REPLAY:
        with gzip.open(path, "rt") as capture:
            for line in capture:
                text = line.partition(" ")[2]
                if text.startswith('{"stream":"btcusdt@trade"'):
                    d = json.loads(text)["data"]
                    trades[d["t"]] = (Decimal(d["p"]), Decimal(d["q"]), d["T"] * 1000, d["m"])
    return trades


def test_replaying_the_real_capture_stores_exactly_its_trades(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Both files of the real hftbacktest BTCUSDT capture, replayed by the simulator over a real WebSocket,
    through the binance_stream job: exactly the capture's 19,904 trades, each once, every value exact."""
    expected = capture_trades()
    with run_simulator(replay=REPLAY, replay_speed=0) as sim:
        monkeypatch.setenv("BINANCE_WS_URL", sim.ws_url(""))
        monkeypatch.setenv("STREAM_SPOOL_DIR", str(tmp_path / "spool"))
        job = load_defs().resolve_job_def("binance_stream")
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("binance_symbols", ["BTCUSDT"])
            config = {"window_seconds": 6, "kinds": ["trade"], "flush_interval_seconds": 0.5}
            result = job.execute_in_process(
                instance=instance, run_config={"ops": {"stream_binance": {"config": config}}}
            )
    assert result.success
    with warehouse.session() as client:
        summary = client.query(
            sql(
                warehouse,
                "SELECT count(), uniqExact(trade_id), min(trade_id), max(trade_id), sum(qty) "
                "FROM ${database}.individual_trades WHERE symbol = 'BTCUSDT'",
            )  # fmt: skip
        ).result_rows[0]
        stored = client.query(
            sql(
                warehouse,
                "SELECT trade_id, price, qty, toUnixTimestamp64Micro(ts), is_buyer_maker "
                "FROM ${database}.individual_trades",
            )  # fmt: skip
        ).result_rows
        aggregates = client.query(sql(warehouse, "SELECT count() FROM ${database}.trades")).result_rows[0][0]
    total_qty = sum((v[1] for v in expected.values()), Decimal(0))
    assert summary == (19904, 19904, 3735683259, 3735703162, total_qty)  # contiguous: max - min + 1 = count
    assert {r[0]: tuple(r[1:]) for r in stored} == expected
    assert aggregates == 0  # individual trades are not passed off as aggregate trades
