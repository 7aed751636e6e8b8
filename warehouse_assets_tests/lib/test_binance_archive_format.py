"""archive_format against real data.binance.vision files (spot/futures, ms/µs, header or not), broken
copies of them (a removed row, bad values), and a synthetic 2M-row day for throughput."""

from __future__ import annotations

import csv
import io
import time
import zipfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from warehouse_assets.lib.binance.archive_format import read_agg_trades, read_klines
from warehouse_assets.lib.errors import ArchiveFormatError
from warehouse_assets.lib.records import AGG_TRADE_SCHEMA, KLINE_SCHEMA, AggTrade

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
VISION = SHARED_DATA / "binance_vision"
EXTRACTED = SHARED_DATA / "binance_vision_extracted"
SPOT_AGG_CSV = VISION / "spot" / "aggTrades" / "BTCUSDT-aggTrades-2026-01-01_first5000rows.csv"
CM_AGG_ZIP = VISION / "futures_cm" / "aggTrades" / "BTCUSD_PERP-aggTrades-2026-05-08.zip"

KLINE_DECIMALS = {  # output column -> CSV column index
    "open": 1,
    "high": 2,
    "low": 3,
    "close": 4,
    "volume": 5,
    "quote_volume": 7,
    "taker_buy_base_volume": 9,
    "taker_buy_quote_volume": 10,
}


def csv_rows(path: Path) -> list[list[str]]:
    rows = list(csv.reader(path.read_text().splitlines()))
    return rows[1:] if not rows[0][0].isdigit() else rows


def ms(value: str) -> int:
    number = int(value)
    return number // 1000 if number > 10**14 else number


def assert_klines_equal(table: pa.Table, rows: list[list[str]], symbol: str) -> None:
    assert table.schema == KLINE_SCHEMA
    assert table.num_rows == len(rows)
    got = table.to_pydict()
    assert set(got["exchange"]) == {"binance"} and set(got["symbol"]) == {symbol}
    open_ms = table.column("open_time").cast(pa.int64()).to_pylist()
    close_ms = table.column("close_time").cast(pa.int64()).to_pylist()
    assert open_ms == [ms(r[0]) for r in rows]
    assert close_ms == [ms(r[6]) for r in rows]
    assert got["trades"] == [int(r[8]) for r in rows]
    for name, index in KLINE_DECIMALS.items():
        assert got[name] == [Decimal(r[index]) for r in rows], name


@pytest.mark.parametrize("day", ["2020-01-01", "2020-01-02", "2020-01-03"])
def test_spot_1m_zips_equal_their_extracted_csv(day: str) -> None:
    table = read_klines(VISION / "spot" / "klines" / f"BTCUSDT-1m-{day}.zip", symbol="BTCUSDT")
    rows = csv_rows(EXTRACTED / "spot" / "klines" / f"BTCUSDT-1m-{day}.csv")
    assert len(rows) == 1440
    assert_klines_equal(table, rows, "BTCUSDT")
    first = table.slice(0, 1).to_pylist()[0]
    if day == "2020-01-01":  # spot-check against the published first row
        assert first["open"] == Decimal("7195.24") and first["trades"] == 493
        assert table.column("open_time")[0].value == 1577836800000


def test_spot_2026_hourly_zip_in_microseconds_becomes_milliseconds() -> None:
    table = read_klines(
        VISION / "spot" / "klines" / "BTCUSDT-1h-2026-05-08.zip", symbol="BTCUSDT", interval="1h"
    )
    rows = csv_rows(EXTRACTED / "spot" / "klines" / "BTCUSDT-1h-2026-05-08.csv")
    assert rows[0][0] == "1778198400000000" and rows[0][6] == "1778201999999999"
    assert_klines_equal(table, rows, "BTCUSDT")
    assert table.column("open_time").cast(pa.int64()).to_pylist()[:2] == [1778198400000, 1778202000000]
    assert table.column("close_time").cast(pa.int64())[0].as_py() == 1778201999999


