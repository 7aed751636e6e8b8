"""Binance wire parsing: kline rows (ms and µs), validation reasons, error bodies, headers, exchangeInfo."""

from __future__ import annotations

import json
import pickle
from decimal import Decimal

import pytest

from warehouse_assets.lib.binance import wire
from warehouse_assets.lib.errors import MalformedKlineError, MalformedResponseError, UnknownSymbolError

# The first BTCUSDT 1m kline of 2020 as data.binance.vision and the REST API publish it.
ROW = [
    1577836800000,
    "7195.24000000",
    "7196.25000000",
    "7183.14000000",
    "7186.68000000",
    "51.64281200",
    1577836859999,
    "371233.51835535",
    493,
    "19.59823000",
    "140888.41428273",
    "0",
]


def parse(row: object, interval: str = "1m") -> wire.Kline:
    return wire.parse_kline_row(row, symbol="BTCUSDT", interval=interval)


def reason_for(row: object) -> str:
    with pytest.raises(MalformedKlineError) as caught:
        parse(row)
    assert caught.value.symbol == "BTCUSDT"
    return caught.value.reason


def with_field(index: int, value: object) -> list[object]:
    row: list[object] = list(ROW)
    row[index] = value
    return row


def test_rest_row_becomes_exact_kline() -> None:
    kline = parse(ROW)
    assert (kline.exchange, kline.symbol, kline.interval) == ("binance", "BTCUSDT", "1m")
    assert (kline.open_time, kline.close_time) == (1577836800000, 1577836859999)
    assert kline.open == Decimal("7195.24000000") and str(kline.open) == "7195.24000000"
    assert kline.high == Decimal("7196.25") and kline.low == Decimal("7183.14")
    assert kline.close == Decimal("7186.68")
    assert kline.volume == Decimal("51.642812")
    assert kline.quote_volume == Decimal("371233.51835535")
    assert kline.trades == 493
    assert kline.taker_buy_base_volume == Decimal("19.59823")
    assert kline.taker_buy_quote_volume == Decimal("140888.41428273")


def test_documented_weekly_example_row() -> None:
    row = [1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100", "148976.11427815",
           1499644799999, "2434.19055334", 308, "1756.87402397", "28.46694368", "0"]  # fmt: skip
    kline = wire.parse_kline_row(row, symbol="BNBBTC", interval="1w")
    assert kline.close_time - kline.open_time == 7 * 86_400_000 - 1
    assert kline.high == Decimal("0.8")


def test_microsecond_row_equals_millisecond_row() -> None:
    micro = with_field(0, 1577836800000000)
    micro[6] = 1577836859999999  # µs close time: ...59999999 floors to ...59999 ms
    assert parse(micro) == parse(ROW)


def test_to_millis_floors_microseconds_and_keeps_milliseconds() -> None:
    assert wire.to_millis(1735689600000000) == 1735689600000
    assert wire.to_millis(1735693199999999) == 1735693199999
    assert wire.to_millis(1577836859999) == 1577836859999


@pytest.mark.parametrize("ignore", ["0", 0, None, "anything", [1]])
def test_twelfth_field_may_be_anything(ignore: object) -> None:
    assert parse(with_field(11, ignore)).open_time == 1577836800000


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (ROW[:11], "row has 11 fields, expected 12"),
        ([*ROW, "extra"], "row has 13 fields, expected 12"),
        ({"open_time": 1}, "must be a JSON array"),
        (
            with_field(1, 7195.24),
            "field 'open' (index 1) is 7195.24 (a JSON float), expected a decimal string",
        ),
        (with_field(2, 7196), "field 'high' (index 2) is 7196 (a JSON int)"),
        (with_field(1, "abc"), "field 'open' (index 1) is 'abc', not a decimal number string"),
        (with_field(4, "NaN"), "field 'close' (index 4) is 'NaN', not a decimal number string"),
        (with_field(5, "Infinity"), "field 'volume' (index 5) is 'Infinity', not a decimal"),
        (with_field(5, "1e5"), "field 'volume' (index 5) is '1e5', not a decimal"),
        (with_field(5, " 51.6"), "field 'volume' (index 5) is ' 51.6', not a decimal"),
        (with_field(5, "-51.6"), "field 'volume' (index 5) is '-51.6', which is negative"),
        (with_field(10, "-0.1"), "field 'taker_buy_quote_volume' (index 10) is '-0.1', which is negative"),
        (with_field(2, "7180.00000000"), "high 7180.00000000 is below low 7183.14000000"),
        (with_field(1, "7200.00"), "open 7200.00 is outside [low 7183.14000000, high 7196.25000000]"),
        (with_field(4, "7183.13"), "close 7183.13 is outside [low 7183.14000000, high 7196.25000000]"),
        (with_field(8, "493"), "field 'trades' (index 8) is '493', expected a non-negative integer"),
        (with_field(8, -1), "field 'trades' (index 8) is -1"),
        (with_field(8, True), "field 'trades' (index 8) is True"),
        (
            with_field(0, "1577836800000"),
            "field 'open_time' (index 0) is '1577836800000', expected a non-negative",
        ),
        (with_field(0, 1577836800000.0), "field 'open_time' (index 0) is 1577836800000.0"),
        (with_field(6, 1577836859998), "close_time 1577836859998 != open_time 1577836800000 + 1m - 1 ms"),
        (with_field(6, 1577836919999), "close_time 1577836919999 != open_time"),
    ],
)
def test_malformed_rows_are_rejected_with_their_reason(row: object, expected: str) -> None:
    assert expected in reason_for(row)


