"""WAREHOUSE_SYMBOLS becomes binance_symbols partitions, validated against the simulator's exchangeInfo."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from warehouse_assets.definitions import defs as load_defs
from warehouse_assets.defs.symbols.sensors import register_binance_symbols
from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator


@pytest.fixture(scope="module")
def synthetic() -> Iterator[SimulatorHandle]:
    with run_simulator() as sim:
        yield sim


@pytest.fixture
def env(synthetic: SimulatorHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINANCE_API_URL", synthetic.base_url)


def tick(instance: dg.DagsterInstance) -> dg.SensorResult | dg.SkipReason:
    context = dg.build_sensor_context(instance=instance, definitions=load_defs())
    return register_binance_symbols(context)


def test_listed_symbols_are_added_and_unknown_ones_reported(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAREHOUSE_SYMBOLS", " btcusdt, NOPEUSDT ,ETHUSDT,BTCUSDT")
    with dg.instance_for_test() as instance:
        result = tick(instance)
        assert isinstance(result, dg.SensorResult)
        (request,) = result.dynamic_partitions_requests or []
        assert isinstance(request, dg.AddDynamicPartitionsRequest)
        assert (request.partitions_def_name, list(request.partition_keys)) == (
            "binance_symbols",
            ["BTCUSDT", "ETHUSDT"],
        )

        instance.add_dynamic_partitions("binance_symbols", list(request.partition_keys))
        again = tick(instance)
        assert isinstance(again, dg.SkipReason)
        assert "NOPEUSDT" in (again.skip_message or "") and "not listed" in (again.skip_message or "")


def test_nothing_configured_is_a_skip_with_advice(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAREHOUSE_SYMBOLS", "")
    with dg.instance_for_test() as instance:
        result = tick(instance)
        assert isinstance(result, dg.SkipReason)
        assert "WAREHOUSE_SYMBOLS" in (result.skip_message or "")


def test_all_registered_is_a_skip(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAREHOUSE_SYMBOLS", "SOLUSDT")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("binance_symbols", ["SOLUSDT"])
        result = tick(instance)
        assert isinstance(result, dg.SkipReason)
        assert "registered" in (result.skip_message or "")