def test_futures_kline_zip_with_header() -> None:
    table = read_klines(
        VISION / "futures_cm" / "klines" / "BTCUSD_PERP-1m-2022-10-24.zip", symbol="BTCUSD_PERP"
    )
    rows = csv_rows(EXTRACTED / "futures_cm" / "klines" / "BTCUSD_PERP-1m-2022-10-24.csv")
    assert len(rows) == 1440
    assert_klines_equal(table, rows, "BTCUSD_PERP")


def assert_agg_trades_equal(table: pa.Table, rows: list[list[str]]) -> None:
    assert table.schema == AGG_TRADE_SCHEMA
    got = table.to_pydict()
    assert got["trade_id"] == [int(r[0]) for r in rows]
    assert got["price"] == [Decimal(r[1]) for r in rows]
    assert got["qty"] == [Decimal(r[2]) for r in rows]
    assert got["first_trade_id"] == [int(r[3]) for r in rows]
    assert got["last_trade_id"] == [int(r[4]) for r in rows]
    expected_us = [int(r[5]) if int(r[5]) > 10**14 else int(r[5]) * 1000 for r in rows]
    assert table.column("ts").cast(pa.int64()).to_pylist() == expected_us
    assert got["is_buyer_maker"] == [r[6].lower() == "true" for r in rows]


def test_spot_agg_trades_csv_microseconds_exact() -> None:
    table = read_agg_trades(SPOT_AGG_CSV, symbol="BTCUSDT")
    rows = csv_rows(SPOT_AGG_CSV)
    assert table.num_rows == 5000
    assert_agg_trades_equal(table, rows)
    ids = table.column("trade_id").to_pylist()
    assert ids == list(range(3800397495, 3800402495))
    # µs kept: 00:00:00.039409, not rounded to .039
    assert table.column("ts").cast(pa.int64())[0].as_py() == 1767225600039409
    assert pc.sum(table.column("qty")).as_py() == sum(Decimal(r[2]) for r in rows)
    assert set(table.column("is_buyer_maker").to_pylist()) == {True, False}


def test_coin_m_agg_trades_zip_whole_day_exact() -> None:
    started = time.perf_counter()
    table = read_agg_trades(CM_AGG_ZIP, symbol="BTCUSD_PERP")
    elapsed = time.perf_counter() - started
    print(
        f"COIN-M aggTrades zip: {table.num_rows} rows in {elapsed:.3f} s = {table.num_rows / elapsed:,.0f} rows/s"
    )
    with zipfile.ZipFile(CM_AGG_ZIP) as archive:
        text = archive.read("BTCUSD_PERP-aggTrades-2026-05-08.csv").decode()
    rows = list(csv.reader(io.StringIO(text)))[1:]
    assert table.num_rows == len(rows) == 105_280
    assert_agg_trades_equal(table, rows)
    assert table.column("trade_id")[0].as_py() == 480537903
    assert table.column("trade_id")[-1].as_py() == 480643182
    assert table.column("ts").cast(pa.int64())[0].as_py() == 1778198400020 * 1000  # ms -> µs
    assert pc.sum(table.column("qty")).as_py() == sum(Decimal(r[2]) for r in rows)


# ------------------------------------------------------------------------------ broken copies


