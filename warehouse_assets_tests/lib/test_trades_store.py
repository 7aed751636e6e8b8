"""market.trades and market.candles_1m on a real embedded ClickHouse, with real Binance archives."""

from __future__ import annotations

import csv
import io
import time
import zipfile
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from warehouse_assets.lib import schemas, trades_store
from warehouse_assets.lib.warehouse import Warehouse
from warehouse_assets_tests.conftest import SHARED_DATA, sql

SPOT_5000 = SHARED_DATA / "binance_vision/spot/aggTrades/BTCUSDT-aggTrades-2026-01-01_first5000rows.csv"
COIN_M_DAY = SHARED_DATA / "binance_vision/futures_cm/aggTrades/BTCUSD_PERP-aggTrades-2026-05-08.zip"
DAY_2026_01_01 = 1_767_225_600_000
DAY_2026_05_08 = 1_778_198_400_000
DAY = 86_400_000


def csv_rows(path: Path) -> list[list[str]]:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            text = archive.read(archive.namelist()[0]).decode()
    else:
        text = path.read_text()
    rows = list(csv.reader(io.StringIO(text)))
    return rows[1:] if rows[0][0] == "agg_trade_id" else rows


def stored(wh: Warehouse, symbol: str) -> list[tuple]:
    with wh.session() as client:
        return client.query(
            sql(
                wh,
                "SELECT trade_id, price, qty, first_trade_id, last_trade_id, toUnixTimestamp64Micro(ts), "
                "is_buyer_maker, source FROM ${database}.trades WHERE symbol = {s:String} ORDER BY trade_id",
            ),
            parameters={"s": symbol},
        ).result_rows


def load(wh: Warehouse, path: Path, symbol: str, start_ms: int, **kwargs: object) -> trades_store.TradesWrite:
    options: dict = {"embedded": True, "expected_ids": None, **kwargs}
    with wh.session() as client:
        return trades_store.replace_window_from_csv(
            client,
            wh.database,
            path=path,
            exchange="binance",
            symbol=symbol,
            start_ms=start_ms,
            end_ms=start_ms + DAY,
            **options,
        )


def assert_equal_to_csv(got: list[tuple], rows: list[list[str]], micros: bool) -> None:
    assert len(got) == len(rows)
    for have, want in zip(got, rows, strict=True):
        ts = int(want[5]) if micros else int(want[5]) * 1000
        assert have[:7] == (
            int(want[0]),
            Decimal(want[1]),
            Decimal(want[2]),
            int(want[3]),
            int(want[4]),
            ts,
            want[6].lower() == "true",
        ), want


@pytest.mark.parametrize("embedded", [True, False], ids=["file-pipe", "server-raw-insert"])
def test_real_spot_microsecond_file_lands_exactly(warehouse: Warehouse, embedded: bool) -> None:
    rows = csv_rows(SPOT_5000)
    write = load(warehouse, SPOT_5000, "BTCUSDT", DAY_2026_01_01, embedded=embedded)
    assert (write.inserted, write.first_id, write.last_id) == (5000, 3800397495, 3800402494)
    got = stored(warehouse, "BTCUSDT")
    assert_equal_to_csv(got, rows, micros=True)  # 8 columns, True/False, µs kept
    assert {row[7] for row in got} == {"archive"}


def test_real_coin_m_day_with_header_and_checksum_lands_exactly(warehouse: Warehouse) -> None:
    rows = csv_rows(COIN_M_DAY)
    assert len(rows) == 105_280
    write = load(warehouse, COIN_M_DAY, "BTCUSD_PERP", DAY_2026_05_08, expected_ids=(480537903, 480643182))
    assert write.inserted == 105_280
    assert_equal_to_csv(stored(warehouse, "BTCUSD_PERP"), rows, micros=False)  # header, 7 columns, ms
    with warehouse.session() as client:
        (facts,) = trades_store.day_facts(
            client,
            warehouse.database,
            exchange="binance",
            symbol="BTCUSD_PERP",
            start_ms=DAY_2026_05_08,
            end_ms=DAY_2026_05_08 + DAY,
        )
    assert facts.volume == sum(Decimal(r[2]) for r in rows)
    assert facts.trades == sum(int(r[4]) - int(r[3]) + 1 for r in rows)
    assert (facts.id_gaps, facts.chain_breaks, facts.duplicate_rows) == (0, 0, 0)


