"""Hourly and daily aggregates in a real embedded ClickHouse: rebuilt alone, refused on bad klines,
and reconciliation that notices a single wrong value."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from warehouse_assets.lib import aggregates_store, klines_store, schemas
from warehouse_assets.lib.binance.archive_format import read_klines
from warehouse_assets.lib.warehouse import SqlFile, Warehouse
from warehouse_assets_tests.conftest import SPOT_ARCHIVE, sql

DAY = date(2020, 1, 1)


@pytest.fixture
def loaded(warehouse: Warehouse) -> Warehouse:
    table = read_klines(Path(SPOT_ARCHIVE / "klines" / "BTCUSDT-1m-2020-01-01.zip"), symbol="BTCUSDT")
    start = 1_577_836_800_000
    with warehouse.session() as client:
        klines_store.replace_window(
            client, warehouse.database, exchange="binance", symbol="BTCUSDT",
            start_ms=start, end_ms=start + 86_400_000, klines=table, source="archive",
        )  # fmt: skip
    return warehouse


def rebuild(wh: Warehouse) -> aggregates_store.DayBuild:
    with wh.session() as client:
        return aggregates_store.rebuild_day(
            client, wh.database, exchange="binance", symbol="BTCUSDT", day=DAY
        )


def test_a_day_rebuilds_alone_and_reconciles(loaded: Warehouse) -> None:
    first = rebuild(loaded)
    assert (first.hours, first.incomplete_hours, first.minutes, first.replaced_older) == (24, 0, 1440, 0)
    assert first.hour_mismatches == [] and first.day_mismatches == []
    again = rebuild(loaded)
    assert again.replaced_older == 25  # 24 hours and 1 day of the previous build
    with loaded.session() as client:
        counts = client.query(
            sql(
                loaded,
                "SELECT (SELECT count() FROM ${database}.ohlcv_1h), (SELECT count() FROM ${database}.ohlcv_1d)",
            )
        ).result_rows[0]
    assert counts == (24, 1)


@pytest.mark.parametrize(
    ("table", "hour", "hour_diffs", "day_diffs"),
    [
        ("ohlcv_1h", 7, 1, 1),  # a wrong hour: it differs from its minutes and its day from it
        ("ohlcv_1d", 0, 0, 1),  # a wrong day only
    ],
)
def test_reconciliation_finds_a_single_wrong_value(
    loaded: Warehouse, table: str, hour: int, hour_diffs: int, day_diffs: int
) -> None:
    rebuild(loaded)
    tamper = SqlFile(
        name="<test>",
        text="ALTER TABLE ${database}.${table} UPDATE trades = trades + 1 "
        "WHERE toHour(open_time) = {hour:UInt8} SETTINGS mutations_sync = 2",
    )
    with loaded.session() as client:
        client.command(tamper.render(database=loaded.database, table=table), parameters={"hour": hour})
        (checked,) = aggregates_store.reconcile_days(
            client, loaded.database, exchange="binance", symbol="BTCUSDT", days=[DAY]
        )
    assert len(checked.hour_mismatches) == hour_diffs
    assert len(checked.day_mismatches) == day_diffs
    wrong = (checked.hour_mismatches or checked.day_mismatches)[0]
    assert wrong.stored is not None and wrong.from_sources is not None
    assert wrong.stored[6] == wrong.from_sources[6] + 1  # the trades field, exactly one off


def test_bad_klines_build_nothing(loaded: Warehouse) -> None:
    with loaded.session() as client:
        client.command(
            sql(
                loaded,
                "ALTER TABLE ${database}.klines_1m UPDATE volume = -1 WHERE open_time = '2020-01-01 10:00:00' SETTINGS mutations_sync = 2",
            )
        )
    with pytest.raises(
        aggregates_store.BadKlinesError, match="BTCUSDT 2020-01-01 fail the Klines1m schema"
    ) as info:
        rebuild(loaded)
    assert "2020-01-01 10:00:00" in info.value.report.markdown()
    with loaded.session() as client:
        assert client.query(sql(loaded, "SELECT count() FROM ${database}.ohlcv_1h")).result_rows == [(0,)]


def test_built_aggregates_satisfy_their_models(loaded: Warehouse) -> None:
    rebuild(loaded)
    with loaded.session() as client:
        hours = client.query_arrow(sql(loaded, "SELECT * FROM ${database}.ohlcv_1h ORDER BY open_time"))
        days = client.query_arrow(sql(loaded, "SELECT * FROM ${database}.ohlcv_1d"))
    assert schemas.validate(schemas.Ohlcv1h, hours).passed and hours.num_rows == 24
    assert schemas.validate(schemas.Ohlcv1d, days).passed and days.num_rows == 1
    shifted = hours.set_column(
        hours.schema.get_field_index("open_time"),
        "open_time",
        pc.add(hours.column("open_time").cast(pa.int64()), 60_000).cast(hours.schema.field("open_time").type),
    )
    report = schemas.validate(schemas.Ohlcv1h, shifted)
    assert report.failing_rows == 24 and report.failure_cases["check"].str.contains("on an hour").all()
