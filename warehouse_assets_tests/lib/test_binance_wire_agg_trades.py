"""Binance /api/v3/aggTrades bodies: a real payload to exact values, ms and µs times, and every kind of
malformed row rejected with a reason naming the field and the row's exact source text."""

from __future__ import annotations

import json
import pickle
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from warehouse_assets.lib.binance import wire
from warehouse_assets.lib.errors import MalformedAggTradeError
from warehouse_assets.lib.records import AGG_TRADE_SCHEMA

PAYLOAD = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "rest_payloads"
    / "binance_spot"
    / "nautilus_http_spot_market_agg_trades_BTCUSDT_2021-10-22.json"
)


@pytest.fixture(scope="module")
def payload_text() -> str:
    if not PAYLOAD.is_file():
        pytest.fail(
            f"the shared sample payload is not at {PAYLOAD}: run the tests with ../shared beside the checkout"
        )
    return PAYLOAD.read_text()


@pytest.fixture(scope="module")
def payload_rows(payload_text: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(payload_text)
    return rows


def body(rows: list[Any]) -> str:
    """A body laid out unlike Binance's compact JSON, so a quoted row proves it is the source text."""
    return "[\n  " + ",\n  ".join(row_text(row) for row in rows) + "\n]"


def row_text(row: Any) -> str:
    return json.dumps(row, separators=(", ", ": "))


def parse(text: str) -> pa.Table:
    return wire.parse_agg_trades_table(text, symbol="BTCUSDT")


# ---------------------------------------------------------------------------------------- valid bodies


def test_real_payload_becomes_exact_rows(payload_text: str, payload_rows: list[dict[str, Any]]) -> None:
    table = parse(payload_text)
    assert table.schema == AGG_TRADE_SCHEMA
    assert table.num_rows == len(payload_rows) == 10
    got = table.to_pylist()
    for trade, row in zip(got, payload_rows, strict=True):
        assert (trade["exchange"], trade["symbol"]) == ("binance", "BTCUSDT")
        assert trade["trade_id"] == row["a"]
        assert trade["price"] == Decimal(row["p"]) and trade["qty"] == Decimal(row["q"])
        assert (trade["first_trade_id"], trade["last_trade_id"]) == (row["f"], row["l"])
        assert trade["is_buyer_maker"] is row["m"]
    assert table.column("ts").cast(pa.int64()).to_pylist() == [row["T"] * 1000 for row in payload_rows]
    assert got[0]["price"] == Decimal("60759.6") and got[0]["qty"] == Decimal("0.00841")
    assert got[2]["is_buyer_maker"] is True and got[0]["is_buyer_maker"] is False


def test_row_path_gives_the_same_rows(payload_text: str) -> None:
    records = wire.parse_agg_trades(payload_text, symbol="BTCUSDT")
    table = parse(payload_text)
    fast = wire._agg_trades_table_fast(payload_text, "BTCUSDT")  # a real body never needs the slow path
    assert fast is not None and fast.equals(table)
    assert [r.trade_id for r in records] == table.column("trade_id").to_pylist()
    assert [r.price for r in records] == table.column("price").to_pylist()
    assert [r.qty for r in records] == table.column("qty").to_pylist()
    assert [r.ts_us for r in records] == table.column("ts").cast(pa.int64()).to_pylist()
    assert records[0].ts_ms == 1634944096633


def test_microsecond_times_are_kept_and_milliseconds_scaled_per_value(
    payload_rows: list[dict[str, Any]],
) -> None:
    rows = [dict(r) for r in payload_rows[:3]]
    rows[1]["T"] = rows[1]["T"] * 1000 + 417  # µs (X-MBX-TIME-UNIT: MICROSECOND), decided by magnitude
    rows[2]["T"] = rows[2]["T"] * 1000 + 999
    ts = parse(body(rows)).column("ts").cast(pa.int64()).to_pylist()
    assert ts == [
        payload_rows[0]["T"] * 1000,
        payload_rows[1]["T"] * 1000 + 417,
        payload_rows[2]["T"] * 1000 + 999,
    ]


def test_best_match_is_optional_even_when_mixed(payload_rows: list[dict[str, Any]]) -> None:
    rows = [dict(r) for r in payload_rows[:4]]
    without = [{k: v for k, v in r.items() if k != "M"} for r in rows]
    mixed = [without[0], rows[1], without[2], rows[3]]  # the columnar path declines, the row path accepts
    expected = parse(body(rows))
    assert parse(body(without)).equals(expected)
    assert parse(body(mixed)).equals(expected)


def test_decimals_are_exact_to_18_places(payload_rows: list[dict[str, Any]]) -> None:
    rows = [dict(r) for r in payload_rows[:2]]
    rows[0]["q"] = "0.000000000000000001"  # the smallest Decimal(38, 18) value
    rows[1]["p"] = "12345678901234567890.123456789012345678"  # 20 + 18 digits: the largest shape
    rows[1]["q"] = "1.5000000000000000000000"  # more than 18 places, but only zeros: still exact
    table = parse(body(rows))
    assert table.column("qty").to_pylist()[0] == Decimal("1E-18")
    assert table.column("price").to_pylist()[1] == Decimal("12345678901234567890.123456789012345678")
    assert table.column("qty").to_pylist()[1] == Decimal("1.5")


def test_empty_body_is_an_empty_table() -> None:
    table = parse(" [ ] ")
    assert table.num_rows == 0 and table.schema == AGG_TRADE_SCHEMA


# ------------------------------------------------------------------------------------- malformed rows


def change(row: dict[str, Any], **fields: Any) -> dict[str, Any]:
    changed = {k: v for k, v in row.items() if k not in fields or fields[k] is not DROP}
    changed.update({k: v for k, v in fields.items() if v is not DROP})
    return changed


DROP = object()

# (name, how to change row 1 of 3, words the reason must contain)
MALFORMED: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("missing field", {"q": DROP}, ("missing", "'q' (quantity)")),
    ("negative price", {"p": "-60759.60000000"}, ("'p' (price)", "'-60759.60000000'", "no sign")),
    ("zero qty", {"q": "0.00000000"}, ("'q' (quantity)", "expected > 0")),
    ("zero price", {"p": "0"}, ("'p' (price)", "expected > 0")),
    ("float price", {"p": 60759.6}, ("'p' (price)", "60759.6", "JSON number", "decimal string")),
    ("exponent", {"q": "8.41e-3"}, ("'q' (quantity)", "'8.41e-3'", "exponent")),
    ("more than 18 decimals", {"q": "0.0000000000000000001"}, ("'q' (quantity)", "more than 18 decimals")),
    ("too large", {"p": "123456789012345678901"}, ("'p' (price)", "too large")),
    ("bool id", {"a": True}, ("'a' (aggregate trade id)", "true", "non-negative JSON integer")),
    ("negative id", {"f": -1}, ("'f' (first trade id)", "-1")),
    ("id beyond int64", {"l": 2**63}, ("'l' (last trade id)", str(2**63))),
    ("string time", {"T": "1634944096848"}, ("'T' (transact time)", "non-negative JSON integer")),
    ("m not a bool", {"m": "false"}, ("'m' (is_buyer_maker)", "JSON boolean")),
    ("M not a bool", {"M": 1}, ("'M' (is_best_match)", "JSON boolean")),
    ("unknown field", {"x": 1}, ("unexpected field", "'x'")),
]


