"""Exactness and idempotency of klines_1m writes, on the real embedded ClickHouse."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from warehouse_assets.lib import klines_store
from warehouse_assets.lib.records import DAY_MS, MINUTE_MS, Kline
from warehouse_assets.lib.warehouse import Warehouse
from warehouse_assets_tests.conftest import sql

DAY = 1_577_836_800_000  # 2020-01-01T00:00Z


def kline(open_time: int, **values: Decimal | int) -> Kline:
    base: dict[str, Decimal | int] = {
        "open": Decimal("7195.24"),
        "high": Decimal("7196.25"),
        "low": Decimal("7183.14"),
        "close": Decimal("7186.68"),
        "volume": Decimal("51.642812"),
        "quote_volume": Decimal("371233.18182508"),
        "trades": 493,
        "taker_buy_base_volume": Decimal("19.632346"),
        "taker_buy_quote_volume": Decimal("141136.87694833"),
    }
    base.update(values)
    return Kline("binance", "BTCUSDT", "1m", open_time, open_time + MINUTE_MS - 1, **base)  # type: ignore[arg-type]


def replace(
    wh: Warehouse, klines: list[Kline], start: int = DAY, end: int = DAY + DAY_MS
) -> klines_store.ReplaceResult:
    with wh.session() as client:
        return klines_store.replace_window(
            client,
            wh.database,
            exchange="binance",
            symbol="BTCUSDT",
            start_ms=start,
            end_ms=end,
            klines=klines,
            source="rest",
        )


def test_extreme_decimals_round_trip_exactly(warehouse: Warehouse) -> None:
    tiny, huge = Decimal("0.000000001745"), Decimal("25000000000")
    replace(
        warehouse, [kline(DAY, open=tiny, low=tiny, close=tiny, high=Decimal("0.000000001746"), volume=huge)]
    )
    with warehouse.session() as client:
        row = client.query(
            sql(
                warehouse,
                "SELECT open, volume, toString(open), toString(volume), high - open FROM ${database}.klines_1m",
            )
        ).result_rows[0]
    assert row[0] == tiny and row[1] == huge
    assert (row[2], row[3]) == ("0.000000001745", "25000000000")
    assert row[4] == Decimal("0.000000000001")


def test_a_value_with_more_than_18_decimals_is_refused_not_rounded(warehouse: Warehouse) -> None:
    with pytest.raises(Exception, match="(?i)precision|scale|rescal|lose"):
        replace(warehouse, [kline(DAY, volume=Decimal("1.0000000000000000001"))])
    with warehouse.session() as client:
        assert client.query(sql(warehouse, "SELECT count() FROM ${database}.klines_1m")).result_rows == [(0,)]


def test_year_of_quote_volume_sums_exactly_without_overflow(warehouse: Warehouse) -> None:
    """A year of BTCUSDT minutes sums to ~1e12 of quote volume: exact, no wrap-around."""
    rng = random.Random(7)
    minutes = 365 * 1440
    start = 1_577_836_800_000
    expected_quote = Decimal(0)
    expected_notional = Decimal(0)
    batch: list[Kline] = []
    for i in range(minutes):
        price = Decimal(rng.randrange(700_000, 6_900_000)) / 100  # 7 000 .. 69 000 USDT on a 0.01 tick
        qty = Decimal(rng.randrange(1, 10**10)) / 10**8  # up to 100 BTC on a 1e-8 lot
        quote = (price * qty).quantize(Decimal("0.00000001"))
        expected_quote += quote
        expected_notional += price * qty
        batch.append(
            kline(
                start + i * MINUTE_MS,
                open=price,
                high=price,
                low=price,
                close=price,
                volume=qty,
                quote_volume=quote,
            )
        )
    replace(warehouse, batch, start, start + minutes * MINUTE_MS)
    assert Decimal(10) ** 11 < expected_quote < Decimal(10) ** 13
    with warehouse.session() as client:
        count, total = client.query(
            sql(warehouse, "SELECT count(), sum(quote_volume) FROM ${database}.klines_1m")
        ).result_rows[0]
        # The documented way to compute notional: widen to Decimal256 before multiplying.
        notional = client.query(
            sql(warehouse, "SELECT sum(toDecimal256(open, 18) * volume) FROM ${database}.klines_1m")
        ).result_rows[0][0]
        # The trap it avoids: Decimal128 x Decimal128 has scale 36 and wraps silently.
        wrapped = client.query(
            sql(warehouse, "SELECT sum(open * volume) FROM ${database}.klines_1m")
        ).result_rows[0][0]
    assert count == minutes
    assert total == expected_quote
    assert notional == expected_notional
    assert wrapped != expected_notional


def test_rewriting_a_day_leaves_one_row_per_minute(warehouse: Warehouse) -> None:
    day = [kline(DAY + i * MINUTE_MS) for i in range(1440)]
    first = replace(warehouse, day)
    second = replace(
        warehouse, [kline(k.open_time, close=Decimal("1.5"), high=Decimal("7196.25")) for k in day[:1430]]
    )
    assert (first.inserted, first.replaced_older) == (1440, 0)
    assert (second.inserted, second.replaced_older) == (1430, 1440)
    with warehouse.session() as client:
        rows = client.query(
            sql(
                warehouse,
                "SELECT count(), uniqExact(open_time), countIf(close = 1.5) FROM ${database}.klines_1m",
            )
        ).result_rows[0]
        quality = klines_store.window_quality(
            client,
            warehouse.database,
            exchange="binance",
            symbol="BTCUSDT",
            start_ms=DAY,
            end_ms=DAY + DAY_MS,
        )
    assert rows == (1430, 1430, 1430)  # plain SELECT, no FINAL
    assert quality[0].missing_minutes == tuple(DAY + i * MINUTE_MS for i in range(1430, 1440))
    assert quality[0].duplicate_rows == 0


def test_replace_only_touches_its_own_symbol_and_window(warehouse: Warehouse) -> None:
    replace(warehouse, [kline(DAY + i * MINUTE_MS) for i in range(3)])
    next_day = DAY + DAY_MS
    replace(warehouse, [kline(next_day)], next_day, next_day + DAY_MS)
    replace(warehouse, [kline(DAY)], DAY, DAY + DAY_MS)
    with warehouse.session() as client:
        assert client.query(sql(warehouse, "SELECT count() FROM ${database}.klines_1m")).result_rows == [(2,)]


def test_klines_outside_the_window_are_refused(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="outside the window"):
        replace(warehouse, [kline(DAY + DAY_MS)])


def test_minute_ranges_fold_consecutive_minutes() -> None:
    assert klines_store.minute_ranges([0, 60_000, 120_000, 300_000]) == [(0, 120_000), (300_000, 300_000)]
