"""Binance spot wire format: the one place that knows how Binance's REST bodies and headers look.

Turns kline rows and aggregate trade rows into validated records or Arrow tables, and reads error
bodies, exchangeInfo, server time and the `X-MBX-USED-WEIGHT-*` / `Retry-After` headers. Times may
arrive in milliseconds or microseconds (the `X-MBX-TIME-UNIT: MICROSECOND` header, archive files since
2025); kline times leave this module in milliseconds, aggregate trade times in microseconds (see
`records.AGG_TRADE_SCHEMA`). Prices and quantities are exact decimals built from Binance's strings,
never floats.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from warehouse_assets.lib.errors import MalformedAggTradeError, MalformedKlineError, MalformedResponseError
from warehouse_assets.lib.records import (
    AGG_TRADE_SCHEMA,
    DECIMAL,
    KLINE_SCHEMA,
    TIME_MS,
    TIME_US,
    AggTrade,
    Kline,
    klines_to_table,
)

EXCHANGE = "binance"

# A time above this is in microseconds: 1e14 ms is the year 5138, 1e14 µs is 1973.
MICROS_THRESHOLD = 10**14

# Fixed-length kline intervals (case-sensitive, as Binance spells them). "1M" has no fixed length and is
# not supported here.
INTERVAL_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}

KLINE_FIELDS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
    "ignore",
)
_DECIMAL_FIELDS = (1, 2, 3, 4, 5, 7, 9, 10)
_TIME_FIELDS = (0, 6)

# What Binance sends for a price or quantity: plain digits, optional fraction; no exponent, no spaces.
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_USED_WEIGHT_HEADER = re.compile(r"x-mbx-used-weight-([0-9]+)([smhd])", re.IGNORECASE)
_UNIT_SECONDS = {"S": 1, "M": 60, "H": 3_600, "D": 86_400}
_INTERVAL_UNIT_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3_600, "DAY": 86_400}

# Hints for the error codes an operator can act on (codes from binance-spot-api-docs errors.md).
_ERROR_HINTS = {
    -1003: "too much request weight used from this IP; lower max_in_flight or wait for the ban to end",
    -1100: "a request parameter has illegal characters; this is a client bug, please report it",
    -1102: "a mandatory parameter is missing; this is a client bug, please report it",
    -1120: f"the kline interval is invalid; use one of {' '.join(INTERVAL_MS)}",
    -1130: "a request parameter is out of range; check the requested time range",
}


def interval_ms(interval: str) -> int:
    """Length of a Binance kline interval in milliseconds."""
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        raise ValueError(
            f"kline interval {interval!r} is not supported; use one of {' '.join(INTERVAL_MS)} "
            "(case-sensitive; '1M' has no fixed length)"
        ) from None


def to_millis(value: int) -> int:
    """An epoch time in ms or µs (decided by magnitude) as exact, floored milliseconds."""
    return value // 1000 if value > MICROS_THRESHOLD else value


# ---------------------------------------------------------------------------------------------- klines


def split_json_array(text: str) -> list[tuple[object, str]]:
    """Each element of a top-level JSON array with its exact source text. Raises ValueError if not one."""
    decoder = json.JSONDecoder()
    items: list[tuple[object, str]] = []
    index = _skip_space(text, 0)
    if not text.startswith("[", index):
        raise ValueError("the body is not a JSON array")
    index = _skip_space(text, index + 1)
    if text.startswith("]", index):
        _expect_end(text, index + 1)
        return items
    while True:
        value, end = decoder.raw_decode(text, index)
        items.append((value, text[index:end]))
        index = _skip_space(text, end)
        if text.startswith(",", index):
            index = _skip_space(text, index + 1)
        elif text.startswith("]", index):
            _expect_end(text, index + 1)
            return items
        else:
            raise ValueError(f"expected ',' or ']' at character {index}")


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _expect_end(text: str, index: int) -> None:
    if _skip_space(text, index) != len(text):
        raise ValueError(f"unexpected text after the array at character {index}")


def parse_klines(text: str, *, symbol: str, interval: str) -> list[Kline]:
    """Every row of a /api/v3/klines body, validated, in the order received.

    Raises `MalformedKlineError` on the first bad row, so a caller never gets part of a bad response.
    A row repeated verbatim is kept once; the same open time with different values is malformed.

    Hot path of every backfill: the body is decoded once, and each row goes through cheap checks
    (`_well_formed_row`); only a row that fails them is re-validated by `parse_kline_row`, which
    names the reason and quotes the row's exact source text.
    """
    try:
        rows = json.loads(text)
    except ValueError as exc:
        raise MalformedKlineError(
            symbol, text[:2000], f"the body is not a JSON array of rows ({exc})"
        ) from None
    if not isinstance(rows, list):
        raise MalformedKlineError(symbol, text[:2000], "the body is not a JSON array of rows")
    step = interval_ms(interval)
    klines: list[Kline] = []
    row_by_open_time: dict[int, list[object]] = {}
    exact_rows: list[tuple[object, str]] | None = None
    for index, row in enumerate(rows):
        kline = _well_formed_row(row, symbol, interval, step)
        if kline is None:
            if exact_rows is None:
                exact_rows = split_json_array(text)
            kline = parse_kline_row(row, symbol=symbol, interval=interval, raw=exact_rows[index][1])
        seen = row_by_open_time.get(kline.open_time)
        if seen is not None:
            if seen == row:
                continue
            if exact_rows is None:
                exact_rows = split_json_array(text)
            raise MalformedKlineError(
                symbol,
                exact_rows[index][1],
                f"open_time {kline.open_time} appears twice in one response with different values",
            )
        row_by_open_time[kline.open_time] = row
        klines.append(kline)
    return klines


def parse_klines_table(text: str, *, symbol: str, interval: str) -> pa.Table:
    """A /api/v3/klines body as a columnar batch (`records.KLINE_SCHEMA`), validated, in the order received.

    The bulk path of every backfill: one JSON decode, then Arrow's C kernels check formats, cast the
    exchange's decimal strings exactly to Decimal(38, 18) and check OHLC invariants, without a Python
    object per value. Any doubt sends the body through `parse_klines`, which raises
    `MalformedKlineError` naming the row and the reason, exactly as the row-by-row path does.
    """
    table = _klines_table_fast(text, symbol, interval_ms(interval))
    if table is not None:
        return table
    klines = parse_klines(text, symbol=symbol, interval=interval)  # raises with the reason, or ...
    try:
        return klines_to_table(klines)  # ... the rows were valid but needed the slow path (e.g. a repeat)
    except (pa.ArrowInvalid, OverflowError) as exc:
        raise MalformedKlineError(
            symbol, text[:2000], f"a value does not fit the warehouse's exact Decimal(38, 18) ({exc})"
        ) from None


_PLAIN_DECIMAL_RE = r"^[0-9]+(\.[0-9]*)?$"
_TABLE_DECIMAL_INDEXES = (1, 2, 3, 4, 5, 7, 9, 10)


def _klines_table_fast(text: str, symbol: str, step: int) -> pa.Table | None:
    try:
        rows = json.loads(text)
    except ValueError:
        return None
    if type(rows) is not list:
        return None
    for row in rows:
        if type(row) is not list or len(row) != 12:
            return None
    n = len(rows)
    if n == 0:
        return KLINE_SCHEMA.empty_table()
    columns = list(zip(*rows, strict=True))
    for index in (0, 6, 8):  # open time, close time, trades: JSON integers (bool is not int here)
        if set(map(type, columns[index])) != {int}:
            return None
    open_ms = _to_millis_array(pa.array(columns[0], pa.int64()))
    close_ms = _to_millis_array(pa.array(columns[6], pa.int64()))
    trades = pa.array(columns[8], pa.int64())
    if pc.min(open_ms).as_py() < 0 or pc.min(trades).as_py() < 0:
        return None
    if not pc.all(pc.equal(close_ms, pc.add(open_ms, step - 1))).as_py():
        return None
    if pc.count_distinct(open_ms).as_py() != n:
        return None  # repeated minutes: the row path keeps verbatim repeats once and rejects conflicts
    decimals: dict[int, pa.Array] = {}
    for index in _TABLE_DECIMAL_INDEXES:
        column = columns[index]
        if set(map(type, column)) != {str}:
            return None
        strings = pa.array(column, pa.string())
        if not pc.all(pc.match_substring_regex(strings, _PLAIN_DECIMAL_RE)).as_py():
            return None
        try:
            decimals[index] = strings.cast(DECIMAL)
        except pa.ArrowInvalid:
            return None
    o, h, lo, c = decimals[1], decimals[2], decimals[3], decimals[4]
    ohlc_ok = pc.and_(
        pc.and_(pc.less_equal(lo, o), pc.less_equal(o, h)),
        pc.and_(pc.less_equal(lo, c), pc.less_equal(c, h)),
    )
    if not pc.all(ohlc_ok).as_py():
        return None
    return pa.table(
        [
            pa.array([EXCHANGE] * n, pa.string()),
            pa.array([symbol] * n, pa.string()),
            open_ms.cast(TIME_MS),
            close_ms.cast(TIME_MS),
            o,
            h,
            lo,
            c,
            decimals[5],
            decimals[7],
            trades.cast(pa.uint64()),
            decimals[9],
            decimals[10],
        ],
        schema=KLINE_SCHEMA,
    )


def _to_millis_array(values: pa.Array) -> pa.Array:
    """ms stay; µs (decided per value by magnitude) become floored ms. Epoch times are positive: truncation is floor."""
    return pc.if_else(pc.greater(values, MICROS_THRESHOLD), pc.divide(values, 1000), values)


def _plain_decimal(value: object) -> bool:
    """A non-negative decimal string without sign, exponent or spaces ("7195.24000000")."""
    return type(value) is str and value.isascii() and value.replace(".", "", 1).isdigit()


def _well_formed_row(row: object, symbol: str, interval: str, step: int) -> Kline | None:
    """The row as a Kline if every check passes, else None (then `parse_kline_row` says why)."""
    if type(row) is not list or len(row) != 12:
        return None
    open_time, o, h, lo, c, v, close_time, q, trades, tb, tq, _ = row
    if type(open_time) is not int or type(close_time) is not int or type(trades) is not int:
        return None
    if open_time < 0 or trades < 0:
        return None
    if open_time > MICROS_THRESHOLD:
        open_time //= 1000
    if close_time > MICROS_THRESHOLD:
        close_time //= 1000
    if close_time != open_time + step - 1:
        return None
    if not (
        _plain_decimal(o)
        and _plain_decimal(h)
        and _plain_decimal(lo)
        and _plain_decimal(c)
        and _plain_decimal(v)
        and _plain_decimal(q)
        and _plain_decimal(tb)
        and _plain_decimal(tq)
    ):
        return None
    open_, high, low, close = Decimal(o), Decimal(h), Decimal(lo), Decimal(c)
    if not (low <= open_ <= high and low <= close <= high):
        return None
    return Kline(
        EXCHANGE,
        symbol,
        interval,
        open_time,
        close_time,
        open_,
        high,
        low,
        close,
        Decimal(v),
        Decimal(q),
        trades,
        Decimal(tb),
        Decimal(tq),
    )


def parse_kline_row(row: object, *, symbol: str, interval: str, raw: str | None = None) -> Kline:
    """One REST/archive kline row (12 fields, REST order) as a validated `Kline` in milliseconds."""
    if raw is None:
        raw = json.dumps(row, separators=(",", ":"))
    step = interval_ms(interval)

    def bad(reason: str) -> MalformedKlineError:
        return MalformedKlineError(symbol, raw, reason)

    if not isinstance(row, list):
        raise bad(f"a row must be a JSON array of 12 fields, got {type(row).__name__}")
    if len(row) != len(KLINE_FIELDS):
        raise bad(f"row has {len(row)} fields, expected {len(KLINE_FIELDS)} ({', '.join(KLINE_FIELDS)})")

    times: dict[int, int] = {}
    for index in _TIME_FIELDS:
        value = row[index]
        if not _is_int(value) or value < 0:
            raise bad(
                f"field {KLINE_FIELDS[index]!r} (index {index}) is {value!r}, expected a non-negative integer"
            )
        times[index] = to_millis(value)

    decimals: dict[int, Decimal] = {}
    for index in _DECIMAL_FIELDS:
        decimals[index] = _decimal_field(row[index], KLINE_FIELDS[index], index, bad)

    trades = row[8]
    if not _is_int(trades) or trades < 0:
        raise bad(f"field 'trades' (index 8) is {trades!r}, expected a non-negative integer")

    open_time, close_time = times[0], times[6]
    if close_time != open_time + step - 1:
        raise bad(
            f"close_time {close_time} != open_time {open_time} + {interval} - 1 ms ({open_time + step - 1})"
        )
    open_, high, low, close = decimals[1], decimals[2], decimals[3], decimals[4]
    if low > high:
        raise bad(f"high {high} is below low {low}")
    for name, price in (("open", open_), ("close", close)):
        if not low <= price <= high:
            raise bad(f"{name} {price} is outside [low {low}, high {high}]")

    return Kline(
        exchange=EXCHANGE,
        symbol=symbol,
        interval=interval,
        open_time=open_time,
        close_time=close_time,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=decimals[5],
        quote_volume=decimals[7],
        trades=trades,
        taker_buy_base_volume=decimals[9],
        taker_buy_quote_volume=decimals[10],
    )


def _is_int(value: object) -> bool:
    # bool is an int subclass in Python but `true` is not a time or a count on the wire
    return isinstance(value, int) and not isinstance(value, bool)


def _decimal_field(
    value: object, name: str, index: int, bad: Callable[[str], MalformedKlineError]
) -> Decimal:
    where = f"field {name!r} (index {index})"
    if not isinstance(value, str):
        # Binance sends prices and quantities as strings; a JSON number here has already lost exactness.
        raise bad(f"{where} is {value!r} (a JSON {type(value).__name__}), expected a decimal string")
    if not _DECIMAL_TEXT.fullmatch(value):
        raise bad(f"{where} is {value!r}, not a decimal number string")
    try:
        number = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern already rules this out
        raise bad(f"{where} is {value!r}, not a decimal number string") from None
    if number < 0:
        raise bad(f"{where} is {value!r}, which is negative")
    return number


# ---------------------------------------------------------------------------------------- aggTrades

# The fields of one /api/v3/aggTrades row by wire key; "M" (is_best_match) is optional.
AGG_TRADE_WIRE_FIELDS = {
    "a": "aggregate trade id",
    "p": "price",
    "q": "quantity",
    "f": "first trade id",
    "l": "last trade id",
    "T": "transact time",
    "m": "is_buyer_maker",
    "M": "is_best_match",
}
_AGG_KEYS = frozenset("apqflTm")
_AGG_KEYS_WITH_BEST_MATCH = _AGG_KEYS | {"M"}
_AGG_INT_KEYS = ("a", "f", "l", "T")
_AGG_KEY_ORDER = ("a", "p", "q", "f", "l", "T", "m")
_INT64_LIMIT = 2**63  # ids and times travel as int64 on the columnar path
# A price or quantity on the aggTrades wire: digits with an optional fraction; no sign, exponent or space.
_UNSIGNED_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
_UNSIGNED_DECIMAL_RE = r"^[0-9]+(\.[0-9]+)?$"
_DECIMAL_SCALE = 18  # records.DECIMAL is Decimal(38, 18): 20 integer digits, 18 decimals
_DECIMAL_INTEGER_DIGITS = 20


def parse_agg_trades_table(text: str, *, symbol: str) -> pa.Table:
    """A /api/v3/aggTrades body as `records.AGG_TRADE_SCHEMA` rows (ts in µs), validated, in the order received.

    Each row is `{"a","p","q","f","l","T","m"}` plus an optional `"M"`. `T` is in ms or µs, decided per
    value by magnitude; ms become ms × 1000. Prices and quantities are cast exactly to Decimal(38, 18)
    (a value that would need rounding is malformed). Within one response the aggregate ids increase by
    exactly 1, the trade-id chain is unbroken (`f` = previous `l` + 1) and transact times never go back.

    Bulk path: one JSON decode, then Arrow and numpy check and cast whole columns. Any doubt sends the
    body through `parse_agg_trades`, which raises `MalformedAggTradeError` naming the field (or both ids)
    and quoting the row's exact source text.
    """
    table = _agg_trades_table_fast(text, symbol)
    if table is not None:
        return table
    trades = parse_agg_trades(text, symbol=symbol)  # raises with the reason, or ...
    try:
        return _agg_trades_to_table(trades)  # ... the rows were valid but the columnar path had a doubt
    except (pa.ArrowInvalid, OverflowError) as exc:
        raise MalformedAggTradeError(
            symbol, text[:2000], f"a value does not fit the warehouse's exact Decimal(38, 18) ({exc})"
        ) from None


def parse_agg_trades(text: str, *, symbol: str) -> list[AggTrade]:
    """Every row of a /api/v3/aggTrades body as a validated `AggTrade` (µs), in the order received.

    The row-by-row path with the same rules as `parse_agg_trades_table`; raises `MalformedAggTradeError`
    on the first bad row, so a caller never gets part of a bad response.
    """
    try:
        rows = split_json_array(text)
    except ValueError as exc:
        raise MalformedAggTradeError(
            symbol, text[:2000], f"the body is not a JSON array of rows ({exc})"
        ) from None
    trades: list[AggTrade] = []
    previous: AggTrade | None = None
    for row, raw in rows:
        trade = parse_agg_trade_row(row, symbol=symbol, raw=raw)
        if previous is not None:
            problem = _agg_trade_sequence_problem(previous, trade)
            if problem:
                raise MalformedAggTradeError(symbol, raw, problem)
        trades.append(trade)
        previous = trade
    return trades


def _agg_trade_sequence_problem(previous: AggTrade, trade: AggTrade) -> str:
    """Why `trade` cannot follow `previous` in one response ("" if it can)."""
    if trade.trade_id != previous.trade_id + 1:
        gap = (
            f"{trade.trade_id - previous.trade_id - 1} missing"
            if trade.trade_id > previous.trade_id
            else "repeated or out of order"
        )
        return (
            f"aggregate trade id {trade.trade_id} follows {previous.trade_id}: ids in one response must "
            f"increase by exactly 1 ({gap})"
        )
    if trade.first_trade_id != previous.last_trade_id + 1:
        return (
            f"first trade id {trade.first_trade_id} of aggregate trade {trade.trade_id} does not follow "
            f"last trade id {previous.last_trade_id} of aggregate trade {previous.trade_id}: "
            "the trade-id chain is broken"
        )
    if trade.ts_us < previous.ts_us:
        return (
            f"transact time {trade.ts_us} µs of aggregate trade {trade.trade_id} is before "
            f"{previous.ts_us} µs of aggregate trade {previous.trade_id}"
        )
    return ""


def parse_agg_trade_row(row: object, *, symbol: str, raw: str | None = None) -> AggTrade:
    """One aggTrades row (REST JSON object) as a validated `AggTrade`, transact time in µs."""
    if raw is None:
        raw = json.dumps(row, separators=(",", ":"))

    def bad(reason: str) -> MalformedAggTradeError:
        return MalformedAggTradeError(symbol, raw, reason)

    if not isinstance(row, dict):
        raise bad(f"a row must be a JSON object, got a JSON {_json_type(row)}")
    missing = [key for key in AGG_TRADE_WIRE_FIELDS if key not in row and key != "M"]
    if missing:
        raise bad(f"missing {', '.join(_agg_field(key) for key in missing)}")
    unexpected = sorted(str(key) for key in row if key not in _AGG_KEYS_WITH_BEST_MATCH)
    if unexpected:
        raise bad(
            f"unexpected field(s) {', '.join(repr(key) for key in unexpected)}; the documented fields are "
            f"{' '.join(AGG_TRADE_WIRE_FIELDS)}"
        )
    ints: dict[str, int] = {}
    for key in _AGG_INT_KEYS:
        value = row[key]
        if not _is_int(value) or not 0 <= value < _INT64_LIMIT:
            raise bad(f"{_agg_field(key)} is {_json_text(value)}, expected a non-negative JSON integer")
        ints[key] = value
    price = _exact_decimal(row["p"], "p", bad)
    qty = _exact_decimal(row["q"], "q", bad)
    for key, number in (("p", price), ("q", qty)):
        if number <= 0:
            raise bad(f"{_agg_field(key)} is {row[key]!r}, expected > 0")
    if ints["f"] > ints["l"]:
        raise bad(f"{_agg_field('f')} {ints['f']} is after {_agg_field('l')} {ints['l']}")
    for key in ("m", "M"):
        if key in row and type(row[key]) is not bool:
            raise bad(f"{_agg_field(key)} is {_json_text(row[key])}, expected a JSON boolean")
    transact_time = ints["T"]
    return AggTrade(
        exchange=EXCHANGE,
        symbol=symbol,
        trade_id=ints["a"],
        price=price,
        qty=qty,
        first_trade_id=ints["f"],
        last_trade_id=ints["l"],
        ts_us=transact_time if transact_time > MICROS_THRESHOLD else transact_time * 1000,
        is_buyer_maker=row["m"],
    )


def _agg_field(key: str) -> str:
    return f"field {key!r} ({AGG_TRADE_WIRE_FIELDS[key]})"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _json_text(value: object) -> str:
    return json.dumps(value)[:100]


def _exact_decimal(value: object, key: str, bad: Callable[[str], MalformedAggTradeError]) -> Decimal:
    """A price/quantity string as the exact Decimal(38, 18) the warehouse stores; never rounded."""
    where = _agg_field(key)
    if not isinstance(value, str):
        # Binance sends prices and quantities as strings; a JSON number here has already lost exactness.
        raise bad(f"{where} is {_json_text(value)} (a JSON {_json_type(value)}), expected a decimal string")
    if not _UNSIGNED_DECIMAL.fullmatch(value):
        raise bad(
            f"{where} is {value!r}, expected plain digits with an optional fraction (no sign, exponent or spaces)"
        )
    whole, _, fraction = value.partition(".")
    if len(fraction.rstrip("0")) > _DECIMAL_SCALE:
        raise bad(
            f"{where} is {value!r}, which has more than {_DECIMAL_SCALE} decimals: the warehouse's "
            "Decimal(38, 18) cannot hold it without rounding"
        )
    if len(whole.lstrip("0")) > _DECIMAL_INTEGER_DIGITS:
        raise bad(f"{where} is {value!r}, too large for the warehouse's Decimal(38, 18)")
    return Decimal(value)


def _agg_trades_to_table(trades: list[AggTrade]) -> pa.Table:
    """Validated records to `AGG_TRADE_SCHEMA`. Raises pyarrow.ArrowInvalid rather than drop a digit."""
    columns: dict[str, pa.Array] = {
        "exchange": pa.array([t.exchange for t in trades], pa.string()),
        "symbol": pa.array([t.symbol for t in trades], pa.string()),
        "trade_id": pa.array([t.trade_id for t in trades], pa.uint64()),
        "price": pa.array([t.price for t in trades], DECIMAL),
        "qty": pa.array([t.qty for t in trades], DECIMAL),
        "first_trade_id": pa.array([t.first_trade_id for t in trades], pa.uint64()),
        "last_trade_id": pa.array([t.last_trade_id for t in trades], pa.uint64()),
        "ts": pa.array([t.ts_us for t in trades], pa.int64()).cast(TIME_US),
        "is_buyer_maker": pa.array([t.is_buyer_maker for t in trades], pa.bool_()),
    }
    return pa.table([columns[f.name] for f in AGG_TRADE_SCHEMA], schema=AGG_TRADE_SCHEMA)


def _agg_trades_table_fast(text: str, symbol: str) -> pa.Table | None:
    """The columnar path of `parse_agg_trades_table`: the table, or None at the first doubt."""
    try:
        rows = json.loads(text)
    except ValueError:
        return None
    if type(rows) is not list:
        return None
    n = len(rows)
    if n == 0:
        return AGG_TRADE_SCHEMA.empty_table()
    try:
        lengths = set(map(len, rows))
        # Every row with "M" or every row without it; a mix (or anything else) goes the row path.
        keys = _AGG_KEY_ORDER if lengths == {len(_AGG_KEYS)} else (*_AGG_KEY_ORDER, "M")
        if lengths != {len(keys)}:
            return None
        # KeyError: a field is missing (or an unknown one is there); TypeError: a row is not an object
        columns = dict(zip(keys, zip(*map(operator.itemgetter(*keys), rows), strict=True), strict=True))
    except (KeyError, TypeError):
        return None
    if "M" in columns and set(map(type, columns["M"])) != {bool}:
        return None
    ints: dict[str, np.ndarray] = {}
    for key in _AGG_INT_KEYS:
        if set(map(type, columns[key])) != {int}:  # bool is not int here
            return None
        try:
            values = np.array(columns[key], dtype=np.int64)
        except OverflowError:
            return None
        if values.min() < 0:
            return None
        ints[key] = values
    ids, first_ids, last_ids = ints["a"], ints["f"], ints["l"]
    ts_us = np.where(ints["T"] > MICROS_THRESHOLD, ints["T"], ints["T"] * 1000)
    if not (
        (first_ids <= last_ids).all()
        and (ids[1:] == ids[:-1] + 1).all()
        and (first_ids[1:] == last_ids[:-1] + 1).all()
        and (ts_us[1:] >= ts_us[:-1]).all()
    ):
        return None
    if set(map(type, columns["m"])) != {bool}:
        return None
    decimals: dict[str, pa.Array] = {}
    for key in ("p", "q"):
        if set(map(type, columns[key])) != {str}:
            return None
        strings = pa.array(columns[key], pa.string())
        if not pc.all(pc.match_substring_regex(strings, _UNSIGNED_DECIMAL_RE)).as_py():
            return None
        try:
            numbers = strings.cast(DECIMAL)  # exact: Arrow refuses a cast that would lose a digit
        except pa.ArrowInvalid:
            return None
        if not pc.all(pc.greater(numbers, pa.scalar(0, DECIMAL))).as_py():
            return None
        decimals[key] = numbers
    return pa.table(
        [
            pa.array([EXCHANGE] * n, pa.string()),
            pa.array([symbol] * n, pa.string()),
            pa.array(ids.view(np.uint64)),
            decimals["p"],
            decimals["q"],
            pa.array(first_ids.view(np.uint64)),
            pa.array(last_ids.view(np.uint64)),
            pa.array(ts_us, TIME_US),
            pa.array(columns["m"], pa.bool_()),
        ],
        schema=AGG_TRADE_SCHEMA,
    )


# ------------------------------------------------------------------------------------- other bodies


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """Binance's error body `{"code": -1121, "msg": "Invalid symbol."}`."""

    code: int
    msg: str


