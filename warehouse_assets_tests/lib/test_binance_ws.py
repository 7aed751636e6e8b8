"""BinanceStreamClient over real WebSockets on 127.0.0.1 against a small Binance-like server defined here:
frames as sent, >1024 streams, drops, stalls, refused handshakes, serverShutdown and lifetime rotation
without gaps, pings, back-pressure, cancellation and errors."""

from __future__ import annotations

import asyncio
import json
import pickle
import socket
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from warehouse_assets.lib.binance.ws import BinanceStreamClient, FrameBatch, plan_urls
from warehouse_assets.lib.errors import StreamRejectedError, StreamUnavailableError
from warehouse_assets.lib.retry import Backoff

T = TypeVar("T")
FIXED = Backoff(base=0.1, cap=0.1, jitter=0.0)  # every retry waits exactly 0.1 s (0.1 is also the floor)
SHUTDOWN = '{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}'


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


# ------------------------------------------------------------------------------------ the server


@dataclass
class Conn:
    """One accepted connection, as the server saw it."""

    ws: ServerConnection
    streams: list[str]
    query: dict[str, list[str]]
    opened_at: float
    closed_at: float | None = None
    client_closed_first: bool | None = None  # None: no closing handshake (TCP dropped or aborted)
    stalled: bool = False


