"""End to end through Dagster: the synthetic simulator (trades that add up exactly to its klines) serves
REST and data.binance.vision; binance/agg_trades and binance/candles_1m write the embedded warehouse."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from warehouse_assets.definitions import defs as load_defs
from warehouse_assets.lib.warehouse import Warehouse
from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator
from warehouse_assets_tests.conftest import sql

pytestmark = pytest.mark.slow
DAYS = ["2024-03-01", "2024-03-02"]
KLINES = dg.AssetKey(["binance", "klines_1m"])
AGG_TRADES = dg.AssetKey(["binance", "agg_trades"])
CANDLES = dg.AssetKey(["binance", "candles_1m"])


@pytest.fixture(scope="module")
def synthetic_simulator() -> Iterator[SimulatorHandle]:
    with run_simulator(trades_per_day=20_000) as sim:
        yield sim


@pytest.fixture
def sim(synthetic_simulator: SimulatorHandle, monkeypatch: pytest.MonkeyPatch) -> SimulatorHandle:
    synthetic_simulator.reset()
    monkeypatch.setenv("BINANCE_API_URL", synthetic_simulator.base_url)
    monkeypatch.setenv("BINANCE_ARCHIVE_URL", synthetic_simulator.base_url)
    return synthetic_simulator


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions("binance_symbols", ["BTCUSDT"])
        yield inst


def materialize(
    instance: dg.DagsterInstance, keys: list[dg.AssetKey], first: str = DAYS[0], last: str = DAYS[-1]
) -> dg.ExecuteInProcessResult:
    defs = load_defs()
    assets = {defs.resolve_assets_def(key) for key in keys}
    return dg.materialize(
        list(assets),
        selection=keys,
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": f"{first}|BTCUSDT",
            "dagster/asset_partition_range_end": f"{last}|BTCUSDT",
        },
    )


def trades(wh: Warehouse) -> list[tuple]:
    with wh.session() as client:
        return client.query(
            sql(
                wh,
                "SELECT trade_id, price, qty, first_trade_id, last_trade_id, ts, is_buyer_maker, source "
                "FROM ${database}.trades ORDER BY trade_id",
            )
        ).result_rows


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key == AGG_TRADES}


def test_trades_and_candles_reconcile_exactly_with_klines(
    sim: SimulatorHandle, instance: dg.DagsterInstance, warehouse: Warehouse
) -> None:
    sim.set_faults(archive_missing=["BTCUSDT-aggTrades-2024-03-02.zip"])  # not published: REST serves it
    result = materialize(instance, [KLINES, AGG_TRADES, CANDLES])
    assert result.success
    evaluations = checks(result)
    assert {name: e.passed for name, e in evaluations.items()} == {
        "contiguous_ids": True,
        "trade_id_chain": True,
        "matches_klines": True,
    }
    reconciled = evaluations["matches_klines"].metadata
    assert reconciled["days_compared"].value == 2 and reconciled["mismatched_minutes"].value == 0

    rows = trades(warehouse)
    ids = [r[0] for r in rows]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # contiguous across both days, each once
    by_day = {}
    for r in rows:
        by_day.setdefault(r[5].date().isoformat(), set()).add(r[7])
    assert by_day == {"2024-03-01": {"archive"}, "2024-03-02": {"rest"}}

    mats = {
        (m.asset_key, m.partition): m.metadata
        for m in result.get_asset_materialization_events()
        for m in [m.materialization]
    }
    day_one = mats[(AGG_TRADES, "2024-03-01|BTCUSDT")]
    assert day_one["source"].value == "archive"
    assert day_one["rows"].value == sum(1 for r in rows if r[5].date().isoformat() == "2024-03-01")
    with warehouse.session() as client:
        candles, candle_trades = client.query(
            sql(warehouse, "SELECT count(), sum(agg_trades) FROM ${database}.candles_1m")
        ).result_rows[0]
    assert candle_trades == len(rows)
    assert (
        mats[(CANDLES, "2024-03-01|BTCUSDT")]["candles"].value
        + mats[(CANDLES, "2024-03-02|BTCUSDT")]["candles"].value
        == candles
    )


def test_archive_and_rest_give_identical_trades_and_rerunning_duplicates_nothing(
    sim: SimulatorHandle, instance: dg.DagsterInstance, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert materialize(instance, [AGG_TRADES, CANDLES], DAYS[0], DAYS[0]).success
    from_archive = trades(warehouse)
    monkeypatch.setenv("KLINES_ARCHIVE", "false")
    assert materialize(instance, [AGG_TRADES, CANDLES], DAYS[0], DAYS[0]).success
    from_rest = trades(warehouse)
    assert {r[7] for r in from_archive} == {"archive"} and {r[7] for r in from_rest} == {"rest"}
    assert [r[:7] for r in from_rest] == [r[:7] for r in from_archive]  # same ids, values, µs times
    with warehouse.session() as client:
        count, distinct = client.query(
            sql(warehouse, "SELECT count(), uniqExact(open_time) FROM ${database}.candles_1m")
        ).result_rows[0]
    assert count == distinct == 1440


def test_selecting_only_candles_rebuilds_them_from_stored_trades(
    sim: SimulatorHandle, instance: dg.DagsterInstance, warehouse: Warehouse
) -> None:
    assert materialize(instance, [AGG_TRADES], DAYS[0], DAYS[0]).success
    with warehouse.session() as client:
        assert client.query(sql(warehouse, "SELECT count() FROM ${database}.candles_1m")).result_rows == [
            (1440,)
        ]
        client.command(sql(warehouse, "TRUNCATE TABLE ${database}.candles_1m"))
    requests_before = sim.stats()
    result = materialize(instance, [CANDLES], DAYS[0], DAYS[0])
    assert result.success
    assert sim.stats() == requests_before  # nothing fetched
    with warehouse.session() as client:
        assert client.query(sql(warehouse, "SELECT count() FROM ${database}.candles_1m")).result_rows == [
            (1440,)
        ]


@pytest.mark.parametrize(
    ("fault", "message"),
    [("archive_corrupt", "failed verification"), ("archive_truncate", "not covered")],
)
def test_a_bad_archive_fails_naming_the_file_and_inserts_nothing_of_its_day(
    sim: SimulatorHandle, instance: dg.DagsterInstance, warehouse: Warehouse, fault: str, message: str
) -> None:
    name = "BTCUSDT-aggTrades-2024-03-02.zip"
    sim.set_faults(**{fault: [name]})
    with pytest.raises(Exception, match=name) as info:
        materialize(instance, [AGG_TRADES, CANDLES])
    assert message in str(info.value)
    with warehouse.session() as client:
        days = client.query(
            sql(
                warehouse,
                "SELECT toString(toDate(ts)), count() FROM ${database}.trades GROUP BY 1 ORDER BY 1",
            )
        ).result_rows
        letters = client.query(
            sql(warehouse, "SELECT source, kind, symbol, reason, payload FROM ${database}.dead_letters")
        ).result_rows
    assert [d for d, _ in days] == ["2024-03-01"]  # the day before it was written; nothing of the bad day
    assert len(letters) == 1 and letters[0][:3] == ("archive", "agg_trade", "BTCUSDT")
    assert name in letters[0][4] and message in letters[0][3]
