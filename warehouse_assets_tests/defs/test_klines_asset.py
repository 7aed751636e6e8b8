"""End to end through Dagster: the simulator serves real Binance archives, the asset writes the warehouse."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from decimal import Decimal

import dagster as dg
import pytest

from warehouse_assets.definitions import defs as load_defs
from warehouse_assets.lib.warehouse import Warehouse
from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator
from warehouse_assets_tests.conftest import SPOT_ARCHIVE, SPOT_KLINES_CSV, sql

pytestmark = pytest.mark.slow
DAYS = ["2020-01-01", "2020-01-02", "2020-01-03"]
VALUE_COLUMNS = [
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
]


@pytest.fixture(scope="module")
def archive_simulator() -> Iterator[SimulatorHandle]:
    with run_simulator(archive_dir=SPOT_ARCHIVE) as sim:
        yield sim


@pytest.fixture
def sim(archive_simulator: SimulatorHandle, monkeypatch: pytest.MonkeyPatch) -> SimulatorHandle:
    archive_simulator.reset()
    monkeypatch.setenv("BINANCE_API_URL", archive_simulator.base_url)
    monkeypatch.setenv("BINANCE_ARCHIVE_URL", archive_simulator.base_url)
    return archive_simulator


@pytest.fixture
def rest_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KLINES_ARCHIVE", "false")


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions("binance_symbols", ["BTCUSDT"])
        yield inst


def materialize_days(
    instance: dg.DagsterInstance, first: str, last: str, symbol: str = "BTCUSDT"
) -> dg.ExecuteInProcessResult:
    defs = load_defs()
    return dg.materialize(
        [defs.resolve_assets_def(dg.AssetKey(["binance", "klines_1m"]))],
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": f"{first}|{symbol}",
            "dagster/asset_partition_range_end": f"{last}|{symbol}",
        },
    )


def csv_rows(day: str) -> list[list[str]]:
    with (SPOT_KLINES_CSV / f"BTCUSDT-1m-{day}.csv").open() as f:
        return list(csv.reader(f))


def warehouse_rows(wh: Warehouse) -> list[tuple]:
    with wh.session() as client:
        return client.query(
            sql(
                wh,
                "SELECT toUnixTimestamp64Milli(open_time), toUnixTimestamp64Milli(close_time), "
                + ", ".join(VALUE_COLUMNS)
                + ", source FROM ${database}.klines_1m WHERE symbol = {s:String} ORDER BY open_time",
            ),
            parameters={"s": "BTCUSDT"},
        ).result_rows


def checks_by_name(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_three_real_days_land_exactly(
    sim: SimulatorHandle, instance: dg.DagsterInstance, warehouse: Warehouse
) -> None:
    result = materialize_days(instance, DAYS[0], DAYS[-1])
    assert result.success

    expected = [row for day in DAYS for row in csv_rows(day)]
    assert len(expected) == 4320
    got = warehouse_rows(warehouse)
    assert len(got) == 4320
    for want, have in zip(expected, got, strict=True):
        assert have[0] == int(want[0]) and have[1] == int(want[6])
        wanted_values = [want[1], want[2], want[3], want[4], want[5], want[7], want[8], want[9], want[10]]
        for column, text, value in zip(VALUE_COLUMNS, wanted_values, have[2:11], strict=True):
            assert value == (int(text) if column == "trades" else Decimal(text)), (column, want[0])
        assert have[11] == "archive"  # whole published days come from the verified archive

    checks = checks_by_name(result)
    assert {name: c.passed for name, c in checks.items()} == {
        "ohlc_invariants": True,
        "no_duplicate_minutes": True,
        "complete_days": True,
    }
    mats = result.asset_materializations_for_node("binance__klines_1m")
    by_partition = {m.partition: m.metadata for m in mats}
    assert set(by_partition) == {f"{d}|BTCUSDT" for d in DAYS}
    first_day = by_partition["2020-01-01|BTCUSDT"]
    assert first_day["dagster/partition_row_count"].value == 1440
    assert first_day["missing_minutes"].value == 0
    assert first_day["first_open_time"].value == 1577836800.0
    assert first_day["last_open_time"].value == 1577836800.0 + 1439 * 60
    assert first_day["dagster/table_name"].value == f"{warehouse.database}.klines_1m"
    schema = first_day["dagster/column_schema"].value
    assert [c.name for c in schema.columns][:4] == ["exchange", "symbol", "open_time", "close_time"]


def test_rematerializing_changes_nothing(
    sim: SimulatorHandle, instance: dg.DagsterInstance, warehouse: Warehouse
) -> None:
    def totals() -> tuple:
        with warehouse.session() as client:
            return client.query(
                sql(
                    warehouse,
                    "SELECT count(), uniqExact(open_time), sum(volume), sum(quote_volume), sum(trades), max(high), "
                    "min(low) FROM ${database}.klines_1m",
                )
            ).result_rows[0]

    assert materialize_days(instance, DAYS[0], DAYS[-1]).success
    before = totals()
    assert materialize_days(instance, DAYS[0], DAYS[-1]).success
    assert materialize_days(instance, DAYS[1], DAYS[1]).success
    after = totals()
    assert before == after
    assert after[0] == after[1] == 4320
    expected_volume = sum(Decimal(r[5]) for d in DAYS for r in csv_rows(d))
    assert after[2] == expected_volume


def test_minutes_the_exchange_lacks_give_a_warning_listing_them(
    sim: SimulatorHandle, instance: dg.DagsterInstance, warehouse: Warehouse, rest_only: None
) -> None:
    start = 1577959200000  # 2020-01-02T10:00Z
    sim.set_faults(missing=[{"symbol": "BTCUSDT", "start": start, "end": start + 5 * 60_000}])
    result = materialize_days(instance, DAYS[1], DAYS[1])
    assert result.success
    complete = checks_by_name(result)["complete_days"]
    assert not complete.passed
    assert complete.severity == dg.AssetCheckSeverity.WARN
    assert complete.metadata["missing_minutes"].value == 5
    assert complete.metadata["largest_gap_minutes"].value == 5
    assert "2020-01-02T10:00Z–2020-01-02T10:04Z" in complete.metadata["missing"].value
    assert "exchange served none" in complete.metadata["missing"].value
    (mat,) = result.asset_materializations_for_node("binance__klines_1m")
    assert mat.metadata["missing_minutes"].value == 5
    assert mat.metadata["missing_minute_ranges"].value == "2020-01-02T10:00Z–2020-01-02T10:04Z"
    assert checks_by_name(result)["ohlc_invariants"].passed
    with warehouse.session() as client:
        assert client.query(sql(warehouse, "SELECT count() FROM ${database}.klines_1m")).result_rows == [
            (1435,)
        ]

    # The exchange fills the gap later: re-running the day repairs it.
    sim.reset()
    again = materialize_days(instance, DAYS[1], DAYS[1])
    assert checks_by_name(again)["complete_days"].passed
    with warehouse.session() as client:
        assert client.query(sql(warehouse, "SELECT count() FROM ${database}.klines_1m")).result_rows == [
            (1440,)
        ]


def test_a_malformed_row_fails_the_run_inserts_nothing_and_is_kept_as_a_dead_letter(
    sim: SimulatorHandle, instance: dg.DagsterInstance, warehouse: Warehouse, rest_only: None
) -> None:
    bad_minute = 1577836800000 + 60_000 * 100
    row = [
        bad_minute,
        "7200.00",
        "7100.00",
        "7300.00",
        "7150.00",
        "1.0",
        bad_minute + 59_999,
        "7150.0",
        3,
        "0.5",
        "3575.0",
        "0",
    ]
    sim.set_faults(kline_overrides=[{"symbol": "BTCUSDT", "open_time": bad_minute, "row": row}])
    with pytest.raises(Exception, match="high") as info:
        materialize_days(instance, DAYS[0], DAYS[0])
    assert "BTCUSDT" in str(info.value)
    with warehouse.session() as client:
        assert client.query(sql(warehouse, "SELECT count() FROM ${database}.klines_1m")).result_rows == [(0,)]
        letters = client.query(
            sql(
                warehouse,
                "SELECT exchange, source, kind, symbol, reason, payload FROM ${database}.dead_letters",
            )
        ).result_rows
    assert len(letters) == 1
    exchange, source, kind, symbol, reason, payload = letters[0]
    assert (exchange, source, kind, symbol) == ("binance", "rest", "kline", "BTCUSDT")
    assert "high" in reason and str(bad_minute) in payload


def test_unknown_symbol_fails_with_a_message_naming_it(
    sim: SimulatorHandle, instance: dg.DagsterInstance, warehouse: Warehouse
) -> None:
    instance.add_dynamic_partitions("binance_symbols", ["NOPEUSDT"])
    with pytest.raises(Exception, match="NOPEUSDT.*not listed"):
        materialize_days(instance, DAYS[0], DAYS[0], symbol="NOPEUSDT")


def test_archive_and_rest_give_identical_rows(
    sim: SimulatorHandle, instance: dg.DagsterInstance, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert materialize_days(instance, DAYS[0], DAYS[-1]).success
    from_archive = warehouse_rows(warehouse)
    requests_after_archive = sim.stats()["by_path"].get("/api/v3/klines", 0)
    monkeypatch.setenv("KLINES_ARCHIVE", "false")
    assert materialize_days(instance, DAYS[0], DAYS[-1]).success
    from_rest = warehouse_rows(warehouse)
    assert requests_after_archive == 0  # the archive run used no REST klines weight
    assert {r[11] for r in from_archive} == {"archive"} and {r[11] for r in from_rest} == {"rest"}
    assert len(from_archive) == len(from_rest) == 4320
    assert [r[:11] for r in from_archive] == [r[:11] for r in from_rest]


def test_an_unpublished_day_comes_from_rest(
    sim: SimulatorHandle, instance: dg.DagsterInstance, warehouse: Warehouse
) -> None:
    sim.set_faults(archive_missing=["BTCUSDT-1m-2020-01-02.zip"])
    assert materialize_days(instance, DAYS[0], DAYS[-1]).success
    with warehouse.session() as client:
        by_source = dict(
            client.query(
                sql(warehouse, "SELECT source, count() FROM ${database}.klines_1m GROUP BY source")
            ).result_rows
        )
        rest_day = client.query(
            sql(
                warehouse,
                "SELECT DISTINCT toString(toDate(open_time)) FROM ${database}.klines_1m WHERE source = 'rest'",
            )
        ).result_rows
    assert by_source == {"archive": 2880, "rest": 1440}
    assert rest_day == [("2020-01-02",)]


def test_a_corrupt_archive_fails_naming_the_file_and_inserts_nothing_of_its_day(
    sim: SimulatorHandle, instance: dg.DagsterInstance, warehouse: Warehouse
) -> None:
    sim.set_faults(archive_corrupt=["BTCUSDT-1m-2020-01-02.zip"])
    with pytest.raises(Exception, match="BTCUSDT-1m-2020-01-02.zip") as info:
        materialize_days(instance, DAYS[0], DAYS[-1])
    assert "checksum" in str(info.value).lower()
    with warehouse.session() as client:
        days = client.query(
            sql(warehouse, "SELECT count() FROM ${database}.klines_1m WHERE toDate(open_time) = '2020-01-02'")
        ).result_rows
        letters = client.query(
            sql(warehouse, "SELECT source, kind, symbol, payload FROM ${database}.dead_letters")
        ).result_rows
    assert days == [(0,)]
    assert len(letters) == 1 and letters[0][:3] == ("archive", "kline", "BTCUSDT")
    assert "BTCUSDT-1m-2020-01-02.zip" in letters[0][3]
