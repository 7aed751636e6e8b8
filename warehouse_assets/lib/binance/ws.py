"""Binance spot market streams over WebSocket, transport only: raw frames in batches, never parsed.

`BinanceStreamClient(streams).frames()` yields `FrameBatch`es: the payloads of one connection's messages
as `bytes`, exactly as the server sent them and in arrival order. ClickHouse parses them later in bulk
(reference/clickhouse.md §2a), so the per-message work here is a list append and two prefix checks.

Connections. The streams are split into combined-stream URLs (`/stream?streams=a/b/c`) of at most
`max_streams_per_connection` (Binance: 1024) streams and `max_url_length` characters: Binance documents
no URL limit, but longer URLs were measured to fail above 8004 characters (unicorn-binance-websocket-api
issues #17 and #19), so the default 8000 holds about 450 `<symbol>@aggTrade` streams. Every URL gets its
own connection; all of them are merged into one output. No control message (SUBSCRIBE, ...) is ever
sent, so Binance's limit of 5 incoming messages per second is never approached (our only messages are
the pongs that answer its pings every 20 s; the `websockets` protocol sends them while reading).

Rotation contract (no gap, duplicates possible). Before `lifetime` (default 23.5 h; Binance cuts at 24 h)
and immediately after a `serverShutdown` event, a replacement connection to the same URL is opened
first; both are read, both feed the output, and the old one is closed (gracefully) only once the new
one has delivered its first data frame. Frames of the overlap may therefore arrive twice, from two
connection ids; none is lost. The consumer deduplicates (by trade id). This relies on Binance activating
every stream of a combined URL when the connection opens, so one data frame proves all are live.

Liveness and reconnects. A connection that delivers no data frame for `silence_timeout` seconds is
dead (also without a close frame): it is aborted and reopened. Every failed attempt and every
connection that ends before it was healthy (delivering data for `healthy_after` seconds) waits
`retry.Backoff` (capped, jittered, exponential; never below 0.1 s) before the next attempt; a healthy
connection resets the backoff. A 429/418 handshake answer also waits its Retry-After. Each reconnect is
logged with its reason and counted in `stats()`. A handshake refused with another 4xx raises
`StreamRejectedError`; a URL that cannot be connected for `give_up_after` seconds raises
`StreamUnavailableError`.

Back-pressure. A connection stops reading from its socket while `max_buffered_frames` of its frames
wait for the consumer, and resumes when they are taken (silence is not counted while paused). A
consumer that stays behind for over a minute misses Binance's pings and is disconnected by it.

Shutdown. `aclose()` (or leaving `async with`, or the end or cancellation of `frames()`) closes every
connection; whatever does not finish the closing handshake within 2 s is aborted.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections import Counter, deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException
from websockets.frames import Frame, Opcode
from websockets.protocol import Event
from websockets.uri import parse_uri

from warehouse_assets.lib import settings
from warehouse_assets.lib.errors import StreamRejectedError, StreamUnavailableError
from warehouse_assets.lib.retry import Backoff

log = logging.getLogger(__name__)

MAX_STREAMS_PER_CONNECTION = 1024  # binance-spot-api-docs web-socket-streams.md
MAX_URL_LENGTH = 8000  # measured failures above 8004 characters (see the module docstring)
CONNECTION_LIFETIME = 86_400.0  # Binance closes every connection after 24 h
DEFAULT_LIFETIME = 23.5 * 3600.0
DEFAULT_BACKOFF = Backoff(base=0.5, cap=30.0)

MIN_RETRY_DELAY = 0.1  # full jitter may draw ~0 s: never retry in a tight loop
CLOSE_TIMEOUT = 2.0  # seconds for a closing handshake before the TCP connection is aborted
# Handshake statuses worth retrying: server errors, timeouts and rate limits (429, 418 with Retry-After).
RETRYABLE_STATUSES = frozenset({408, 418, 429})
_STATUS_HINTS = {
    400: "the URL or a stream name is malformed; check the stream names (lowercase symbols)",
    403: "the request was blocked by Binance's web application firewall; check the client's IP and headers",
    404: "the path does not exist on this host; check BINANCE_WS_URL (e.g. wss://stream.binance.com:9443)",
    414: "the combined-stream URL is too long for this host; lower max_url_length",
    451: "Binance does not serve this location; use an endpoint allowed from here (BINANCE_WS_URL)",
}

# Every data frame of a combined stream starts with this envelope; `!` names are all-market streams and
# `!serverShutdown`, checked on the slow path.
_ENVELOPE = b'{"stream":"'
_NAME_AT = len(_ENVELOPE)
_PEEK = 64  # bytes of an unusual frame inspected to classify it
_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_FORBIDDEN_IN_STREAM = frozenset("/?&#% \t\r\n")


@dataclass(frozen=True, slots=True)
class FrameBatch:
    """Consecutive data frames of one connection, oldest first, each exactly as received.

    `received_ns` is `time.time_ns()` at the socket read that delivered the batch's first frame; later
    frames of the batch arrived after it and before the batch was yielded.
    """

    connection_id: int
    received_ns: int
    frames: list[bytes]


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    connection_id: int
    url_index: int  # which combined URL (group of streams) the connection serves
    streams: int
    opened_ns: int  # time.time_ns() when the handshake completed
    frames: int
    last_frame_ns: int | None  # time.time_ns() of the socket read that brought its latest data frame


@dataclass(frozen=True, slots=True)
class StreamStats:
    frames: int  # data frames received (yielded or waiting to be)
    reconnects: dict[str, int]  # by reason: "dropped", "silence", "closed:<close code>"
    rotations: dict[str, int]  # by reason: "lifetime", "server_shutdown"
    connect_failures: int  # attempts that did not get a connection (refused, HTTP error, timeout, ...)
    server_shutdowns: int  # serverShutdown events seen (not yielded)
    control_frames: int  # control replies ({"result": ..} / {"error": ..}) seen (not yielded)
    connections: int  # connections open now
    per_connection: tuple[ConnectionStats, ...]


@dataclass(frozen=True, slots=True)
class _Group:
    """The streams of one combined URL."""

    index: int
    streams: tuple[str, ...]
    url: str

    @property
    def label(self) -> str:
        return describe_url(self.url, len(self.streams))


class BinanceStreamClient:
    """Raw frames of Binance spot market streams. Use `async with BinanceStreamClient(streams) as client:
    async for batch in client.frames(): ...` in one event loop; `frames()` can be iterated once."""

    def __init__(
        self,
        streams: Sequence[str],
        *,
        base_url: str | None = None,
        micros: bool = True,
        silence_timeout: float = 10.0,
        lifetime: float = DEFAULT_LIFETIME,
        backoff: Backoff = DEFAULT_BACKOFF,
        max_streams_per_connection: int = MAX_STREAMS_PER_CONNECTION,
        max_url_length: int = MAX_URL_LENGTH,
        open_timeout: float = 10.0,
        healthy_after: float = 60.0,
        give_up_after: float | None = 600.0,
        max_buffered_frames: int = 100_000,
        max_message_bytes: int = 2**20,
    ) -> None:
        if silence_timeout <= 0 or open_timeout <= 0 or healthy_after < 0:
            raise ValueError("silence_timeout and open_timeout must be positive, healthy_after not negative")
        if not 0 < lifetime < CONNECTION_LIFETIME:
            raise ValueError(
                f"lifetime must be positive and below Binance's 24 h connection limit, got {lifetime} s"
            )
        if give_up_after is not None and give_up_after <= 0:
            raise ValueError(f"give_up_after must be positive or None, got {give_up_after}")
        if not 1 <= max_streams_per_connection <= MAX_STREAMS_PER_CONNECTION:
            raise ValueError(
                f"max_streams_per_connection must be in 1..{MAX_STREAMS_PER_CONNECTION}, "
                f"got {max_streams_per_connection}"
            )
        if max_buffered_frames < 1:
            raise ValueError(f"max_buffered_frames must be at least 1, got {max_buffered_frames}")
        self.base_url = (base_url or settings.binance_ws_url()).rstrip("/")
        self.micros = micros
        self.silence_timeout = silence_timeout
        self.lifetime = lifetime
        self.backoff = backoff
        self.open_timeout = open_timeout
        self.healthy_after = healthy_after
        self.give_up_after = give_up_after
        self.max_buffered_frames = max_buffered_frames
        self.max_message_bytes = max_message_bytes
        urls = plan_urls(
            streams,
            base_url=self.base_url,
            micros=micros,
            max_streams_per_connection=max_streams_per_connection,
            max_url_length=max_url_length,
        )
        self.groups = tuple(_Group(index, tuple(names), url) for index, (url, names) in enumerate(urls))

        self._ready: deque[_Link] = deque()  # links with a non-empty batch, in arrival order
        self._waiter: asyncio.Future[None] | None = None
        self._links: set[_Link] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._closers: set[asyncio.Task[None]] = set()
        self._closing: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._started = False
        self._closed = False
        self._ids = itertools.count(1)
        # Counters for stats().
        self._frames_received = 0
        self._reconnects: Counter[str] = Counter()
        self._rotations: Counter[str] = Counter()
        self._connect_failures = 0
        self._server_shutdowns = 0
        self._control_frames = 0

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(group.url for group in self.groups)

    async def __aenter__(self) -> BinanceStreamClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def frames(self) -> AsyncGenerator[FrameBatch, None]:
        """Batches of raw frames from every connection, merged; runs until closed or cancelled.

        Each batch is what one connection received since its previous batch was taken (no await per
        message). Raises `StreamRejectedError` / `StreamUnavailableError` when a URL cannot be served.
        Ending or cancelling the iteration closes the client.
        """
        if self._started or self._closed:
            raise RuntimeError("BinanceStreamClient.frames() can be iterated once; make a new client")
        self._started = True
        loop = asyncio.get_running_loop()
        for group in self.groups:
            task = loop.create_task(_GroupRunner(self, group).run(), name=f"binance-ws-{group.index}")
            task.add_done_callback(self._runner_done)
            self._tasks.append(task)
        ready = self._ready
        try:
            while True:
                if not ready:
                    if self._failure is not None:
                        raise self._failure
                    if self._closed:
                        return
                    waiter = loop.create_future()
                    self._waiter = waiter
                    try:
                        await waiter
                    finally:
                        self._waiter = None
                    continue
                link = ready.popleft()
                received_ns = link._batch_ns
                yield FrameBatch(link.connection_id, received_ns, link._take())
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close every connection (closing handshake, aborted after 2 s). Idempotent; every caller
        waits for the same close, which finishes even if a caller is cancelled."""
        if self._closing is None:
            self._closed = True
            self._wake()
            self._closing = asyncio.get_running_loop().create_task(self._shutdown())
        await asyncio.shield(self._closing)

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        try:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            links = list(self._links)
            for link in links:
                link._condemn("closed by the client")
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await asyncio.gather(*(link.close() for link in links), return_exceptions=True)
            except TimeoutError:
                pass  # the finally below aborts what is left
        finally:
            for link in list(self._links):
                link.transport.abort()
            for closer in list(self._closers):
                closer.cancel()

    def stats(self) -> StreamStats:
        open_links = sorted(
            (link for link in self._links if link._opened_ns and not link._ended),
            key=lambda link: link.connection_id,
        )
        return StreamStats(
            frames=self._frames_received,
            reconnects=dict(self._reconnects),
            rotations=dict(self._rotations),
            connect_failures=self._connect_failures,
            server_shutdowns=self._server_shutdowns,
            control_frames=self._control_frames,
            connections=len(open_links),
            per_connection=tuple(
                ConnectionStats(
                    connection_id=link.connection_id,
                    url_index=link._runner.group.index,
                    streams=len(link._runner.group.streams),
                    opened_ns=link._opened_ns,
                    frames=link._frames_received,
                    last_frame_ns=link._last_frame_ns,
                )
                for link in open_links
            ),
        )

    # ------------------------------------------------------------------------------ internals

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _runner_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self._failure is None:
            self._failure = exc
            self._wake()

    def _spawn_close(self, link: _Link) -> None:
        closer = asyncio.get_running_loop().create_task(link.close())
        self._closers.add(closer)
        closer.add_done_callback(self._closers.discard)

    async def _open(self, runner: _GroupRunner) -> _Link:
        def factory(protocol: ClientProtocol, **kwargs: Any) -> _Link:
            return _Link(protocol, runner=runner, **kwargs)

        connection = await connect(
            runner.group.url,
            create_connection=cast(type[ClientConnection], factory),
            open_timeout=self.open_timeout,
            close_timeout=CLOSE_TIMEOUT,
            # Binance pings every 20 s and the protocol answers; liveness is the silence watchdog's job.
            ping_interval=None,
            compression=None,  # CPU over bandwidth: market data is small per message
            max_size=self.max_message_bytes,
            max_queue=None,  # the library's queue is bypassed (see _Link); our batch limit applies
        )
        return cast(_Link, connection)


