"""The pandera models catch what they claim to, on real data, with failure cases naming the rows."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from warehouse_assets.lib import schemas
from warehouse_assets.lib.binance.archive_format import read_agg_trades, read_klines
from warehouse_assets.lib.records import DECIMAL
from warehouse_assets_tests.conftest import SHARED_DATA, SPOT_ARCHIVE

REAL_DAY = SPOT_ARCHIVE / "klines" / "BTCUSDT-1m-2020-01-01.zip"
REAL_TRADES = SHARED_DATA / "binance_vision/spot/aggTrades/BTCUSDT-aggTrades-2026-01-01_first5000rows.csv"


@pytest.fixture(scope="module")
def klines() -> pa.Table:
    return read_klines(Path(REAL_DAY), symbol="BTCUSDT")


def with_value(table: pa.Table, column: str, row: int, value: object) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    return table.set_column(
        table.schema.get_field_index(column), column, pa.array(values, table.schema.field(column).type)
    )


def test_a_real_day_of_klines_and_trades_passes() -> None:
    report = schemas.validate(schemas.Klines1m, read_klines(Path(REAL_DAY), symbol="BTCUSDT"))
    assert report.passed and report.rows == 1440
    assert schemas.validate(schemas.Trades, read_agg_trades(REAL_TRADES, symbol="BTCUSDT")).passed


@pytest.mark.parametrize(
    ("column", "row", "value", "check"),
    [
        ("high", 5, Decimal("7000"), "low <= open, close <= high"),
        ("low", 6, Decimal("9000"), "low <= open, close <= high"),
        ("volume", 7, Decimal("-1"), "greater_than_or_equal_to"),
        ("open", 8, Decimal("0"), "greater_than"),
        ("taker_buy_base_volume", 9, Decimal("1e9"), "taker buy volumes <= volumes"),
        ("symbol", 10, "btc usdt", "str_matches"),
    ],
)
def test_each_invariant_is_caught_and_names_the_row(
    klines: pa.Table, column: str, row: int, value: object, check: str
) -> None:
    report = schemas.validate(schemas.Klines1m, with_value(klines, column, row, value))
    assert not report.passed and report.failing_rows == 1
    assert report.failure_cases["check"].str.contains(check, regex=False).any()
    minute = klines.column("open_time")[row].as_py()
    assert str(minute) in report.markdown()


def test_duplicated_and_misaligned_minutes_are_caught(klines: pa.Table) -> None:
    duplicated = pa.concat_tables([klines, klines.slice(100, 1)])
    report = schemas.validate(schemas.Klines1m, duplicated)
    assert report.failure_cases["check"].str.contains("one row per").sum() == 2  # both copies listed
    shifted = pc.add(klines.column("close_time").cast(pa.int64()), 1).cast(
        klines.schema.field("close_time").type
    )
    report = schemas.validate(schemas.Klines1m, klines.set_column(3, "close_time", shifted))
    assert report.failing_rows == 1440


def test_values_stay_exact_decimals(klines: pa.Table) -> None:
    tiny = with_value(klines, "open", 0, Decimal("0.000000001745"))  # SHIB/BTC-sized, 12 decimals
    tiny = with_value(tiny, "low", 0, Decimal("0.000000001745"))
    frame = schemas.frame(tiny)
    assert frame["open"].dtype == schemas.DECIMAL and frame["open"].iloc[0] == Decimal("0.000000001745")
    assert tiny.schema.field("open").type == DECIMAL
    assert schemas.validate(schemas.Klines1m, tiny).passed