@pytest.mark.parametrize(
    ("changes", "words"), [(c, w) for _, c, w in MALFORMED], ids=[n for n, _, _ in MALFORMED]
)
def test_malformed_row_is_rejected_naming_the_field(
    payload_rows: list[dict[str, Any]], changes: dict[str, Any], words: tuple[str, ...]
) -> None:
    rows: list[Any] = [dict(r) for r in payload_rows[:3]]
    rows[1] = change(rows[1], **changes)
    text = body(rows)
    with pytest.raises(MalformedAggTradeError) as caught:
        parse(text)
    error = caught.value
    assert error.symbol == "BTCUSDT" and error.path == "/api/v3/aggTrades"
    assert error.raw == row_text(rows[1])  # the offending row, exactly as it appears in the body
    for word in words:
        assert word in error.reason, (word, error.reason)
    assert "nothing from this response was used" in str(error)
    with pytest.raises(MalformedAggTradeError):  # the row path agrees
        wire.parse_agg_trades(text, symbol="BTCUSDT")


def test_first_after_last_trade_id_names_both(payload_rows: list[dict[str, Any]]) -> None:
    rows = [dict(r) for r in payload_rows[:1]]
    rows[0]["f"], rows[0]["l"] = rows[0]["l"] + 1, rows[0]["l"]
    with pytest.raises(MalformedAggTradeError) as caught:
        parse(body(rows))
    assert caught.value.reason == (
        "field 'f' (first trade id) 1111480472 is after field 'l' (last trade id) 1111480471"
    )


