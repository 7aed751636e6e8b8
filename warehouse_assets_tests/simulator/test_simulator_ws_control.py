"""WebSocket control messages, the 5 messages/s and 1024-stream limits, pings, lifetime and serverShutdown."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import websockets
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator

PACE = 0.25  # seconds between client messages: 4 per second stays under the 5/s limit


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with run_simulator(symbols=["BTCUSDT", "ETHUSDT"], trades_per_day=2_000_000) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _reset(sim: SimulatorHandle) -> None:
    sim.reset()


async def ask(ws: Any, request: Any) -> dict[str, Any]:
    """Send a control message (raw text if a str) and return the reply, skipping stream data."""
    await ws.send(request if isinstance(request, str) else json.dumps(request))
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if "result" in message or "error" in message:
            await asyncio.sleep(PACE)
            return message  # type: ignore[no-any-return]


def test_subscribe_unsubscribe_list_and_properties(sim: SimulatorHandle) -> None:
    async def run() -> None:
        async with websockets.connect(sim.ws_url("/ws"), ping_interval=None) as ws:
            subscribe = {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "ethusdt@trade"], "id": 1}
            assert await ask(ws, subscribe) == {"result": None, "id": 1}
            listed = await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": "list2"})
            assert listed == {"result": ["btcusdt@aggTrade", "ethusdt@trade"], "id": "list2"}
            assert await ask(ws, {"method": "UNSUBSCRIBE", "params": ["ethusdt@trade"], "id": None}) == {"result": None, "id": None}  # fmt: skip
            assert (await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": -7}))["result"] == [
                "btcusdt@aggTrade"
            ]
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert message["e"] == "aggTrade"  # /ws: raw payloads
            assert await ask(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 5}) == {"result": False, "id": 5}  # fmt: skip
            assert await ask(ws, {"method": "SET_PROPERTY", "params": ["combined", True], "id": 6}) == {"result": None, "id": 6}  # fmt: skip
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert message["stream"] == "btcusdt@aggTrade" and message["data"]["e"] == "aggTrade"

    asyncio.run(run())


def test_control_errors_have_binance_shapes(sim: SimulatorHandle) -> None:
    unknown = (
        "Invalid request: unknown variant `SUBSCRIB`, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, "
        "`LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` at line 1 column 21"
    )
    cases: list[tuple[Any, dict[str, Any]]] = [
        (
            "{not json",
            {"error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 2"}, "id": None},
        ),
        ({"method": "SUBSCRIB", "params": [], "id": 4}, {"error": {"code": 2, "msg": unknown}, "id": 4}),
        (
            {"params": [], "id": 5},
            {
                "error": {"code": 2, "msg": "Invalid request: missing field `method` at line 1 column 23"},
                "id": 5,
            },
        ),  # fmt: skip
        (
            {"method": "LIST_SUBSCRIPTIONS", "id": 1.5},
            {
                "error": {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"},
                "id": None,
            },
        ),  # fmt: skip
        (
            {"method": "LIST_SUBSCRIPTIONS", "id": "has-dash"},
            {
                "error": {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"},
                "id": None,
            },
        ),  # fmt: skip
        (
            {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "btcusdt@nope"], "id": 7},
            {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 7},
        ),  # fmt: skip
        (
            {"method": "SUBSCRIBE", "params": "btcusdt@aggTrade", "id": 8},
            {"error": {"code": 2, "msg": "Invalid request: params must be a list of stream names"}, "id": 8},
        ),  # fmt: skip
        (
            {"method": "SET_PROPERTY", "params": ["compressed", True], "id": 9},
            {"error": {"code": 0, "msg": "Unknown property"}, "id": 9},
        ),  # fmt: skip
        (
            {"method": "SET_PROPERTY", "params": ["combined", 1], "id": 10},
            {"error": {"code": 1, "msg": "Invalid value type: expected Boolean"}, "id": 10},
        ),  # fmt: skip
        (
            {"method": "GET_PROPERTY", "params": [3], "id": 11},
            {"error": {"code": 2, "msg": "Invalid request: property name must be a string"}, "id": 11},
        ),  # fmt: skip
        (
            {"method": "LIST_SUBSCRIPTIONS", "params": ["x"], "id": 12},
            {"error": {"code": 2, "msg": "Invalid request: too many parameters"}, "id": 12},
        ),  # fmt: skip
    ]

    async def run() -> None:
        async with websockets.connect(sim.ws_url("/ws"), ping_interval=None) as ws:
            for request, expected in cases:
                assert await ask(ws, request) == expected, request
            assert (await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 13}))[
                "result"
            ] == []  # nothing half-done

    asyncio.run(run())


async def closed_by_server(ws: Any) -> tuple[int | None, str | None]:
    """Read until the server closes; (close code, reason) it sent, (None, None) without a close frame."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    received = closed.value.rcvd
    return (received.code, received.reason) if received else (None, None)