@dataclass
class FakeBinance:
    """Combined streams on /stream?streams=a/b. With `tick`, a market numbers its messages: every tick
    `n` grows by one and `{"stream":s,"data":{"n":n}}` goes to every open connection for each of its
    streams, so a new connection continues from the current number. `script` frames are sent to each
    connection as it opens (a list is sent as one fragmented message). The first `refuse` handshakes are
    answered with HTTP `refuse_status`; `shutdown_after` sends serverShutdown that long after a
    connection opens and closes it (1001) `shutdown_grace` later unless the client did first. Like
    Binance setting up subscriptions, a connection gets market messages only `subscribe_delay` after it
    opens: a client that closed the old connection as soon as the new one opened would miss numbers."""

    tick: float | None = None
    script: Sequence[str | bytes | list[str]] = ()
    refuse: int = 0
    refuse_status: int = 503
    ping_interval: float | None = None
    ping_timeout: float | None = None
    shutdown_after: float | None = None
    shutdown_grace: float = 1.0
    subscribe_delay: float = 0.02
    conns: list[Conn] = field(default_factory=list)
    handshakes: list[float] = field(default_factory=list)
    n: int = 0
    _server: Server | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    def open_conns(self) -> list[Conn]:
        return [conn for conn in self.conns if conn.closed_at is None]

    async def __aenter__(self) -> FakeBinance:
        self._server = await serve(
            self._handler,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            compression=None,
        )
        if self.tick is not None:
            self._tasks.append(asyncio.create_task(self._market(self.tick)))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes.append(time.monotonic())
        if len(self.handshakes) <= self.refuse:
            return connection.respond(self.refuse_status, "busy\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        parts = urlsplit(ws.request.path)
        query = parse_qs(parts.query)
        assert parts.path == "/stream", parts.path
        conn = Conn(ws, query["streams"][0].split("/"), query, time.monotonic())
        self.conns.append(conn)
        if self.shutdown_after is not None:
            self._tasks.append(asyncio.create_task(self._announce_shutdown(conn)))
        try:
            for frame in self.script:
                await ws.send(frame)
            await ws.wait_closed()
        except ConnectionClosed:
            pass
        finally:
            conn.closed_at = time.monotonic()
            if ws.protocol.close_rcvd is not None:
                conn.client_closed_first = bool(ws.protocol.close_rcvd_then_sent)

    async def _market(self, tick: float) -> None:
        while True:
            await asyncio.sleep(tick)
            self.n += 1
            now = time.monotonic()
            for conn in self.open_conns():
                if conn.stalled or now - conn.opened_at < self.subscribe_delay:
                    continue
                try:
                    for stream in conn.streams:
                        await conn.ws.send(f'{{"stream":"{stream}","data":{{"n":{self.n}}}}}')
                except ConnectionClosed:
                    pass

    async def _announce_shutdown(self, conn: Conn) -> None:
        assert self.shutdown_after is not None
        await asyncio.sleep(self.shutdown_after)
        try:
            await conn.ws.send(SHUTDOWN)
            await asyncio.sleep(self.shutdown_grace)
            await conn.ws.close(1001, "server shutdown")
        except ConnectionClosed:
            pass


# ---------------------------------------------------------------------------------- the consumer


class Consumer:
    """Runs `client.frames()` in a task and keeps every batch."""

    def __init__(self, client: BinanceStreamClient) -> None:
        self.client = client
        self.batches: list[FrameBatch] = []
        self.task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        async for batch in self.client.frames():
            self.batches.append(batch)

    def frames(self) -> list[bytes]:
        return [frame for batch in self.batches for frame in batch.frames]

    def numbers(self) -> dict[str, set[int]]:
        """Market numbers seen per stream."""
        seen: dict[str, set[int]] = defaultdict(set)
        for frame in self.frames():
            message = json.loads(frame)
            seen[message["stream"]].add(message["data"]["n"])
        return seen

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


async def until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Wait until `condition()` holds; the time it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


def assert_no_gap(seen: dict[str, set[int]], streams: Iterable[str]) -> None:
    for stream in streams:
        numbers = seen[stream]
        assert numbers, f"no frame for {stream}"
        missing = set(range(min(numbers), max(numbers) + 1)) - numbers
        assert not missing, f"{stream}: numbers {sorted(missing)[:10]} never arrived"


async def with_client(
    server: FakeBinance,
    streams: Sequence[str],
    body: Callable[[Consumer, FakeBinance], Awaitable[None]],
    **options: Any,
) -> Consumer:
    """Run `body` while a consumer reads `streams` from `server`; the consumer (and its client) after."""
    options.setdefault("backoff", FIXED)
    async with BinanceStreamClient(streams, base_url=server.url, **options) as client:
        consumer = Consumer(client)
        try:
            await body(consumer, server)
        finally:
            if not consumer.task.done():
                await consumer.stop()
    return consumer


# ------------------------------------------------------------------------------------------ tests


def test_frames_arrive_exactly_as_sent_and_in_order() -> None:
    big = '{"stream":"btcusdt@depth","data":{"pad":"' + "x" * 70_000 + '"}}'
    script: list[str | bytes | list[str]] = [
        '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","a":1,"p":"0.001","q":"100"}}',
        '{"stream":"btcusdt@aggTrade","data":{"note":"caf\u00e9 \u20ac"}}',
        '{"result":null,"id":1}',  # a control reply: counted, not yielded
        '{"stream":"btcusdt@kline_1m","data":{"pad":"' + "y" * 200 + '"}}',  # 16-bit length
        big,  # 64-bit length
        ['{"stream":"btcusdt@aggTrade",', '"data":{"fragmented":true}}'],  # one message in two frames
        b'{"stream":"btcusdt@aggTrade","data":{"binary":true}}',
        '{"stream":"!miniTicker@arr","data":[{"s":"BTCUSDT"}]}',  # an all-market stream is data
    ]
    expected = [
        item.encode()
        if isinstance(item, str)
        else b"".join(p.encode() for p in item)
        if isinstance(item, list)
        else item
        for item in script
        if item != '{"result":null,"id":1}'
    ]

    async def body(consumer: Consumer, server: FakeBinance) -> None:
        await until(lambda: len(consumer.frames()) >= len(expected), 5, "every scripted frame")
        await asyncio.sleep(0.05)
        assert consumer.frames() == expected
        assert all(isinstance(frame, bytes) for frame in consumer.frames())
        assert {batch.connection_id for batch in consumer.batches} == {1}
        assert all(started_ns <= batch.received_ns <= time.time_ns() for batch in consumer.batches)

    async def main() -> None:
        async with FakeBinance(script=script) as server:
            consumer = await with_client(server, ["btcusdt@aggTrade", "btcusdt@kline_1m"], body)
            stats = consumer.client.stats()
            assert stats.frames == len(expected)
            assert stats.control_frames == 1
            assert server.conns[0].streams == ["btcusdt@aggTrade", "btcusdt@kline_1m"]
            assert server.conns[0].query["timeUnit"] == ["MICROSECOND"]

    started_ns = time.time_ns()
    run(main())


def test_more_than_1024_streams_use_two_connections_merged_into_one_output() -> None:
    streams = [f"s{i}@t" for i in range(1025)]  # short names: 1024 of them fit in one URL

    async def body(consumer: Consumer, server: FakeBinance) -> None:
        await until(lambda: len({b.connection_id for b in consumer.batches}) == 2, 5, "both connections")

    async def main() -> None:
        async with FakeBinance(tick=0.02) as server:
            consumer = await with_client(server, streams, body, max_url_length=8000)
            assert len(consumer.client.urls) == 2
            assert [conn.streams for conn in server.conns] == [streams[:1024], streams[1024:]]

    run(main())


def test_urls_are_split_by_length_and_names_are_checked() -> None:
    names = [f"{i:06d}usdt@aggTrade" for i in range(1000)]
    planned = plan_urls(names + names[:3], base_url="wss://stream.binance.com:9443")
    assert [name for _, group in planned for name in group] == names  # order kept, duplicates dropped
    assert all(len(url) <= 8000 for url, _ in planned)
    assert len(planned) == 3  # 1000 × 21 characters need three URLs of at most 8000
    assert planned[0][0].startswith("wss://stream.binance.com:9443/stream?streams=000000usdt@aggTrade/")
    assert planned[0][0].endswith("&timeUnit=MICROSECOND")
    with pytest.raises(ValueError, match="lowercase symbols; use 'btcusdt@aggTrade'"):
        plan_urls(["BTCUSDT@aggTrade"], base_url="wss://x")
    with pytest.raises(ValueError, match="longer than max_url_length=40"):
        plan_urls(["btcusdt@aggTrade"], base_url="wss://stream.binance.com", max_url_length=40)
    with pytest.raises(ValueError, match="not a ws:// or wss:// URL"):
        plan_urls(["btcusdt@aggTrade"], base_url="https://api.binance.com")
    with pytest.raises(ValueError, match="contains"):
        plan_urls(["btcusdt@aggTrade/ethusdt@aggTrade"], base_url="wss://x")
    with pytest.raises(ValueError, match="24 h"):
        BinanceStreamClient(["btcusdt@aggTrade"], base_url="wss://x", lifetime=86_400)


def test_tcp_drop_without_close_frame_reconnects_after_the_backoff() -> None:
    async def body(consumer: Consumer, server: FakeBinance) -> None:
        await until(lambda: bool(consumer.batches), 5, "first frames")
        dropped_at = time.monotonic()
        server.conns[0].ws.transport.abort()  # no close frame
        await until(lambda: len(server.conns) == 2, 5, "the reconnect")
        gap = server.conns[1].opened_at - dropped_at
        assert 0.09 <= gap < 1.0, gap  # the fixed 0.1 s backoff, plus the handshake
        await until(lambda: any(b.connection_id == 2 for b in consumer.batches), 5, "frames on the new one")

    async def main() -> None:
        async with FakeBinance(tick=0.01) as server:
            consumer = await with_client(server, ["btcusdt@aggTrade"], body)
            assert consumer.client.stats().reconnects == {"dropped": 1}

    run(main())


def test_a_silent_connection_is_closed_and_replaced_after_silence_timeout() -> None:
    async def body(consumer: Consumer, server: FakeBinance) -> None:
        await until(lambda: bool(consumer.batches), 5, "first frames")
        stalled_at = time.monotonic()
        server.conns[0].stalled = True  # TCP stays open, nothing is sent, not even a close frame
        await until(lambda: len(server.conns) == 2, 5, "the reconnect")
        gap = server.conns[1].opened_at - stalled_at
        assert 0.4 <= gap < 1.5, gap  # silence_timeout 0.4 s + 0.1 s backoff + handshake
        await until(lambda: server.conns[0].closed_at is not None, 2, "the silent one to be closed")
        assert server.conns[0].client_closed_first is None  # aborted: a silent peer gets no handshake

    async def main() -> None:
        async with FakeBinance(tick=0.01) as server:
            consumer = await with_client(server, ["btcusdt@aggTrade"], body, silence_timeout=0.4)
            assert consumer.client.stats().reconnects == {"silence": 1}

    run(main())


def test_backoff_grows_between_refused_connections() -> None:
    async def body(consumer: Consumer, server: FakeBinance) -> None:
        await until(lambda: bool(consumer.batches), 5, "frames after the refusals")

    async def main() -> None:
        async with FakeBinance(tick=0.01, refuse=4) as server:
            backoff = Backoff(base=0.1, cap=10.0, jitter=0.0)
            client = (await with_client(server, ["btcusdt@aggTrade"], body, backoff=backoff)).client
            gaps = [later - earlier for earlier, later in pairwise(server.handshakes)]
            assert len(gaps) == 4
            for gap, expected in zip(gaps, [0.1, 0.2, 0.4, 0.8], strict=True):
                assert expected * 0.9 <= gap < expected + 0.3, gaps
            assert gaps == sorted(gaps), gaps
            assert client.stats().connect_failures == 4
            assert client.stats().reconnects == {}

    run(main())


def assert_rotated_without_gap(server: FakeBinance, consumer: Consumer, streams: Sequence[str]) -> None:
    assert_no_gap(consumer.numbers(), streams)
    assert consumer.client.stats().reconnects == {}
    for old, new in pairwise(server.conns):
        assert old.closed_at is not None and new.opened_at < old.closed_at  # opened first: an overlap
        assert old.client_closed_first is True  # the client closed it, gracefully
    # Every connection delivered frames, and the consumer saw them all merged in one output.
    assert {batch.connection_id for batch in consumer.batches} == set(range(1, len(server.conns) + 1))


def test_server_shutdown_rotates_to_a_new_connection_without_a_gap() -> None:
    streams = ["btcusdt@aggTrade", "ethusdt@aggTrade"]

    async def body(consumer: Consumer, server: FakeBinance) -> None:
        await until(lambda: len(server.conns) >= 8, 10, "eight connections")
        # Settled: one connection open and a frame seen from every connection opened so far (the newest
        # may have opened an instant ago, before it could deliver anything).
        await until(
            lambda: (
                consumer.client.stats().connections == 1
                and {b.connection_id for b in consumer.batches} >= set(range(1, len(server.conns) + 1))
            ),
            2,
            "the last rotation to settle",
        )

    async def main() -> None:
        # Each connection is told to go 0.15 s after it opens; the server would close it 1 s later.
        async with FakeBinance(tick=0.003, shutdown_after=0.15) as server:
            consumer = await with_client(server, streams, body)
            assert_rotated_without_gap(server, consumer, streams)
            stats = consumer.client.stats()
            assert stats.rotations.get("server_shutdown", 0) >= 7
            assert stats.server_shutdowns >= 7
            assert not any(b"serverShutdown" in frame for frame in consumer.frames())

    run(main())


def test_lifetime_rotation_keeps_every_number_across_many_rotations() -> None:
    streams = ["btcusdt@aggTrade", "ethusdt@aggTrade", "bnbusdt@aggTrade"]

    async def body(consumer: Consumer, server: FakeBinance) -> None:
        await until(lambda: consumer.client.stats().rotations.get("lifetime", 0) >= 15, 10, "15 rotations")
        await until(lambda: consumer.client.stats().connections == 1, 2, "the last rotation to settle")

    async def main() -> None:
        async with FakeBinance(tick=0.002) as server:
            consumer = await with_client(server, streams, body, lifetime=0.1)
            assert_rotated_without_gap(server, consumer, streams)

    run(main())


def test_the_client_answers_server_pings_and_keeps_the_connection() -> None:
    async def body(consumer: Consumer, server: FakeBinance) -> None:
        await asyncio.sleep(1.0)  # 20 pings, each to be answered within 0.2 s
        assert server.conns[0].closed_at is None
        assert server.conns[0].ws.latency > 0  # the server received pongs

    async def main() -> None:
        async with FakeBinance(tick=0.01, ping_interval=0.05, ping_timeout=0.2) as server:
            consumer = await with_client(server, ["btcusdt@aggTrade"], body)
            assert len(server.conns) == 1
            assert consumer.client.stats().reconnects == {}

    run(main())


def test_a_slow_consumer_pauses_reading_and_is_not_taken_for_silence() -> None:
    async def main() -> None:
        async with FakeBinance(tick=0.002) as server:
            async with BinanceStreamClient(
                ["btcusdt@aggTrade"], base_url=server.url, silence_timeout=0.3, max_buffered_frames=20
            ) as client:
                frames = client.frames()
                first = await frames.__anext__()
                await asyncio.sleep(0.8)  # the consumer is busy for longer than silence_timeout
                batches = [first] + [await frames.__anext__() for _ in range(20)]
                await frames.aclose()
            numbers = [json.loads(frame)["data"]["n"] for batch in batches for frame in batch.frames]
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # nothing lost
            assert client.stats().reconnects == {}
            assert len(server.conns) == 1

    run(main())


def test_cancelling_the_consumer_closes_every_connection() -> None:
    streams = ["btcusdt@aggTrade", "ethusdt@aggTrade", "bnbusdt@aggTrade"]

    async def main() -> None:
        async with FakeBinance(tick=0.01) as server:
            client = BinanceStreamClient(streams, base_url=server.url, max_streams_per_connection=1)
            consumer = Consumer(client)
            await until(lambda: len({b.connection_id for b in consumer.batches}) == 3, 5, "three connections")
            assert client.stats().connections == 3
            await consumer.stop()
            assert client.stats().connections == 0
            await until(lambda: not server.open_conns(), 1, "the server to see every connection closed")
            assert all(conn.client_closed_first for conn in server.conns)  # closing handshakes

    run(main())


def test_a_refused_handshake_raises_an_error_naming_the_url_and_what_to_do() -> None:
    async def main() -> None:
        async with FakeBinance(refuse=1, refuse_status=404) as server:
            client = BinanceStreamClient(["btcusdt@aggTrade"], base_url=server.url)
            with pytest.raises(StreamRejectedError) as caught:
                async for _ in client.frames():
                    pass
            message = str(caught.value)
            assert f"{server.url}/stream?streams=btcusdt@aggTrade&timeUnit=MICROSECOND (1 stream)" in message
            assert "HTTP 404" in message and "BINANCE_WS_URL" in message
            assert str(pickle.loads(pickle.dumps(caught.value))) == message

    run(main())


def test_an_unreachable_host_raises_after_give_up_after() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def main() -> None:
        client = BinanceStreamClient(
            ["btcusdt@aggTrade"], base_url=f"ws://127.0.0.1:{port}", backoff=FIXED, give_up_after=0.5
        )
        started = time.monotonic()
        with pytest.raises(StreamUnavailableError) as caught:
            async for _ in client.frames():
                pass
        assert 0.5 <= time.monotonic() - started < 2.0
        message = str(caught.value)
        assert f"ws://127.0.0.1:{port}/stream?streams=btcusdt@aggTrade" in message
        assert "check network access" in message and "BINANCE_WS_URL" in message
        assert client.stats().connect_failures >= 4

    run(main())