def write_lines(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def spot_agg_lines() -> list[str]:
    return SPOT_AGG_CSV.read_text().splitlines()


def test_removed_middle_row_fails_contiguity_naming_the_row(tmp_path: Path) -> None:
    lines = spot_agg_lines()
    del lines[2500]  # data row 2501 (agg id 3800399995)
    path = write_lines(tmp_path, "holed.csv", lines)
    with pytest.raises(ArchiveFormatError) as caught:
        read_agg_trades(path, symbol="BTCUSDT")
    assert caught.value.row == 2501
    assert caught.value.file == "holed.csv"
    message = str(caught.value)
    assert "holed.csv row 2501" in message
    assert "3800399996 follows 3800399994" in message and "1 missing" in message


def replace_field(line: str, index: int, value: str) -> str:
    fields = line.split(",")
    fields[index] = value
    return ",".join(fields)


@pytest.mark.parametrize(
    ("index", "value", "reason"),
    [
        (1, "-87648.21", "price is '-87648.21'"),
        (1, "0.00000000", "price is 0E-18, expected > 0"),
        (2, "0", "quantity is 0E-18, expected > 0"),
        (2, "1e3", "quantity is '1e3'"),
        (6, "yes", "is_buyer_maker is 'yes'"),
        (7, "maybe", "is_best_match is 'maybe'"),
        (5, "1767225600000000", "transact_time 1767225600000000 µs is before"),
        (0, "0x10", "agg_trade_id is '0x10'"),
    ],
)
def test_bad_agg_trade_values_name_row_and_reason(
    tmp_path: Path, index: int, value: str, reason: str
) -> None:
    lines = spot_agg_lines()[:100]
    lines[41] = replace_field(lines[41], index, value)
    with pytest.raises(ArchiveFormatError) as caught:
        read_agg_trades(write_lines(tmp_path, "bad.csv", lines), symbol="BTCUSDT")
    assert caught.value.row == 42
    assert reason in str(caught.value)


def test_first_after_last_and_broken_trade_chain(tmp_path: Path) -> None:
    lines = spot_agg_lines()[:10]
    first, last = lines[4].split(",")[3:5]
    lines[4] = replace_field(replace_field(lines[4], 3, str(int(last))), 4, str(int(first) - 1))
    with pytest.raises(ArchiveFormatError, match="is after last_trade_id") as caught:
        read_agg_trades(write_lines(tmp_path, "a.csv", lines), symbol="BTCUSDT")
    assert caught.value.row == 5
    lines = spot_agg_lines()[:10]
    lines[6] = replace_field(lines[6], 3, str(int(lines[6].split(",")[3]) + 1))  # skip one trade id
    lines[6] = replace_field(lines[6], 4, str(int(lines[6].split(",")[4]) + 1))
    with pytest.raises(ArchiveFormatError, match="trade-id chain is broken") as caught:
        read_agg_trades(write_lines(tmp_path, "b.csv", lines), symbol="BTCUSDT")
    assert caught.value.row == 7


def kline_lines() -> list[str]:
    return (EXTRACTED / "spot" / "klines" / "BTCUSDT-1m-2020-01-01.csv").read_text().splitlines()


@pytest.mark.parametrize(
    ("index", "value", "reason"),
    [
        (6, "1577839439998", "close_time 1577839439998 != open_time 1577839380000 + 1m - 1 ms"),
        (1, "99999", "open 99999.000000000000000000 is outside [low"),
        (3, "99999", "is below low 99999"),
        (5, "-1", "volume is '-1'"),
        (8, "12.5", "trades is '12.5'"),
    ],
)
def test_bad_kline_values_name_row_and_reason(tmp_path: Path, index: int, value: str, reason: str) -> None:
    lines = kline_lines()[:100]
    lines[43] = replace_field(lines[43], index, value)
    with pytest.raises(ArchiveFormatError) as caught:
        read_klines(write_lines(tmp_path, "k.csv", lines), symbol="BTCUSDT")
    assert caught.value.row == 44
    assert reason in str(caught.value)


def test_duplicated_kline_and_unknown_header_are_rejected(tmp_path: Path) -> None:
    lines = kline_lines()[:10]
    with pytest.raises(ArchiveFormatError, match="duplicated or out-of-order") as caught:
        read_klines(write_lines(tmp_path, "d.csv", [*lines[:5], lines[4], *lines[5:]]), symbol="BTCUSDT")
    assert caught.value.row == 6
    with pytest.raises(ArchiveFormatError, match="unexpected header"):
        read_klines(write_lines(tmp_path, "h.csv", ["time,o,h,l,c", *lines]), symbol="BTCUSDT")
    with pytest.raises(ArchiveFormatError, match="row has 11 columns"):
        read_klines(write_lines(tmp_path, "w.csv", [line.rsplit(",", 1)[0] for line in lines]), symbol="X")


def test_empty_file_is_an_empty_table(tmp_path: Path) -> None:
    path = write_lines(tmp_path, "e.csv", [])
    path.write_text("")
    assert read_klines(path, symbol="BTCUSDT").num_rows == 0


# ------------------------------------------------------------------------------ throughput


def fixed_point(units: np.ndarray, places: int) -> pa.Array:
    """Integers of 10**-places as plain decimal strings ("87000.12"), built by Arrow kernels (fast)."""
    digits = pc.utf8_lpad(pa.array(units).cast(pa.string()), places + 1, "0")
    return pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(digits, 0, -places), pc.utf8_slice_codeunits(digits, -places), "."
    )