@pytest.mark.parametrize("kind", ["control", "ping", "pong"])
def test_more_than_five_incoming_messages_per_second_disconnect(sim: SimulatorHandle, kind: str) -> None:
    async def run() -> None:
        async with websockets.connect(sim.ws_url("/ws"), ping_interval=None) as ws:
            for i in range(5):  # five in a second are fine, also again a second later
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
            for _ in range(5):
                assert "result" in json.loads(await ws.recv())
            await asyncio.sleep(1.05)
            for i in range(6):
                if kind == "control":
                    await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
                elif kind == "ping":
                    await ws.ping(str(i))
                else:
                    await ws.pong(str(i))
            assert await closed_by_server(ws) == (1008, "Too many requests")

    asyncio.run(run())
    assert sim.ws_stats()["closed"] == {"rate_limit": 1}


def test_at_most_1024_streams_per_connection(sim: SimulatorHandle) -> None:
    names = [f"s{i}usdt@aggTrade" for i in range(1025)]

    async def run() -> None:
        async with websockets.connect(sim.ws_url("/ws"), ping_interval=None, max_size=2**22) as ws:
            refused = await ask(ws, {"method": "SUBSCRIBE", "params": names, "id": 1})
            assert refused["error"]["code"] == 2 and "too many streams" in refused["error"]["msg"]
            assert await ask(ws, {"method": "SUBSCRIBE", "params": names[:1024], "id": 2}) == {
                "result": None,
                "id": 2,
            }
            assert len((await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3}))["result"]) == 1024
            assert "error" in await ask(ws, {"method": "SUBSCRIBE", "params": names[1024:], "id": 4})
            assert await ask(ws, {"method": "SUBSCRIBE", "params": names[:3], "id": 5}) == {
                "result": None,
                "id": 5,
            }
        async with websockets.connect(
            sim.ws_url("/stream?streams=" + "/".join(names[:400])), ping_interval=None
        ):
            pass
        with pytest.raises(InvalidStatus) as too_long:  # a request line over 8 KiB
            async with websockets.connect(
                sim.ws_url("/stream?streams=" + "/".join(names[:600])), ping_interval=None
            ):
                pass
        assert too_long.value.response.status_code == 414

    asyncio.run(run())