def test_parse_klines_keeps_the_raw_row_exactly_as_received() -> None:
    bad = '[1577836860000, "7187.67", "7180.00", "7182.20", "7184.03",  "7.2", 1577836919999, "1", 1, "1", "1", "0"]'
    good = json.dumps(ROW)
    with pytest.raises(MalformedKlineError) as caught:
        wire.parse_klines(f"[{good},\n {bad}]", symbol="BTCUSDT", interval="1m")
    assert caught.value.raw == bad
    assert "high 7180.00 is below low 7182.20" in caught.value.reason
    assert "BTCUSDT" in str(caught.value) and bad in str(caught.value)


def test_parse_klines_drops_verbatim_repeats_and_rejects_conflicting_ones() -> None:
    row = json.dumps(ROW)
    assert len(wire.parse_klines(f"[{row},{row}]", symbol="BTCUSDT", interval="1m")) == 1
    changed = json.dumps(with_field(5, "51.7"))
    with pytest.raises(MalformedKlineError, match="appears twice in one response with different values"):
        wire.parse_klines(f"[{row},{changed}]", symbol="BTCUSDT", interval="1m")


@pytest.mark.parametrize("body", ['{"code": 0}', "[1, 2", "[] x", "", "[[1] [2]]"])
def test_parse_klines_rejects_bodies_that_are_not_arrays(body: str) -> None:
    with pytest.raises(MalformedKlineError, match="not a JSON array"):
        wire.parse_klines(body, symbol="BTCUSDT", interval="1m")


def test_parse_klines_of_empty_array() -> None:
    assert wire.parse_klines(" [ ] ", symbol="BTCUSDT", interval="1m") == []


def test_split_json_array_returns_exact_element_text() -> None:
    assert wire.split_json_array('[ [1,"a"] ,{"b": 2},3 ]') == [
        ([1, "a"], '[1,"a"]'),
        ({"b": 2}, '{"b": 2}'),
        (3, "3"),
    ]


def test_unsupported_interval_names_the_choices() -> None:
    with pytest.raises(ValueError, match="'1M' has no fixed length"):
        wire.interval_ms("1M")
    assert wire.interval_ms("1h") == 3_600_000


def test_error_body_and_hints() -> None:
    body = wire.parse_error_body('{"code":-1121,"msg":"Invalid symbol."}')
    assert body == wire.ErrorBody(code=-1121, msg="Invalid symbol.")
    assert wire.parse_error_body("<html>403 Forbidden</html>") is None
    assert wire.parse_error_body('{"code":"x","msg":"y"}') is None
    assert "1s 1m 3m" in wire.error_hint(-1120)
    assert wire.error_hint(-9999) == "" and wire.error_hint(None) == ""


def test_used_weight_headers_by_window_length() -> None:
    headers = {
        "X-MBX-USED-WEIGHT-1M": "120",
        "x-mbx-used-weight-2s": "7",
        "X-MBX-USED-WEIGHT": "5",
        "Date": "x",
    }
    assert wire.used_weight_by_window(headers) == {60_000: 120, 2_000: 7}
    assert wire.used_weight_by_window({"X-MBX-USED-WEIGHT-1D": "oops"}) == {}


def test_retry_after() -> None:
    assert wire.retry_after_seconds({"retry-after": "3"}) == 3.0
    assert wire.retry_after_seconds({"Retry-After": "0"}) == 0.0
    assert wire.retry_after_seconds({"retry-after": "Wed, 21 Oct 2015"}) is None
    assert wire.retry_after_seconds({}) is None


def test_server_time_in_ms_and_us() -> None:
    assert wire.parse_server_time('{"serverTime": 1499827319559}') == 1499827319559.0
    assert wire.parse_server_time('{"serverTime": 1499827319559123}') == pytest.approx(1499827319559.123)
    with pytest.raises(MalformedResponseError, match="serverTime"):
        wire.parse_server_time('{"serverTime": "soon"}')


def test_exchange_info_rate_limits_and_symbols() -> None:
    body = {
        "timezone": "UTC",
        "serverTime": 1565246363776,
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 300000},
        ],
        "symbols": [
            {
                "symbol": "BTCUSDT",
                "status": "TRADING",
                "baseAsset": "BTC",
                "quoteAsset": "USDT",
                "filters": [
                    {"filterType": "PRICE_FILTER", "tickSize": "0.01000000"},
                    {"filterType": "LOT_SIZE", "stepSize": "0.00001000"},
                ],
            }
        ],
    }
    info = wire.parse_exchange_info(json.dumps(body))
    weight = info.request_weight_limit()
    assert weight is not None and (weight.limit, weight.window_ms) == (6000, 60_000)
    assert info.rate_limits[1].window_ms == 10_000
    assert info.symbols["BTCUSDT"] == wire.SymbolInfo(
        "BTCUSDT", "TRADING", "BTC", "USDT", Decimal("0.01"), Decimal("0.00001")
    )
    two_seconds = {
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "SECOND", "intervalNum": 2, "limit": 40}
        ]
    }
    assert wire.parse_exchange_info(json.dumps(two_seconds)).rate_limits[0].window_ms == 2_000
    with pytest.raises(MalformedResponseError, match="unknown interval"):
        wire.parse_exchange_info(json.dumps({"rateLimits": [dict(body["rateLimits"][0], interval="WEEK")]}))  # type: ignore[call-overload]


def test_errors_survive_pickling() -> None:
    error = MalformedKlineError("BTCUSDT", "[1]", "row has 1 fields, expected 12")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.symbol, copy.raw, copy.reason, str(copy)) == (
        error.symbol,
        error.raw,
        error.reason,
        str(error),
    )
    unknown = pickle.loads(pickle.dumps(UnknownSymbolError(["A", "B"])))
    assert (
        str(unknown)
        == "symbols 'A', 'B' are not listed on Binance spot (exchangeInfo); check WAREHOUSE_SYMBOLS"
    )