class _Link(ClientConnection):
    """One WebSocket connection whose data messages go straight into a batch for the consumer.

    Overriding `process_event` (the hook `websockets` itself overrides for the handshake) skips the
    library's per-message queue and its one-await-per-`recv()`; control frames still go to the library.
    """

    def __init__(self, protocol: ClientProtocol, *, runner: _GroupRunner, **kwargs: Any) -> None:
        super().__init__(protocol, **kwargs)
        self._runner = runner
        self._client = runner.client
        self.connection_id = next(self._client._ids)
        self._batch: list[bytes] = []
        self._batch_ns = 0
        self._read_ns = 0
        self._fragments: list[bytes] | None = None
        self._frames_received = 0
        self._last_frame_ns: int | None = None
        self._last_frame_mono = time.monotonic()
        self._opened_ns = 0
        self._opened_mono = 0.0
        self._has_frame = False
        self._shutdown_notice = False
        self._paused_for_consumer = False
        self._ended = False  # the TCP connection is gone
        self._doomed = False  # ended, or being closed on purpose (silence, rotation, client close)
        self._end_reason = ""  # a stats key: dropped, silence, closed:<code>, ...
        self._end_detail = ""
        self._client._links.add(self)

    # asyncio calls this for every socket read; the protocol turns the bytes into frames (process_event).
    def data_received(self, data: bytes) -> None:
        self._read_ns = time.time_ns()
        before = len(self._batch)
        super().data_received(data)
        received = len(self._batch) - before  # only the consumer swaps the batch, never during this call
        if received:
            self._frames_received += received
            self._client._frames_received += received
            self._last_frame_ns = self._read_ns
            self._last_frame_mono = time.monotonic()
            if before + received >= self._client.max_buffered_frames and not self._paused_for_consumer:
                self._paused_for_consumer = True
                self.transport.pause_reading()

    def process_event(self, event: Event) -> None:
        if type(event) is Frame:
            opcode = event.opcode
            if event.fin and (opcode is _TEXT or opcode is _BINARY):
                data = bytes(event.data)
                # Cheap prefix checks before anything else: a data frame starts with the envelope.
                if data.startswith(_ENVELOPE) and not data.startswith(b"!", _NAME_AT):
                    batch = self._batch
                    if not batch:
                        self._start_batch()
                    batch.append(data)
                else:
                    self._unusual_message(data)
                return
            if opcode is _TEXT or opcode is _BINARY or opcode is _CONT:
                self._fragment(event)
                return
        super().process_event(event)  # the handshake response, pings, pongs, close frames

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._ended = True
        if not self._doomed:
            self._doomed = True
            close = self.protocol.close_rcvd
            if close is not None:
                self._end_reason = f"closed:{close.code}"
                self._end_detail = f"the server closed it ({close})"
            else:
                self._end_reason = "dropped"
                cause = f": {type(exc).__name__}: {exc}" if exc is not None else ""
                self._end_detail = f"the TCP connection dropped without a close frame{cause}"
        self._client._links.discard(self)
        self._runner.changed.set()

    # ---------------------------------------------------------------------------- slow paths

    def _start_batch(self) -> None:
        self._batch_ns = self._read_ns
        self._client._ready.append(self)
        self._client._wake()
        if not self._has_frame:
            self._has_frame = True
            self._runner.changed.set()

    def _append(self, data: bytes) -> None:
        if not self._batch:
            self._start_batch()
        self._batch.append(data)

    def _fragment(self, frame: Frame) -> None:
        """A fragmented message (Binance sends none; the protocol already checked the sequence)."""
        if frame.opcode is not _CONT:
            self._fragments = [bytes(frame.data)]
            return
        if self._fragments is None:
            return
        self._fragments.append(bytes(frame.data))
        if frame.fin:
            data = b"".join(self._fragments)
            self._fragments = None
            if data.startswith(_ENVELOPE) and not data.startswith(b"!", _NAME_AT):
                self._append(data)
            else:
                self._unusual_message(data)

    def _unusual_message(self, data: bytes) -> None:
        """serverShutdown and control replies are consumed here; anything else is data (yielded)."""
        head = data[:_PEEK]
        if b'"serverShutdown"' in head or b'"!serverShutdown"' in head:
            self._client._server_shutdowns += 1
            if not self._shutdown_notice:
                self._shutdown_notice = True
                log.info(
                    "Binance stream connection %d (%s) announced serverShutdown; rotating to a new "
                    "connection",
                    self.connection_id,
                    self._runner.group.label,
                )
                self._runner.changed.set()
            return
        if not data.startswith(_ENVELOPE) and b'"id"' in data and (b'"result"' in data or b'"error"' in data):
            self._client._control_frames += 1
            if b'"error"' in data:
                log.warning(
                    "Binance stream connection %d (%s) answered an error: %s",
                    self.connection_id,
                    self._runner.group.label,
                    data[:300].decode("utf-8", "replace"),
                )
            return
        self._append(data)  # all-market `!` streams, or a shape we do not know: the flusher decides

    def _take(self) -> list[bytes]:
        batch = self._batch
        self._batch = []
        if self._paused_for_consumer:
            self._paused_for_consumer = False
            self._last_frame_mono = time.monotonic()  # the pause held frames back, not the server
            if not self.transport.is_closing():
                self.transport.resume_reading()
            self._runner.changed.set()  # the silence watchdog applies again
        return batch

    def _silent_since(self, now: float) -> float | None:
        """Seconds without a data frame, or None while reading is paused for the consumer."""
        return None if self._paused_for_consumer else now - self._last_frame_mono

    def _condemn(self, reason: str) -> None:
        """Mark the link as being closed on purpose, so its end is not taken for a failure."""
        if not self._doomed:
            self._doomed = True
            self._end_reason = reason
            self._end_detail = reason
        if self._paused_for_consumer:  # the closing handshake needs reading
            self._paused_for_consumer = False
            if not self.transport.is_closing():
                self.transport.resume_reading()