class RawClient:
    """A WebSocket client over a plain socket that answers pings only when told to (websockets' sans-I/O)."""

    def __init__(self, url: str, answer_pings: bool) -> None:
        self.url = url
        self.answer_pings = answer_pings
        self.protocol = ClientProtocol(parse_uri(url))
        self.frames: list[tuple[float, Frame]] = []
        self.closed_at: float | None = None

    async def run(self, seconds: float) -> None:
        """Read for `seconds` or until the server closes; frames are kept with their arrival time."""
        parts = urlsplit(self.url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        self.protocol.send_request(self.protocol.connect())
        writer.write(b"".join(self.protocol.data_to_send()))
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                try:
                    data = await asyncio.wait_for(reader.read(65536), deadline - time.monotonic())
                except TimeoutError:
                    break
                if data:
                    self.protocol.receive_data(data)
                else:
                    self.protocol.receive_eof()
                frames = [e for e in self.protocol.events_received() if isinstance(e, Frame)]
                self.frames += [(time.monotonic(), f) for f in frames]
                out = b"".join(self.protocol.data_to_send())  # holds the pongs websockets queued
                if out and (self.answer_pings or not any(f.opcode == Opcode.PING for f in frames)):
                    writer.write(out)
                if not data:
                    self.closed_at = time.monotonic()
                    break
        finally:
            writer.close()

    def of(self, opcode: Opcode) -> list[tuple[float, Frame]]:
        return [(t, f) for t, f in self.frames if f.opcode == opcode]


def test_server_pings_every_interval_and_closes_without_pong(sim: SimulatorHandle) -> None:
    sim.ws_settings(ping_interval=0.4, pong_timeout=1.0)
    answering = RawClient(sim.ws_url("/ws/btcusdt@kline_1m"), answer_pings=True)
    silent = RawClient(sim.ws_url("/ws/btcusdt@kline_1m"), answer_pings=False)
    started = time.monotonic()

    async def both() -> None:
        await asyncio.gather(answering.run(2.3), silent.run(2.3))

    asyncio.run(both())
    pings = [t for t, _ in answering.of(Opcode.PING)]
    assert len(pings) == 5 and answering.closed_at is None  # 0.4, 0.8, ... 2.0 s; pongs keep it open
    assert all(0.3 < b - a < 0.5 for a, b in zip(pings, pings[1:], strict=False))
    payloads = [bytes(f.data) for _, f in answering.of(Opcode.PING)]
    assert all(p.isdigit() for p in payloads) and len(set(payloads)) == 5
    closes = silent.of(Opcode.CLOSE)
    assert len(closes) == 1 and closes[0][1].data[2:] == b"Pong timeout"
    assert int.from_bytes(closes[0][1].data[:2], "big") == 1008
    assert 1.3 < closes[0][0] - started < 1.7  # first ping at 0.4 s + 1.0 s pong timeout
    stats = sim.ws_stats()
    assert stats["closed"]["pong_timeout"] == 1 and stats["incoming"]["pong"] >= 4


def test_lifetime_ends_with_server_shutdown_then_close_1001(sim: SimulatorHandle) -> None:
    sim.ws_settings(lifetime_seconds=1.5, shutdown_notice_seconds=0.8)

    async def run(path: str) -> tuple[list[tuple[float, Any]], tuple[int | None, str | None]]:
        events = []
        async with websockets.connect(sim.ws_url(path), ping_interval=None) as ws:
            started = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    events.append((time.monotonic() - started, message))
            assert 1.4 < time.monotonic() - started < 1.8
            received = closed.value.rcvd
            return events, (received.code, received.reason) if received else (None, None)

    events, close = asyncio.run(run("/stream?streams=ethusdt@kline_1m"))
    shutdowns = [(t, e) for t, e in events if e["stream"] == "!serverShutdown"]
    assert len(shutdowns) == 1 and 0.6 < shutdowns[0][0] < 0.9
    assert set(shutdowns[0][1]["data"]) == {"e", "E"} and shutdowns[0][1]["data"]["e"] == "serverShutdown"
    assert abs(shutdowns[0][1]["data"]["E"] - time.time() * 1000) < 10_000
    assert close == (1001, "Connection lifetime expired")
    events, close = asyncio.run(run("/ws/ethusdt@kline_1m?timeUnit=MICROSECOND"))
    shutdown = [e for _, e in events if e.get("e") == "serverShutdown"]
    assert len(shutdown) == 1 and shutdown[0]["E"] > 10**15 and close == (1001, "Connection lifetime expired")
    assert sim.ws_stats()["closed"] == {"lifetime": 2}


def test_server_shutdown_on_demand(sim: SimulatorHandle) -> None:
    async def run() -> None:
        async with websockets.connect(sim.ws_url("/ws"), ping_interval=None) as ws:
            await asyncio.sleep(0.2)
            assert len(await asyncio.to_thread(sim.ws_shutdown, 0.3)) == 1
            event = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert event["e"] == "serverShutdown" and set(event) == {"e", "E"}
            assert await closed_by_server(ws) == (1001, "Server shutdown")

    asyncio.run(run())
    assert sim.ws_stats()["server_shutdown_sent"] == 1