def test_reloading_a_day_replaces_it(warehouse: Warehouse) -> None:
    first = load(warehouse, SPOT_5000, "BTCUSDT", DAY_2026_01_01)
    second = load(warehouse, SPOT_5000, "BTCUSDT", DAY_2026_01_01)
    assert second.replaced_older == 5000 and second.version_ms > first.version_ms
    with warehouse.session() as client:
        count, distinct = client.query(
            sql(warehouse, "SELECT count(), uniqExact(trade_id) FROM ${database}.trades")
        ).result_rows[0]
        tables = client.query(
            "SELECT count() FROM system.tables WHERE database = {d:String} AND startsWith(name, '_stage')",
            parameters={"d": warehouse.database},
        ).result_rows[0][0]
    assert (count, distinct) == (5000, 5000)  # a plain SELECT, no FINAL
    assert tables == 0  # stages are dropped


def edited(tmp_path: Path, transform) -> Path:  # type: ignore[no-untyped-def]
    lines = SPOT_5000.read_text().splitlines(keepends=True)
    path = tmp_path / SPOT_5000.name
    path.write_text("".join(transform(lines)))
    return path


@pytest.mark.parametrize(
    ("transform", "reason"),
    [
        (
            lambda lines: lines[:100] + lines[101:],
            "aggregate ids are not contiguous: 3800397596 follows 3800397594",
        ),
        (lambda lines: lines[:10] + ["4" + lines[10][1:]] + lines[11:], "not contiguous"),
        (
            lambda lines: lines[:5] + [lines[5].replace("0.00", "0.0000000000000000001", 1)] + lines[6:],
            "at most 18 fractional digits",
        ),
        (lambda lines: lines[:5] + [lines[5].replace("True", "maybe")] + lines[6:], "could not load"),
        (lambda lines: lines[:4000], "the exchange lists 3800397495..3800402494"),
        (lambda lines: lines[:50] + [lines[49]] + lines[50:], "repeated or out of order"),
    ],
    ids=["row-missing", "id-changed", "19-decimals", "bad-boolean", "cut-short", "row-repeated"],
)
def test_a_bad_file_inserts_nothing(warehouse: Warehouse, tmp_path: Path, transform, reason: str) -> None:  # type: ignore[no-untyped-def]
    path = edited(tmp_path, transform)
    with pytest.raises(trades_store.RejectedTradesError, match=reason):
        load(warehouse, path, "BTCUSDT", DAY_2026_01_01, expected_ids=(3800397495, 3800402494))
    assert stored(warehouse, "BTCUSDT") == []


def test_a_trade_outside_the_day_is_refused(warehouse: Warehouse) -> None:
    with pytest.raises(trades_store.RejectedTradesError, match="5000 trades lie outside BTCUSDT 2025-12-31"):
        load(warehouse, SPOT_5000, "BTCUSDT", DAY_2026_01_01 - DAY)
    assert stored(warehouse, "BTCUSDT") == []