def test_synthetic_two_million_row_spot_day(tmp_path: Path) -> None:
    """A 2M-row spot aggTrades file spans many CSV blocks: contiguity holds across them, sums are exact."""
    n = 2_000_000
    rng = np.random.default_rng(7)
    ids = np.arange(10_000_000_000, 10_000_000_000 + n, dtype=np.int64)
    trades_per = rng.integers(1, 4, n)
    last = 5_000_000_000 + np.cumsum(trades_per)
    first = last - trades_per + 1
    ts = 1_767_225_600_000_000 + np.cumsum(rng.integers(0, 80_000, n))
    price_cents = 8_700_000 + rng.integers(-50_000, 50_000, n)
    qty_units = rng.integers(1, 10**9, n)  # in 1e-8
    table = pa.table(
        {
            "a": pa.array(ids),
            "p": fixed_point(price_cents, 2),
            "q": fixed_point(qty_units, 8),
            "f": pa.array(first),
            "l": pa.array(last),
            "t": pa.array(ts),
            "m": pc.if_else(pa.array(rng.integers(0, 2, n) == 1), "True", "False"),
            "M": pa.repeat("True", n),
        }
    )
    path = tmp_path / "SYNTH-aggTrades-2026-01-01.csv"
    pacsv.write_csv(table, path, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    started = time.perf_counter()
    parsed = read_agg_trades(path, symbol="SYNTH")
    elapsed = time.perf_counter() - started
    print(f"synthetic {path.stat().st_size / 1e6:.0f} MB csv: {n / elapsed:,.0f} rows/s")
    assert parsed.num_rows == n
    assert parsed.column("trade_id")[n - 1].as_py() == int(ids[-1])
    assert pc.sum(parsed.column("qty")).as_py() == Decimal(int(qty_units.sum())).scaleb(-8)
    assert pc.sum(parsed.column("price")).as_py() == Decimal(int(price_cents.sum())).scaleb(-2)
    assert parsed.column("ts").cast(pa.int64())[n - 1].as_py() == int(ts[-1])


def test_cut_short_maintenance_candle_is_rejected_like_rest() -> None:
    """The real 2021-02-11 03:00 candle closes at 03:40:54.773 (maintenance): wire rejects it, so do we."""
    path = VISION / "spot" / "klines" / "BTCUSDT-1h-2021-Q1_concat_with_gaps.csv"
    with pytest.raises(
        ArchiveFormatError, match="close_time 1613014854773 != open_time 1613012400000"
    ) as caught:
        read_klines(path, symbol="BTCUSDT", interval="1h")
    assert caught.value.row == 988


def test_other_real_layouts_parse() -> None:
    """UM futures with a header, a 2022 UM file without one, and a whole month from 2025 (still ms)."""
    um = VISION / "futures_um"
    assert (
        read_klines(um / "klines" / "ETHUSDT-1h-2022-08-24.zip", symbol="ETHUSDT", interval="1h").num_rows
        == 24
    )
    assert read_klines(um / "klines" / "BTCUSDT-1m-2022-05-06.csv", symbol="BTCUSDT").num_rows == 1440
    month = read_klines(um / "monthly_klines" / "AVAXUSDT-1m-2025-02.csv", symbol="AVAXUSDT")
    assert month.num_rows == 40320
    assert month.column("open_time")[0].value == 1738368000000  # 2025-02-01 00:00 UTC, in ms


def test_agg_trade_record_keeps_microseconds() -> None:
    trade = AggTrade("binance", "BTCUSDT", 1, Decimal("1"), Decimal("1"), 1, 1, 1767225600039409, True)
    assert trade.ts_ms == 1767225600039