def test_broken_trade_id_chain_names_both_ids(payload_rows: list[dict[str, Any]]) -> None:
    rows = [dict(r) for r in payload_rows[:3]]
    rows[2]["f"] += 1  # one underlying trade missing between aggregate trades 966492863 and 966492864
    rows[2]["l"] += 1
    with pytest.raises(MalformedAggTradeError) as caught:
        parse(body(rows))
    assert caught.value.raw == row_text(rows[2])
    assert caught.value.reason == (
        "first trade id 1111480474 of aggregate trade 966492864 does not follow last trade id 1111480472 "
        "of aggregate trade 966492863: the trade-id chain is broken"
    )


@pytest.mark.parametrize(
    ("new_id", "detail"), [(966492866, "(2 missing)"), (966492863, "(repeated or out of order)")]
)
def test_aggregate_ids_must_step_by_one(payload_rows: list[dict[str, Any]], new_id: int, detail: str) -> None:
    rows = [dict(r) for r in payload_rows[:3]]
    rows[2]["a"] = new_id
    with pytest.raises(MalformedAggTradeError) as caught:
        parse(body(rows))
    assert caught.value.raw == row_text(rows[2])
    assert caught.value.reason == (
        f"aggregate trade id {new_id} follows 966492863: ids in one response must increase by exactly 1 {detail}"
    )


def test_time_going_back_is_malformed(payload_rows: list[dict[str, Any]]) -> None:
    rows = [dict(r) for r in payload_rows[:3]]
    rows[2]["T"] = rows[1]["T"] - 1
    with pytest.raises(
        MalformedAggTradeError, match="transact time 1634944096847000 µs of aggregate trade 966492864"
    ):
        parse(body(rows))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[{"a":1,"p":"1.0"', "not a JSON array of rows"),
        ('{"code":-1121,"msg":"Invalid symbol."}', "not a JSON array of rows"),
        ('[[966492862, "60759.6"]]', "a row must be a JSON object, got a JSON array"),
    ],
    ids=["bad JSON", "an object, not an array", "a row that is an array"],
)
def test_body_that_is_not_an_array_of_objects(text: str, words: str) -> None:
    with pytest.raises(MalformedAggTradeError, match=words):
        parse(text)


def test_error_survives_pickling() -> None:
    error = MalformedAggTradeError("BTCUSDT", '{"a": 1}', "missing field 'q' (quantity)")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.symbol, copy.raw, copy.reason, copy.path, str(copy)) == (
        error.symbol,
        error.raw,
        error.reason,
        error.path,
        str(error),
    )
    assert str(error) == (
        "malformed aggregate trade for symbol 'BTCUSDT' from /api/v3/aggTrades: missing field 'q' "
        '(quantity); row as received: {"a": 1}; nothing from this response was used; report it if it '
        "persists"
    )