class _GroupRunner:
    """Keeps one combined URL connected: opens, watches, rotates and reconnects its connections."""

    def __init__(self, client: BinanceStreamClient, group: _Group) -> None:
        self.client = client
        self.group = group
        self.changed = asyncio.Event()  # set by the links: first frame, end, serverShutdown, unpause
        self.active: _Link | None = None
        self.incoming: _Link | None = None  # a replacement waiting for its first data frame
        self.rotation_reason: str | None = None
        self.attempt = 0  # index into the backoff sequence
        self.next_attempt_at = 0.0
        self.down_since: float | None = time.monotonic()  # no active connection since
        self.failed_attempts = 0  # since the last connection was opened

    async def run(self) -> None:
        while True:
            now = time.monotonic()
            self._check_links(now)
            wanted = self.incoming is None and (self.active is None or self.rotation_reason is not None)
            if wanted and now >= self.next_attempt_at:
                await self._connect()
                continue
            wake_at = self._wake_at(wanted)
            self.changed.clear()
            try:
                async with asyncio.timeout(None if wake_at is None else max(0.0, wake_at - now)):
                    await self.changed.wait()
            except TimeoutError:
                pass

    def _check_links(self, now: float) -> None:
        client = self.client
        active = self.active
        if active is not None:
            silent = active._silent_since(now)
            if not active._doomed and silent is not None and silent >= client.silence_timeout:
                active._condemn("silence")
                active._end_detail = f"no data frame for {silent:.1f} s"
                active.transport.abort()  # a silent peer would not answer a closing handshake
            if active._doomed:
                self.active = None
                self._lost(active, now)
        incoming = self.incoming
        if incoming is not None:
            silent = incoming._silent_since(now)
            if not incoming._doomed and silent is not None and silent >= client.silence_timeout:
                incoming._condemn("silence")
                incoming.transport.abort()
                incoming._end_detail = f"no data frame for {silent:.1f} s"
            if incoming._doomed:
                self.incoming = None
                self._failed(now, f"replacement connection {incoming.connection_id}: {incoming._end_detail}")
            elif incoming._has_frame or self.active is None:
                self._promote(incoming)
        active = self.active
        if active is not None and self.rotation_reason is None:
            if active._shutdown_notice:
                self.rotation_reason = "server_shutdown"
            elif now >= active._opened_mono + client.lifetime:
                self.rotation_reason = "lifetime"
                log.info(
                    "Binance stream connection %d (%s) reached its %.0f s lifetime; rotating",
                    active.connection_id,
                    self.group.label,
                    client.lifetime,
                )
            if self.rotation_reason is not None:
                self.next_attempt_at = now  # the old connection still runs: no reason to wait

    def _wake_at(self, wanted: bool) -> float | None:
        times: list[float] = []
        for link in (self.active, self.incoming):
            if link is not None and not link._paused_for_consumer:
                times.append(link._last_frame_mono + self.client.silence_timeout)
        if self.active is not None and self.rotation_reason is None:
            times.append(self.active._opened_mono + self.client.lifetime)
        if wanted:
            times.append(self.next_attempt_at)
        return min(times) if times else None

    async def _connect(self) -> None:
        client = self.client
        try:
            link = await client._open(self)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if 400 <= status < 500 and status not in RETRYABLE_STATUSES:
                hint = _STATUS_HINTS.get(
                    status, "retrying will not help; check BINANCE_WS_URL and the streams"
                )
                raise StreamRejectedError(self.group.label, status, hint=hint) from exc
            self._failed(time.monotonic(), f"HTTP {status}", retry_after=_retry_after(exc))
            return
        except (OSError, TimeoutError, WebSocketException) as exc:
            self._failed(time.monotonic(), f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            return
        link._opened_mono = link._last_frame_mono = time.monotonic()
        link._opened_ns = time.time_ns()
        self.failed_attempts = 0
        if self.active is None:
            self._promote(link)
        else:
            self.incoming = link
            log.info(
                "Binance stream connection %d (%s) opened to replace connection %d (%s); reading both "
                "until it delivers a frame",
                link.connection_id,
                self.group.label,
                self.active.connection_id,
                self.rotation_reason,
            )

    def _promote(self, link: _Link) -> None:
        old = self.active
        self.active = link
        self.incoming = None
        self.down_since = None
        if old is not None:
            reason = self.rotation_reason or "replacement"
            self.client._rotations[reason] += 1
            old._condemn(f"rotated ({reason})")
            self.client._spawn_close(old)
            log.info(
                "Binance stream connection %d (%s) replaced connection %d (%s) after its first frame",
                link.connection_id,
                self.group.label,
                old.connection_id,
                reason,
            )
        else:
            log.info("Binance stream connection %d (%s) open", link.connection_id, self.group.label)
        self.rotation_reason = None

    def _lost(self, link: _Link, now: float) -> None:
        """The active connection ended without being replaced: count it and schedule the reconnect."""
        client = self.client
        client._reconnects[link._end_reason] += 1
        if link._last_frame_mono - link._opened_mono >= client.healthy_after:
            self.attempt = 0  # it was healthy: start the backoff over
        delay = self._next_delay()
        self.next_attempt_at = now + delay
        self.down_since = now
        self.rotation_reason = None
        if self.incoming is not None:
            log.warning(
                "Binance stream connection %d (%s) ended (%s) while its replacement %d was opening",
                link.connection_id,
                self.group.label,
                link._end_detail,
                self.incoming.connection_id,
            )
            return
        log.warning(
            "Binance stream connection %d (%s) ended: %s; reconnecting in %.2f s",
            link.connection_id,
            self.group.label,
            link._end_detail,
            delay,
        )

    def _failed(self, now: float, problem: str, retry_after: float | None = None) -> None:
        client = self.client
        client._connect_failures += 1
        self.failed_attempts += 1
        delay = max(self._next_delay(), retry_after or 0.0)
        self.next_attempt_at = now + delay
        down_for = now - self.down_since if self.down_since is not None else 0.0
        if self.active is None and client.give_up_after is not None and down_for >= client.give_up_after:
            raise StreamUnavailableError(
                self.group.label, seconds=down_for, attempts=self.failed_attempts, last_problem=problem
            )
        log.warning(
            "Binance stream %s: connecting failed (%s); attempt %d, next in %.2f s",
            self.group.label,
            problem,
            self.failed_attempts,
            delay,
        )

    def _next_delay(self) -> float:
        delay = max(MIN_RETRY_DELAY, self.client.backoff.delay(self.attempt))
        self.attempt += 1
        return delay


def plan_urls(
    streams: Sequence[str],
    *,
    base_url: str,
    micros: bool = True,
    max_streams_per_connection: int = MAX_STREAMS_PER_CONNECTION,
    max_url_length: int = MAX_URL_LENGTH,
) -> list[tuple[str, list[str]]]:
    """Combined-stream URLs covering `streams` (order kept, duplicates dropped), each with its streams.

    A URL holds at most `max_streams_per_connection` streams and `max_url_length` characters.
    """
    if isinstance(streams, str):
        raise TypeError("streams must be a sequence of stream names, not one string")
    names = list(dict.fromkeys(streams))
    if not names:
        raise ValueError("no streams given; name at least one, e.g. 'btcusdt@aggTrade'")
    for name in names:
        _check_stream_name(name)
    prefix = f"{base_url.rstrip('/')}/stream?streams="
    suffix = "&timeUnit=MICROSECOND" if micros else ""
    try:
        parse_uri(prefix + names[0] + suffix)
    except InvalidURI as exc:
        raise ValueError(f"{base_url!r} is not a ws:// or wss:// URL; check BINANCE_WS_URL") from exc
    fixed = len(prefix) + len(suffix)
    groups: list[list[str]] = []
    current: list[str] = []
    length = fixed
    for name in names:
        if fixed + len(name) > max_url_length:
            raise ValueError(f"stream {name!r} alone makes a URL longer than max_url_length={max_url_length}")
        extra = len(name) + (1 if current else 0)
        if current and (len(current) >= max_streams_per_connection or length + extra > max_url_length):
            groups.append(current)
            current, length, extra = [], fixed, len(name)
        current.append(name)
        length += extra
    groups.append(current)
    return [(prefix + "/".join(group) + suffix, group) for group in groups]


def describe_url(url: str, streams: int) -> str:
    """A URL short enough for a log line or an error message, with its stream count."""
    shown = url if len(url) <= 160 else url[:150] + "..."
    return f"{shown} ({streams} stream{'s' if streams != 1 else ''})"


def _check_stream_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"stream names must be non-empty strings, got {name!r}")
    bad = sorted(_FORBIDDEN_IN_STREAM.intersection(name))
    if bad:
        raise ValueError(f"stream {name!r} contains {bad}, which a combined-stream URL cannot carry")
    symbol = name.split("@", 1)[0]
    if not symbol.startswith("!") and symbol != symbol.lower():
        raise ValueError(
            f"stream {name!r}: Binance stream names use lowercase symbols; use "
            f"{symbol.lower() + name[len(symbol) :]!r}"
        )


def _retry_after(exc: InvalidStatus) -> float | None:
    raw = exc.response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
