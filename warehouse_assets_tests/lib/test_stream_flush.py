"""Raw stream frames into a real embedded ClickHouse: real captured messages land exactly, a replay adds
nothing, malformed frames are kept verbatim with their reason, candles follow."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import pytest

from warehouse_assets.lib.stream_flush import flush_frames
from warehouse_assets.lib.warehouse import Warehouse
from warehouse_assets_tests.conftest import SHARED_DATA, sql

CAPTURES = [
    SHARED_DATA / "ws_captures/cryptofeed/cryptofeed_BINANCE_spot_2021-10-12.jsonl",
    SHARED_DATA / "ws_captures/cryptofeed/cryptofeed_BINANCE_FUTURES_2021-07-22.jsonl",
]


def captured(kind: str) -> list[bytes]:
    """The raw combined-stream frames of one kind, exactly as cryptofeed recorded them."""
    frames = []
    for path in CAPTURES:
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["t"] == "recv" and f'@{kind}"' in record["data"]:
                frames.append(record["data"].encode())
    return frames


def agg(
    a: int, *, p: str = "100.5", q: str = "0.25", t_us: int = 1_767_225_600_123_456, symbol: str = "BTCUSDT"
) -> bytes:
    data = {"e": "aggTrade", "E": t_us // 1000, "s": symbol, "a": a, "p": p, "q": q, "f": 2 * a, "l": 2 * a + 1,
            "T": t_us, "m": a % 2 == 0, "M": True}  # fmt: skip
    return json.dumps({"stream": f"{symbol.lower()}@aggTrade", "data": data}, separators=(",", ":")).encode()


def rows(wh: Warehouse, text: str) -> list[tuple]:
    with wh.session() as client:
        return client.query(sql(wh, text)).result_rows


def flush(wh: Warehouse, frames: list[bytes]):  # type: ignore[no-untyped-def]
    with wh.session() as client:
        return flush_frames(client, wh.database, frames)


def test_real_captured_aggtrades_and_klines_land_exactly(warehouse: Warehouse) -> None:
    trades, klines = captured("aggTrade"), captured("kline_1m")
    assert len(trades) == 93 and len(klines) == 69  # spot and USD-M futures sessions
    result = flush(warehouse, trades + klines)
    assert result.dead_letters == 0 and result.agg_trades == len(trades)
    expected = {}
    for frame in trades:
        d = json.loads(frame)["data"]
        expected[(d["s"], d["a"])] = (Decimal(d["p"]), Decimal(d["q"]), d["f"], d["l"], d["T"] * 1000, d["m"])
    got = rows(
        warehouse,
        "SELECT symbol, trade_id, price, qty, first_trade_id, last_trade_id, toUnixTimestamp64Micro(ts), "
        "is_buyer_maker, source FROM ${database}.trades",
    )
    assert {(r[0], r[1]): tuple(r[2:8]) for r in got} == expected
    assert result.trades_inserted == len(expected) and {r[8] for r in got} == {"stream"}
    closed = [json.loads(f)["data"]["k"] for f in klines if json.loads(f)["data"]["k"]["x"]]
    stored = rows(
        warehouse,
        "SELECT symbol, toUnixTimestamp64Milli(open_time), close, volume, trades FROM ${database}.klines_1m",
    )
    assert sorted(stored) == sorted(
        (k["s"], k["t"], Decimal(k["c"]), Decimal(k["v"]), k["n"]) for k in closed
    )
    assert result.klines_inserted == len(closed) > 0


def test_a_replayed_block_adds_nothing(warehouse: Warehouse) -> None:
    frames = [agg(i, t_us=1_767_225_600_000_000 + i * 995_000) for i in range(1, 301)]  # 5 minutes
    frames += [
        agg(301, t_us=1_767_225_600_000_000 + 300 * 1_000_000)
    ]  # the 6th minute's first: closes the 5th
    frames += [b"{not json", agg(999, p="-3")]
    first = flush(warehouse, frames)
    assert (first.trades_inserted, first.dead_letters, first.candles_built) == (301, 2, 5)
    second = flush(warehouse, frames + frames[:10])  # the block again, plus repeats
    assert second.trades_inserted == 0
    assert rows(warehouse, "SELECT count(), uniqExact(trade_id), sum(qty) FROM ${database}.trades") == [
        (301, 301, Decimal("75.25"))
    ]
    assert rows(warehouse, "SELECT count() FROM ${database}.dead_letters") == [(2,)]
    assert rows(warehouse, "SELECT count(), sum(agg_trades), sum(volume) FROM ${database}.candles_1m") == [
        (5, 300, Decimal("75"))
    ]


def test_a_minute_is_built_once_when_a_later_flush_closes_it(warehouse: Warehouse) -> None:
    base = 1_767_225_600_000_000
    trades = {i: base + i * 995_000 for i in range(1, 131)}  # minutes 0, 1 and part of 2
    first = flush(warehouse, [agg(i, t_us=t) for i, t in trades.items() if i <= 90])  # minute 1 still open
    assert first.candles_built == 1
    second = flush(warehouse, [agg(i, t_us=t) for i, t in trades.items() if i > 90])  # closes minute 1
    assert second.candles_built == 1
    expected: dict[int, list[int]] = {}
    for i, t in trades.items():
        expected.setdefault((t - base) // 60_000_000, []).append(i)
    got = rows(
        warehouse,
        "SELECT toUnixTimestamp64Milli(open_time), agg_trades, first_trade_id, last_trade_id, volume "
        "FROM ${database}.candles_1m ORDER BY open_time",
    )
    assert got == [
        (base // 1000 + m * 60_000, len(ids), ids[0], ids[-1], Decimal("0.25") * len(ids))
        for m, ids in sorted(expected.items())
        if m < 2  # minute 2 is open: no candle until a later trade closes it
    ]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade"', "not valid JSON"),
        (agg(7).replace(b'"q":"0.25"', b'"q":0.25'), "data.q (quantity) is not a plain decimal string"),
        (agg(7, p="-100.5"), "data.p (price) is not a plain decimal string"),
        (agg(7, p="0"), "data.p (price) is not positive"),
        (agg(7, q="1.0000000000000000001"), "data.q (quantity) is not a plain decimal string"),
        (agg(7).replace(b'"a":7', b'"a":"7"'), "data.a (aggregate id) is not a non-negative integer"),
        (agg(7).replace(b'"m":false', b'"m":"false"'), "data.m (buyer is maker) is not a boolean"),
        (
            agg(7).replace(b'"s":"BTCUSDT"', b'"s":"ETHUSDT"'),
            "data.s is missing or does not match the stream",
        ),
        (agg(7).replace(b',"T":', b',"X":'), "data.T (trade time) is not a positive integer"),
        (
            b'{"stream":"btcusdt@depth20","data":{"bids":[]}}',
            "not a combined-stream message of a subscribed kind",
        ),
        (b'{"stream":"btcusdt@aggTrade",\n"data":{}}', "contains a line break"),
        (b"", "the frame is empty"),
    ],
)
def test_a_malformed_frame_is_kept_verbatim_and_the_rest_lands(
    warehouse: Warehouse, frame: bytes, reason: str
) -> None:
    good = [agg(1), agg(2)]
    result = flush(warehouse, [good[0], frame, good[1]])
    assert (result.trades_inserted, result.dead_letters) == (2, 1)
    ((kind_reason, payload),) = rows(warehouse, "SELECT reason, payload FROM ${database}.dead_letters")
    assert reason in kind_reason and payload == frame.decode()


def test_control_replies_are_neither_data_nor_refused(warehouse: Warehouse) -> None:
    shutdown = b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}'
    result = flush(warehouse, [b'{"result":null,"id":1}', shutdown, agg(1)])
    assert (result.control, result.dead_letters, result.trades_inserted) == (2, 0, 1)


HFT_CAPTURES = [
    SHARED_DATA / "ws_captures/binance_hftbacktest/binance_spot_btcusdt_20240808.gz",
    SHARED_DATA / "ws_captures/binance_hftbacktest/binance_spot_btcusdt_20240809.gz",
]


def captured_trades() -> list[bytes]:
    """The real BTCUSDT `@trade` frames of the hftbacktest capture, verbatim (lines `<ns> <json>`)."""
    frames = []
    for path in HFT_CAPTURES:
        with gzip.open(path, "rb") as capture:
            for line in capture:
                frame = line.rstrip(b"\n").partition(b" ")[2]
                if frame.startswith(b'{"stream":"btcusdt@trade"'):
                    frames.append(frame)
    return frames


def test_real_captured_individual_trades_land_exactly_in_their_own_table(warehouse: Warehouse) -> None:
    frames = captured_trades()
    assert len(frames) == 9757 + 10147
    expected = {}
    for frame in frames:
        d = json.loads(frame)["data"]
        expected[d["t"]] = (Decimal(d["p"]), Decimal(d["q"]), d["T"] * 1000, d["m"])
    total = Decimal(0)
    for i in range(0, len(frames), 5000):  # as the flusher would: block after block
        result = flush(warehouse, frames[i : i + 5000])
        assert result.dead_letters == 0 and result.individual_trades == len(frames[i : i + 5000])
        total += result.individual_trades_inserted
    assert total == len(expected) == 19904
    got = rows(
        warehouse,
        "SELECT trade_id, price, qty, toUnixTimestamp64Micro(ts), is_buyer_maker, symbol, source "
        "FROM ${database}.individual_trades",
    )
    assert {r[0]: tuple(r[1:5]) for r in got} == expected  # every value as Binance published it
    assert {(r[5], r[6]) for r in got} == {("BTCUSDT", "stream")}
    assert rows(warehouse, "SELECT count() FROM ${database}.trades") == [(0,)]  # not mixed with aggregates
    again = flush(warehouse, frames[:3000] + frames[-10:])  # a replayed block
    assert again.individual_trades_inserted == 0
    assert rows(
        warehouse,
        "SELECT count(), uniqExact(trade_id), min(trade_id), max(trade_id), sum(qty) FROM ${database}.individual_trades",
    ) == [(19904, 19904, 3735683259, 3735703162, sum((v[1] for v in expected.values()), Decimal(0)))]


def trade(t: int, *, p: str = "61837.63", q: str = "0.02") -> bytes:
    data = {"e": "trade", "E": 1723161255343, "s": "BTCUSDT", "t": t, "p": p, "q": q, "T": 1723161255342,
            "m": True, "M": True}  # fmt: skip
    return json.dumps({"stream": "btcusdt@trade", "data": data}, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (trade(5, p="-1"), "data.p (price) is not a plain decimal string"),
        (trade(5, q="0"), "data.q (quantity) is not positive"),
        (trade(5).replace(b'"t":5', b'"t":-5'), "data.t (trade id) is not a non-negative integer"),
        (trade(5).replace(b'"e":"trade"', b'"e":"aggTrade"'), 'data.e is not "trade"'),
        (trade(5).replace(b'"m":true', b'"m":1'), "data.m (buyer is maker) is not a boolean"),
    ],
)
def test_a_malformed_individual_trade_is_a_dead_letter(
    warehouse: Warehouse, frame: bytes, reason: str
) -> None:
    result = flush(warehouse, [trade(1), frame, trade(2)])
    assert (result.individual_trades_inserted, result.dead_letters) == (2, 1)
    ((got_reason, payload),) = rows(warehouse, "SELECT reason, payload FROM ${database}.dead_letters")
    assert reason in got_reason and payload == frame.decode()


def test_a_valid_frame_off_binances_exact_layout_lands_the_same(warehouse: Warehouse) -> None:
    """The fast path (one regex for Binance's exact layout) and the field-by-field path give the same rows."""
    canonical = agg(1, t_us=1_767_225_600_000_001)
    data = json.loads(canonical)["data"]
    reordered = json.dumps(
        {"data": dict(reversed(list(data.items())), a=2), "stream": "btcusdt@aggTrade"}
    ).encode()
    no_f_l = canonical.replace(b'"f":2,"l":3,', b"").replace(b'"a":1', b'"a":3')  # aggTrade without f and l
    result = flush(warehouse, [canonical, reordered, no_f_l])
    assert (result.trades_inserted, result.dead_letters) == (2, 1)
    got = rows(
        warehouse,
        "SELECT trade_id, price, qty, toUnixTimestamp64Micro(ts), is_buyer_maker FROM ${database}.trades "
        "ORDER BY trade_id",
    )
    assert [r[1:4] for r in got] == [(Decimal("100.5"), Decimal("0.25"), 1_767_225_600_000_001)] * 2
    assert [r[4] for r in got] == [False, False]
    ((reason,),) = rows(warehouse, "SELECT reason FROM ${database}.dead_letters")
    assert "data.f/data.l" in reason