def pandas_candles(rows: list[list[str]]) -> pd.DataFrame:
    """An independent computation: Python Decimals, grouped by minute in pandas."""
    frame = pd.DataFrame(
        {
            "id": [int(r[0]) for r in rows],
            "price": [Decimal(r[1]) for r in rows],
            "qty": [Decimal(r[2]) for r in rows],
            "n": [int(r[4]) - int(r[3]) + 1 for r in rows],
            "minute_ms": [int(r[5]) // 1000 // 60_000 * 60_000 for r in rows],
            "taker_buy": [r[6] == "False" for r in rows],
        }
    )
    frame["quote"] = [p * q for p, q in zip(frame["price"], frame["qty"], strict=True)]
    frame = frame.sort_values("id")
    grouped = frame.groupby("minute_ms")
    return pd.DataFrame(
        {
            "open": grouped["price"].first(),
            "high": grouped["price"].max(),
            "low": grouped["price"].min(),
            "close": grouped["price"].last(),
            "volume": grouped["qty"].apply(lambda s: sum(s, Decimal(0))),
            "quote_volume": grouped["quote"].apply(lambda s: sum(s, Decimal(0))),
            "trades": grouped["n"].sum(),
            "taker_buy_base_volume": grouped.apply(
                lambda g: sum(g["qty"][g["taker_buy"]], Decimal(0)), include_groups=False
            ),
            "agg_trades": grouped["id"].count(),
        }
    )


def stored_candles(wh: Warehouse) -> pd.DataFrame:
    with wh.session() as client:
        rows = client.query(
            sql(
                wh,
                "SELECT toUnixTimestamp64Milli(open_time), open, high, low, close, volume, quote_volume, trades, "
                "taker_buy_base_volume, agg_trades FROM ${database}.candles_1m ORDER BY open_time",
            )
        ).result_rows
    columns = ["minute_ms", "open", "high", "low", "close", "volume", "quote_volume", "trades",
               "taker_buy_base_volume", "agg_trades"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns).set_index("minute_ms")


def rebuild(wh: Warehouse) -> trades_store.CandlesBuild:
    with wh.session() as client:
        return trades_store.rebuild_candles(
            client,
            wh.database,
            exchange="binance",
            symbol="BTCUSDT",
            start_ms=DAY_2026_01_01,
            end_ms=DAY_2026_01_01 + DAY,
        )


def test_candles_from_trades_equal_an_independent_pandas_computation(warehouse: Warehouse) -> None:
    expected = pandas_candles(csv_rows(SPOT_5000))
    assert len(expected) == 13  # 00:00 .. 00:12
    load(warehouse, SPOT_5000, "BTCUSDT", DAY_2026_01_01)
    build = rebuild(warehouse)
    assert build.built == 13
    with warehouse.session() as client:
        rows = client.query_arrow(sql(warehouse, "SELECT * FROM ${database}.candles_1m"))
    assert schemas.validate(schemas.Candles1m, rows).passed
    got = stored_candles(warehouse)
    for column in expected.columns:
        assert got[column].tolist() == expected[column].tolist(), column

    # Re-ingesting the day and rebuilding never double counts; a plain SELECT still sees each minute once.
    load(warehouse, SPOT_5000, "BTCUSDT", DAY_2026_01_01)
    again = rebuild(warehouse)
    assert again.replaced_older == 13
    got = stored_candles(warehouse)
    assert len(got) == 13 and got.index.is_unique
    for column in expected.columns:
        assert got[column].tolist() == expected[column].tolist(), column


def test_open_and_close_follow_trade_ids_within_a_millisecond(warehouse: Warehouse, tmp_path: Path) -> None:
    # Three trades in one millisecond: the lowest id opens and the highest closes, whatever their prices.
    path = tmp_path / "same-ms.csv"
    path.write_text(
        "10,5.00000000,1.00000000,100,100,1767225600123000,True,True\n"
        "11,9.00000000,1.00000000,101,101,1767225600123000,False,True\n"
        "12,1.00000000,1.00000000,102,102,1767225600123000,True,True\n"
    )
    load(warehouse, path, "BTCUSDT", DAY_2026_01_01)
    rebuild(warehouse)
    got = stored_candles(warehouse)
    assert got[["open", "high", "low", "close"]].iloc[0].tolist() == [
        Decimal(5),
        Decimal(9),
        Decimal(1),
        Decimal(1),
    ]


def test_stages_left_by_a_crashed_load_are_dropped(warehouse: Warehouse) -> None:
    stage = trades_store.STAGE_PREFIX + "crashed"
    with warehouse.session() as client:
        client.command(sql(warehouse, f"CREATE TABLE ${{database}}.{stage} AS ${{database}}.trades"))
        assert trades_store.drop_stale_stages(client, warehouse.database) == []  # younger than 6 hours
        time.sleep(1.1)  # metadata times have whole seconds
        assert trades_store.drop_stale_stages(client, warehouse.database, older_than_hours=0) == [stage]
        assert trades_store.drop_stale_stages(client, warehouse.database, older_than_hours=0) == []
