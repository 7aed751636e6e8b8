"""WebSocket streams of the simulator: raw and combined forms, payloads equal to REST, trades, klines, rate mode."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator

MICRO = {"X-MBX-TIME-UNIT": "MICROSECOND"}
LOT = Decimal("0.00001")  # BTCUSDT stepSize in the simulator


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with run_simulator(symbols=["BTCUSDT", "ETHUSDT"], trades_per_day=2_000_000) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _reset(sim: SimulatorHandle) -> None:
    sim.reset()


async def collect(url: str, until: Any, timeout: float = 10.0) -> list[Any]:
    """Messages (JSON-decoded) from a connection until `until(messages)` is true."""
    messages: list[Any] = []
    async with websockets.connect(url, ping_interval=None) as ws:
        deadline = time.monotonic() + timeout
        while not until(messages):
            left = deadline - time.monotonic()
            assert left > 0, f"timed out after {len(messages)} messages: {messages[-3:]}"
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
    return messages


def has(stream: str, count: int) -> Any:
    """A `collect` condition: `count` messages of `stream` seen (counted incrementally)."""
    seen = [0, 0]  # messages looked at, matches

    def until(messages: list[dict[str, Any]]) -> bool:
        for message in messages[seen[0] :]:
            seen[1] += message["stream"] == stream
        seen[0] = len(messages)
        return seen[1] >= count

    return until


def of_stream(messages: list[dict[str, Any]], stream: str) -> list[dict[str, Any]]:
    return [m["data"] for m in messages if m["stream"] == stream]


def test_combined_stream_wraps_payloads_and_trades_match_rest(sim: SimulatorHandle) -> None:
    url = sim.ws_url("/stream?streams=btcusdt@aggTrade/btcusdt@trade")
    opened_ms = int(time.time() * 1000)
    messages = asyncio.run(collect(url, has("btcusdt@aggTrade", 40)))
    assert all(set(m) == {"stream", "data"} for m in messages)
    aggs = of_stream(messages, "btcusdt@aggTrade")
    assert aggs[0]["T"] >= opened_ms - 1000  # starts from now: no history
    assert all(a["e"] == "aggTrade" and a["s"] == "BTCUSDT" and a["M"] is True for a in aggs)
    assert all(0 <= a["E"] - a["T"] < 200 for a in aggs)  # pushed as the clock passes T
    assert [a["a"] for a in aggs] == list(range(aggs[0]["a"], aggs[0]["a"] + len(aggs)))

    rest = httpx.get(f"{sim.base_url}/api/v3/aggTrades", params={"symbol": "BTCUSDT", "fromId": aggs[0]["a"], "limit": len(aggs)}).json()  # fmt: skip
    assert [{k: v for k, v in a.items() if k not in ("e", "E", "s")} for a in aggs] == rest

    trades = {t["t"]: t for t in of_stream(messages, "btcusdt@trade")}
    for agg in aggs[:-1]:  # the last aggregate's trades may still be in flight
        parts = [trades[i] for i in range(agg["f"], agg["l"] + 1)]
        assert {(t["p"], t["T"], t["m"], t["E"]) for t in parts} == {(agg["p"], agg["T"], agg["m"], agg["E"])}
        assert sum(Decimal(t["q"]) for t in parts) == Decimal(agg["q"])
        lots = Decimal(agg["q"]) / LOT
        if lots >= len(parts):  # on the lot grid, as even as possible, larger parts first
            sizes = [Decimal(t["q"]) / LOT for t in parts]
            assert all(s == int(s) for s in sizes) and max(sizes) - min(sizes) <= 1
            assert sizes == sorted(sizes, reverse=True)


def test_raw_stream_in_microseconds_matches_rest(sim: SimulatorHandle) -> None:
    url = sim.ws_url("/ws/ethusdt@aggTrade?timeUnit=MICROSECOND")
    aggs = asyncio.run(collect(url, lambda ms: len(ms) >= 15))
    assert all(a["e"] == "aggTrade" and a["s"] == "ETHUSDT" for a in aggs)
    assert all(a["T"] > 10**15 and a["E"] >= a["T"] for a in aggs)
    rest = httpx.get(f"{sim.base_url}/api/v3/aggTrades", headers=MICRO, params={"symbol": "ETHUSDT", "fromId": aggs[0]["a"], "limit": 15}).json()  # fmt: skip
    assert [{k: v for k, v in a.items() if k not in ("e", "E", "s")} for a in aggs] == rest


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A kline's values computed independently from REST aggTrades rows."""
    prices = [Decimal(r["p"]) for r in rows]
    taker = [r for r in rows if not r["m"]]

    def money(value: Decimal) -> str:
        return f"{value:.8f}"

    return {
        "f": rows[0]["f"], "L": rows[-1]["l"], "o": money(prices[0]), "c": money(prices[-1]),
        "h": money(max(prices)), "l": money(min(prices)), "v": money(sum(Decimal(r["q"]) for r in rows)),
        "n": sum(r["l"] - r["f"] + 1 for r in rows),
        "q": money(sum(Decimal(r["p"]) * Decimal(r["q"]) for r in rows)),
        "V": money(sum(Decimal(r["q"]) for r in taker)),
        "Q": money(sum(Decimal(r["p"]) * Decimal(r["q"]) for r in taker)),
    }  # fmt: skip


