"""Aggregates and quality through Dagster: real archived days, a corrupted minute, the nightly schedule,
automation after a backfill, warehouse health and freshness."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pandas as pd
import pytest

from warehouse_assets.definitions import defs as load_defs
from warehouse_assets.defs.aggregates.assets import ohlcv
from warehouse_assets.defs.klines.assets import klines_1m
from warehouse_assets.defs.klines.schema_check import klines_schema
from warehouse_assets.defs.resources import BinanceResource, WarehouseResource
from warehouse_assets.lib.warehouse import Warehouse
from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator
from warehouse_assets_tests.conftest import SPOT_ARCHIVE, SPOT_KLINES_CSV, sql

pytestmark = pytest.mark.slow
DAYS = ["2020-01-01", "2020-01-02", "2020-01-03"]
KLINES = dg.AssetKey(["binance", "klines_1m"])
HOURLY = dg.AssetKey(["binance", "ohlcv_1h"])
DAILY = dg.AssetKey(["binance", "ohlcv_1d"])
HEALTH = dg.AssetKey(["warehouse_health"])
SCHEMA = dg.AssetCheckKey(KLINES, "schema")
VALUES = ["open", "high", "low", "close", "volume", "quote_volume", "trades", "taker_buy_base_volume",
          "taker_buy_quote_volume", "minutes"]  # fmt: skip


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
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions("binance_symbols", ["BTCUSDT"])
        yield inst


def run(
    instance: dg.DagsterInstance,
    selection: dg.AssetSelection,
    first: str,
    last: str,
    *,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """What the UI launches for a selection and a day range of BTCUSDT (one run of the range)."""
    return dg.materialize(
        [klines_1m, ohlcv, klines_schema],
        selection=selection,
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": f"{first}|BTCUSDT",
            "dagster/asset_partition_range_end": f"{last}|BTCUSDT",
        },
        raise_on_error=raise_on_error,
        resources={"warehouse": WarehouseResource(), "binance": BinanceResource()},
    )


def pandas_aggregates(days: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hours and days from the real CSVs, independently: Python Decimals grouped in pandas."""
    rows = []
    for day in days:
        with (SPOT_KLINES_CSV / f"BTCUSDT-1m-{day}.csv").open() as f:
            rows += list(csv.reader(f))
    frame = pd.DataFrame(
        {
            "open_time": [int(r[0]) for r in rows],
            **{name: [Decimal(r[i]) for r in rows] for name, i in (("open", 1), ("high", 2), ("low", 3),
               ("close", 4), ("volume", 5), ("quote_volume", 7), ("taker_buy_base_volume", 9),
               ("taker_buy_quote_volume", 10))},
            "trades": [int(r[8]) for r in rows],
        }
    ).sort_values("open_time")  # fmt: skip

    def aggregate(bucket_ms: int) -> pd.DataFrame:
        grouped = frame.groupby(frame["open_time"] // bucket_ms * bucket_ms)
        dec = lambda s: sum(s, Decimal(0))  # noqa: E731
        return pd.DataFrame(
            {
                "open": grouped["open"].first(),
                "high": grouped["high"].max(),
                "low": grouped["low"].min(),
                "close": grouped["close"].last(),
                "volume": grouped["volume"].apply(dec),
                "quote_volume": grouped["quote_volume"].apply(dec),
                "trades": grouped["trades"].sum(),
                "taker_buy_base_volume": grouped["taker_buy_base_volume"].apply(dec),
                "taker_buy_quote_volume": grouped["taker_buy_quote_volume"].apply(dec),
                "minutes": grouped["open"].count(),
            }
        )

    return aggregate(3_600_000), aggregate(86_400_000)


def stored(wh: Warehouse, table: str) -> pd.DataFrame:
    with wh.session() as client:
        rows = client.query(
            sql(
                wh,
                "SELECT toUnixTimestamp64Milli(open_time), "
                + ", ".join(VALUES)
                + f" FROM ${{database}}.{table} ORDER BY open_time",
            )
        ).result_rows
    return pd.DataFrame(rows, columns=["open_time", *VALUES]).set_index("open_time")


def test_aggregates_of_real_days_equal_an_independent_pandas_computation(
    sim: SimulatorHandle, instance: dg.DagsterInstance, warehouse: Warehouse
) -> None:
    result = run(instance, dg.AssetSelection.assets(KLINES, HOURLY, DAILY), DAYS[0], DAYS[-1])
    assert result.success
    evaluations = {(e.asset_key, e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations[(KLINES, "schema")] and evaluations[(KLINES, "ohlc_invariants")]
    assert evaluations[(HOURLY, "hours_match_minutes")] and evaluations[(DAILY, "days_match_hours")]

    hours, days = pandas_aggregates(DAYS)
    assert len(hours) == 72 and len(days) == 3
    for table, expected in (("ohlcv_1h", hours), ("ohlcv_1d", days)):
        got = stored(warehouse, table)
        assert got.index.tolist() == expected.index.tolist()
        for column in VALUES:
            assert got[column].tolist() == expected[column].tolist(), (table, column)

    # Re-materializing rebuilds without double counting: a plain SELECT still sees one row per hour/day.
    assert run(instance, dg.AssetSelection.assets(HOURLY, DAILY), DAYS[0], DAYS[-1]).success
    assert stored(warehouse, "ohlcv_1h")["volume"].tolist() == hours["volume"].tolist()
    assert len(stored(warehouse, "ohlcv_1d")) == 3


def test_a_corrupted_minute_fails_the_blocking_check_and_its_aggregates_wait_for_the_fix(
    sim: SimulatorHandle, instance: dg.DagsterInstance, warehouse: Warehouse
) -> None:
    day = DAYS[1]
    assert run(instance, dg.AssetSelection.assets(KLINES), day, day).success
    with warehouse.session() as client:  # bad data reaching the table another way (a stream, a manual edit)
        client.command(
            sql(
                warehouse,
                "ALTER TABLE ${database}.klines_1m UPDATE high = low - 1 "
                "WHERE open_time = '2020-01-02 13:37:00' SETTINGS mutations_sync = 2",
            )
        )
    aggregates_after_check = dg.AssetSelection.checks(SCHEMA) | dg.AssetSelection.assets(HOURLY, DAILY)
    failed = run(instance, aggregates_after_check, day, day, raise_on_error=False)
    assert not failed.success
    (schema,) = [e for e in failed.get_asset_check_evaluations() if e.check_name == "schema"]
    assert not schema.passed and schema.severity == dg.AssetCheckSeverity.ERROR
    assert "2020-01-02 13:37:00" in schema.metadata["failure_cases"].value
    assert schema.metadata["failing_partitions"].value == 1
    assert not failed.get_asset_materialization_events()  # the blocking check stopped the aggregates
    assert stored(warehouse, "ohlcv_1h").empty and stored(warehouse, "ohlcv_1d").empty

    # Fix the data (re-materialize the day from the exchange) and re-run: the aggregates are built.
    fixed = run(instance, dg.AssetSelection.assets(KLINES, HOURLY, DAILY), day, day)
    assert fixed.success
    hours, days = pandas_aggregates([day])
    assert stored(warehouse, "ohlcv_1h")["high"].tolist() == hours["high"].tolist()
    assert stored(warehouse, "ohlcv_1d")["minutes"].tolist() == [1440]


def test_the_nightly_tick_requests_yesterday_for_every_registered_symbol(
    instance: dg.DagsterInstance,
) -> None:
    defs = load_defs()
    schedule = defs.resolve_schedule_def("nightly_binance_schedule")
    assert schedule.cron_schedule == "10 0 * * *" and schedule.execution_timezone == "UTC"
    instance.add_dynamic_partitions("binance_symbols", ["ETHUSDT"])
    tick = datetime(2024, 3, 5, 0, 10, tzinfo=UTC)
    result = schedule.evaluate_tick(
        dg.build_schedule_context(
            instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def()
        )
    )
    requests = result.run_requests or []
    assert sorted(r.partition_key for r in requests) == ["2024-03-04|BTCUSDT", "2024-03-04|ETHUSDT"]
    assert len({r.run_key for r in requests}) == 2
    job = defs.resolve_job_def("nightly_binance")
    assert set(job.asset_layer.selected_asset_keys) == {KLINES, HOURLY, DAILY}
    assert SCHEMA in job.asset_layer.asset_graph.asset_check_keys


def test_a_backfilled_historical_day_of_klines_leads_to_its_aggregates(
    sim: SimulatorHandle, instance: dg.DagsterInstance, warehouse: Warehouse
) -> None:
    defs = load_defs()
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0  # nothing materialized, nothing to follow
    assert run(instance, dg.AssetSelection.assets(KLINES), DAYS[0], DAYS[0]).success
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert after.get_requested_partitions(HOURLY) == {f"{DAYS[0]}|BTCUSDT"}


def test_warehouse_health_reports_every_table(
    sim: SimulatorHandle, instance: dg.DagsterInstance, warehouse: Warehouse
) -> None:
    assert run(instance, dg.AssetSelection.assets(KLINES), DAYS[0], DAYS[0]).success
    defs = load_defs()
    result = dg.materialize([defs.resolve_assets_def(HEALTH)], instance=instance)
    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    assert meta["klines_1m/rows"].value == 1440
    assert meta["klines_1m/active_parts"].value >= 1
    assert meta["klines_1m/compression_ratio"].value > 1.5  # codecs do their job on real data
    assert meta["klines_1m/bytes_on_disk"].value > 0
    assert "| klines_1m | 1,440 |" in meta["summary"].value


def test_freshness_check_flags_a_symbol_behind(
    instance: dg.DagsterInstance, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance.add_dynamic_partitions("binance_symbols", ["ETHUSDT"])
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    old = yesterday - timedelta(days=5)
    with warehouse.session() as client:  # BTCUSDT has yesterday; ETHUSDT stopped five days earlier
        for symbol, day in (("BTCUSDT", yesterday), ("ETHUSDT", old)):
            client.command(
                sql(
                    warehouse,
                    "INSERT INTO ${database}.klines_1m (exchange, symbol, open_time, close_time, open, high, low, "
                    "close, volume, quote_volume, trades, taker_buy_base_volume, taker_buy_quote_volume, source) "
                    "SELECT 'binance', {s:String}, t, t + toIntervalMillisecond(59999), 1, 1, 1, 1, 0, 0, 0, 0, 0, "
                    "'rest' FROM (SELECT toDateTime64({d:Date}, 3, 'UTC') + toIntervalMinute(number) AS t "
                    "FROM numbers(1440))",
                ),
                parameters={"s": symbol, "d": day},
            )
    defs = load_defs()
    job = defs.resolve_job_def("warehouse_health_job")
    result = job.execute_in_process(instance=instance)
    (fresh,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "fresh"]
    assert not fresh.passed and fresh.severity == dg.AssetCheckSeverity.WARN
    assert fresh.metadata["stale_symbols"].value == 1
    table = fresh.metadata["by_symbol"].value
    assert f"| BTCUSDT | {yesterday} | 1440 |" in table and f"| ETHUSDT | {old} | 1440 |" in table
    assert 24 * 5 <= fresh.metadata["oldest_age_hours"].value < 24 * 6  # ended five days before today began

    monkeypatch.setenv("KLINES_FRESHNESS_HOURS", str(24 * 8))  # a looser limit: both are fresh
    relaxed = job.execute_in_process(instance=instance)
    assert all(e.passed for e in relaxed.get_asset_check_evaluations() if e.check_name == "fresh")