def parse_error_body(text: str) -> ErrorBody | None:
    """The error body, or None when the text is not one (an HTML WAF page, an empty body, ...)."""
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if isinstance(body, dict) and _is_int(body.get("code")) and isinstance(body.get("msg"), str):
        return ErrorBody(code=body["code"], msg=body["msg"])
    return None


def error_hint(code: int | None) -> str:
    """What an operator can do about a Binance error code ("" when nothing specific)."""
    return _ERROR_HINTS.get(code, "") if code is not None else ""


def parse_server_time(text: str) -> float:
    """`/api/v3/time` body `{"serverTime": ...}` (ms or µs) as epoch milliseconds, keeping µs precision."""
    try:
        body = json.loads(text)
        value = body["serverTime"]
    except (ValueError, KeyError, TypeError):
        raise MalformedResponseError(
            "/api/v3/time", f"expected {{'serverTime': int}}, got {text[:200]!r}"
        ) from None
    if not _is_int(value) or value <= 0:
        raise MalformedResponseError("/api/v3/time", f"serverTime is {value!r}, expected a positive integer")
    return value / 1000 if value > MICROS_THRESHOLD else float(value)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One `rateLimits` entry of exchangeInfo, e.g. REQUEST_WEIGHT 6000 per 1 MINUTE."""

    rate_limit_type: str
    interval: str
    interval_num: int
    limit: int

    @property
    def window_ms(self) -> int:
        return _INTERVAL_UNIT_SECONDS[self.interval] * self.interval_num * 1000


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """What exchangeInfo says about one symbol. `status` is e.g. TRADING, BREAK, HALT."""

    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    tick_size: Decimal | None = None
    step_size: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ExchangeInfo:
    server_time_ms: int
    rate_limits: tuple[RateLimit, ...]
    symbols: dict[str, SymbolInfo]

    def request_weight_limit(self) -> RateLimit | None:
        """The REQUEST_WEIGHT entry (the budget every public endpoint draws from), if listed."""
        return next((r for r in self.rate_limits if r.rate_limit_type == "REQUEST_WEIGHT"), None)


def parse_exchange_info(text: str) -> ExchangeInfo:
    """An `/api/v3/exchangeInfo` body. Rate limits with an unknown interval unit are malformed."""
    path = "/api/v3/exchangeInfo"
    try:
        body = json.loads(text)
        rate_limits = tuple(
            RateLimit(
                rate_limit_type=str(entry["rateLimitType"]),
                interval=str(entry["interval"]),
                interval_num=int(entry["intervalNum"]),
                limit=int(entry["limit"]),
            )
            for entry in body.get("rateLimits", [])
        )
        symbols = {entry["symbol"]: _symbol_info(entry) for entry in body.get("symbols", [])}
        server_time = to_millis(int(body.get("serverTime", 0)))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MalformedResponseError(path, f"unexpected exchangeInfo shape ({exc!r})") from None
    for rate_limit in rate_limits:
        if rate_limit.interval not in _INTERVAL_UNIT_SECONDS or rate_limit.interval_num <= 0:
            raise MalformedResponseError(path, f"rate limit {rate_limit} has an unknown interval")
    return ExchangeInfo(server_time_ms=server_time, rate_limits=rate_limits, symbols=symbols)


def _symbol_info(entry: dict[str, Any]) -> SymbolInfo:
    filters = {str(f["filterType"]): f for f in entry.get("filters") or [] if isinstance(f, dict)}
    tick = filters.get("PRICE_FILTER", {}).get("tickSize")
    step = filters.get("LOT_SIZE", {}).get("stepSize")
    return SymbolInfo(
        symbol=str(entry["symbol"]),
        status=str(entry.get("status", "")),
        base_asset=str(entry.get("baseAsset", "")),
        quote_asset=str(entry.get("quoteAsset", "")),
        tick_size=Decimal(tick) if isinstance(tick, str) else None,
        step_size=Decimal(step) if isinstance(step, str) else None,
    )


# ------------------------------------------------------------------------------------------- headers


def used_weight_by_window(headers: Mapping[str, str]) -> dict[int, int]:
    """`X-MBX-USED-WEIGHT-<n><S|M|H|D>` headers as {window length in ms: weight used in that window}."""
    used: dict[int, int] = {}
    for name, value in headers.items():
        match = _USED_WEIGHT_HEADER.fullmatch(name)
        if match and value.strip().isdigit():
            window_ms = int(match.group(1)) * _UNIT_SECONDS[match.group(2).upper()] * 1000
            used[window_ms] = int(value)
    return used


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The `Retry-After` header in seconds (Binance sends whole seconds), or None if absent/unreadable."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