def test_kline_running_values_and_close_equal_rest(sim: SimulatorHandle) -> None:
    now_ms = int(time.time() * 1000)
    boundary = -(-(now_ms + 3500) // 60_000) * 60_000
    sim.set_clock_offset(boundary - 3500 - now_ms)  # the simulated minute ends 3.5 s from now
    url = sim.ws_url("/stream?streams=btcusdt@kline_1m&timeUnit=MICROSECOND")
    events = [m["data"] for m in asyncio.run(collect(url, lambda ms: bool(ms) and ms[-1]["data"]["k"]["x"]))]
    running, closed = events[:-1], events[-1]["k"]
    assert running and all(not e["k"]["x"] for e in running)
    assert all(e["E"] % 2_000_000 < 200_000 for e in running)  # pushed on the even seconds
    assert closed["t"] == (boundary - 60_000) * 1000 and closed["T"] == boundary * 1000 - 1
    assert events[-1]["E"] >= boundary * 1000 and closed["i"] == "1m" and closed["B"] == "0"

    rest = httpx.get(f"{sim.base_url}/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "startTime": boundary - 60_000, "limit": 1}).json()[0]  # fmt: skip
    assert rest[0] == boundary - 60_000
    assert [closed[k] for k in "ohlcv"] == rest[1:6]
    assert [closed["q"], closed["n"], closed["V"], closed["Q"]] == [rest[7], rest[8], rest[9], rest[10]]

    minute_rows: list[dict[str, Any]] = []
    while not minute_rows or minute_rows[-1]["T"] < closed["T"]:
        params = {"symbol": "BTCUSDT", "limit": 1000}
        params |= {"fromId": minute_rows[-1]["a"] + 1} if minute_rows else {"startTime": closed["t"]}
        page = httpx.get(f"{sim.base_url}/api/v3/aggTrades", headers=MICRO, params=params).json()
        minute_rows += page
        if len(page) < 1000:
            break
    minute_rows = [r for r in minute_rows if r["T"] <= closed["T"]]
    assert {k: closed[k] for k in aggregate(minute_rows)} == aggregate(minute_rows)
    for event in running:  # the running values are the aggregation of the minute's trades up to E
        so_far = [r for r in minute_rows if r["T"] <= event["E"]]
        assert {k: event["k"][k] for k in aggregate(so_far)} == aggregate(so_far)


def test_unknown_symbol_is_silent_and_bad_requests_are_refused(sim: SimulatorHandle) -> None:
    async def silent() -> None:
        async with websockets.connect(sim.ws_url("/ws/zzzusdt@aggTrade"), ping_interval=None) as ws:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 1.0)

    asyncio.run(silent())
    for path in ("/ws/btcusdt@foo", "/ws/BTCUSDT@aggTrade", "/stream?streams=btcusdt@trade/x", "/ws/btcusdt@trade?timeUnit=NANOSECOND"):  # fmt: skip
        with pytest.raises(InvalidStatus) as refused:
            asyncio.run(collect(sim.ws_url(path), lambda ms: True))
        assert refused.value.response.status_code == 400
        assert json.loads(refused.value.response.body)["code"] == 2


def test_rate_mode_pushes_contiguous_trades_at_the_set_rate(sim: SimulatorHandle) -> None:
    sim.ws_settings(agg_trade_rate=4000)
    url = sim.ws_url("/stream?streams=btcusdt@aggTrade/btcusdt@kline_1m")
    messages = asyncio.run(collect(url, has("btcusdt@kline_1m", 2)))
    aggs = of_stream(messages, "btcusdt@aggTrade")
    seconds = (aggs[-1]["T"] - aggs[0]["T"]) / 1000
    assert seconds > 1.5 and 0.8 * 4000 < len(aggs) / seconds < 1.2 * 4000
    assert [a["a"] for a in aggs] == list(range(aggs[0]["a"], aggs[0]["a"] + len(aggs)))
    assert all(b["f"] == a["l"] + 1 and b["T"] >= a["T"] for a, b in zip(aggs, aggs[1:], strict=False))
    assert all(Decimal(a["p"]) > 0 and Decimal(a["q"]) > 0 and a["E"] == a["T"] for a in aggs)
    last_kline = of_stream(messages, "btcusdt@kline_1m")[-1]
    so_far = [a for a in aggs if a["T"] <= last_kline["E"] and a["T"] >= last_kline["k"]["t"]]
    assert last_kline["k"]["L"] == so_far[-1]["l"]  # klines follow the rate-mode trades
    assert sim.ws_state()["settings"]["agg_trade_rate"] == 4000
    sim.reset()
    assert sim.ws_state()["settings"]["agg_trade_rate"] == 0
