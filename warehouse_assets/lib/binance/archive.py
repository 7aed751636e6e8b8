"""Reader of data.binance.vision daily archives: download, verify against the published sha256, parse.

A file is only ever used after its `.CHECKSUM` matched: a missing CHECKSUM is as bad as a wrong one.
404 on either means "not published (yet)" (`ArchiveNotPublishedError`): the caller fetches that day
from REST instead. 5xx, timeouts and dropped connections are retried with `retry.Backoff`. Parsing is
`archive_format`'s job; this module adds the per-day checks (every row inside the requested UTC day)
and, for aggTrades, what the caller needs to decide with REST whether the day is complete.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
import pyarrow as pa
import pyarrow.compute as pc

from warehouse_assets.lib.binance.archive_format import read_agg_trades, read_klines
from warehouse_assets.lib.errors import (
    ArchiveChecksumError,
    ArchiveFormatError,
    ArchiveNotPublishedError,
    ArchiveUnavailableError,
    MalformedResponseError,
)
from warehouse_assets.lib.retry import Backoff

log = logging.getLogger(__name__)

DEFAULT_ARCHIVE_URL = "https://data.binance.vision"
_CHECKSUM_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *]?(\S+)\s*")  # sha256sum output: "<hex>  <name>"
_CHUNK = 1 << 16
T = TypeVar("T")


def binance_archive_url() -> str:
    """Base URL of the archive: env BINANCE_ARCHIVE_URL, default https://data.binance.vision."""
    return (os.environ.get("BINANCE_ARCHIVE_URL") or DEFAULT_ARCHIVE_URL).rstrip("/")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def parse_checksum(text: str, *, url: str) -> str:
    """The sha256 hex from a `.CHECKSUM` body (`<sha256>  <filename>`), checked to name `url`'s file."""
    expected_name = url.rsplit("/", 1)[-1]
    match = _CHECKSUM_LINE.fullmatch(text.strip())
    if match is None:
        raise MalformedResponseError(
            url + ".CHECKSUM", f"expected '<sha256>  <filename>', got {text[:200]!r}"
        )
    if match.group(2) != expected_name:
        raise MalformedResponseError(
            url + ".CHECKSUM", f"it is the checksum of {match.group(2)!r}, not of {expected_name!r}"
        )
    return match.group(1).lower()


def day_bounds_ms(day: date) -> tuple[int, int]:
    """[start, end) of a UTC day in epoch milliseconds."""
    start = int(datetime.combine(day, time(), UTC).timestamp()) * 1000
    return start, start + 86_400_000


def check_kline_day(table: pa.Table, day: date, file: str) -> None:
    """Every kline opens inside the UTC `day`, each open time once. Missing minutes are allowed."""
    if table.num_rows == 0:
        return
    start, end = day_bounds_ms(day)
    open_ms = table.column("open_time").cast(pa.int64())
    outside = pc.or_(pc.less(open_ms, start), pc.greater_equal(open_ms, end))
    if pc.any(outside).as_py():
        index = pc.index(outside, True).as_py()
        raise ArchiveFormatError(
            file, f"open_time {open_ms[index]} ms is outside {day.isoformat()} (UTC)", row=index + 1
        )
    if pc.count_distinct(open_ms).as_py() != table.num_rows:  # archive_format already rules this out
        raise ArchiveFormatError(file, "a kline open time appears more than once")


@dataclass(frozen=True, slots=True)
class AggTradesDay:
    """One day of aggregate trades from the archive, with what a completeness check needs.

    The ids are contiguous and every trade lies inside the day (checked). Whether the file covers the
    day to its end is not knowable from the file alone: compare `last_id` / `last_ts` with REST
    (the next aggregate id after `last_id` must be after the day). `first_ts` / `last_ts` keep µs
    when the file has them. All four are None for a file without trades.
    """

    symbol: str
    day: date
    table: pa.Table
    first_ts: datetime | None
    last_ts: datetime | None
    first_id: int | None
    last_id: int | None

    @property
    def uncovered_tail(self) -> timedelta | None:
        """Time from the last trade to the end of the day (a large value hints at a truncated file)."""
        if self.last_ts is None:
            return None
        return datetime.combine(self.day + timedelta(days=1), time(), UTC) - self.last_ts


def agg_trades_day(table: pa.Table, symbol: str, day: date, file: str) -> AggTradesDay:
    """Checks every trade lies inside the UTC `day` and summarises its first and last trade."""
    if table.num_rows == 0:
        return AggTradesDay(symbol, day, table, None, None, None, None)
    start_ms, end_ms = day_bounds_ms(day)
    ts_us = table.column("ts").cast(pa.int64())
    outside = pc.or_(pc.less(ts_us, start_ms * 1000), pc.greater_equal(ts_us, end_ms * 1000))
    if pc.any(outside).as_py():
        index = pc.index(outside, True).as_py()
        raise ArchiveFormatError(
            file, f"transact_time {ts_us[index]} µs is outside {day.isoformat()} (UTC)", row=index + 1
        )
    ids = table.column("trade_id")
    ts = table.column("ts")
    return AggTradesDay(
        symbol=symbol,
        day=day,
        table=table,
        first_ts=ts[0].as_py(),
        last_ts=ts[-1].as_py(),
        first_id=ids[0].as_py(),
        last_id=ids[-1].as_py(),
    )


class _Transient(Exception):
    """A failure worth retrying (5xx, timeout, dropped connection); `problem` says which."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class ArchiveClient:
    """data.binance.vision spot daily files. Use as `async with ArchiveClient() as archive:`.

    `cache_dir`: where verified zips are kept (mirroring the URL path) and reused when they still
    match the published checksum; None downloads each file to a temporary directory, deleted after
    parsing.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        cache_dir: Path | None = None,
        timeout_seconds: float = 30.0,
        max_attempts: int = 5,
        backoff: Backoff | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.base_url = (base_url or binance_archive_url()).rstrip("/")
        self.cache_dir = cache_dir
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        # Daily zips are up to a few hundred MB: the timeout bounds each read, not the whole download.
        self._http = httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=True)

    async def __aenter__(self) -> ArchiveClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ----------------------------------------------------------------------------------- URLs

    def daily_klines_url(self, symbol: str, day: date, interval: str = "1m") -> str:
        name = f"{symbol}-{interval}-{day.isoformat()}.zip"
        return f"{self.base_url}/data/spot/daily/klines/{symbol}/{interval}/{name}"

    def daily_agg_trades_url(self, symbol: str, day: date) -> str:
        name = f"{symbol}-aggTrades-{day.isoformat()}.zip"
        return f"{self.base_url}/data/spot/daily/aggTrades/{symbol}/{name}"

    # ------------------------------------------------------------------------------ day readers

    async def daily_klines(self, symbol: str, day: date, interval: str = "1m") -> pa.Table:
        """The day's klines (`records.KLINE_SCHEMA`, ms), verified, parsed and checked to lie in `day`."""
        url = self.daily_klines_url(symbol, day, interval)
        with self._directory_for(url) as directory:
            path = await self.fetch_verified(url, directory)
            table = await asyncio.to_thread(read_klines, path, symbol=symbol, interval=interval)
        check_kline_day(table, day, path.name)
        return table

    async def daily_agg_trades(self, symbol: str, day: date) -> AggTradesDay:
        """The day's aggregate trades (`records.AGG_TRADE_SCHEMA`, µs), verified, parsed, checked."""
        url = self.daily_agg_trades_url(symbol, day)
        with self._directory_for(url) as directory:
            path = await self.fetch_verified(url, directory)
            table = await asyncio.to_thread(read_agg_trades, path, symbol=symbol)
        return agg_trades_day(table, symbol, day, path.name)

    @contextmanager
    def _directory_for(self, url: str) -> Iterator[Path]:
        if self.cache_dir is not None:
            yield self.cache_dir / urlsplit(url).path.lstrip("/").rsplit("/", 1)[0]
            return
        with tempfile.TemporaryDirectory(prefix="binance-archive-") as directory:
            yield Path(directory)

    # --------------------------------------------------------------------------- download + verify

    async def fetch_verified(self, url: str, dest_dir: Path) -> Path:
        """`url` downloaded to `dest_dir/<its file name>`, only once its sha256 matches `url.CHECKSUM`.

        Raises `ArchiveNotPublishedError` (404 on the file or its CHECKSUM), `ArchiveChecksumError`
        (no file is left behind), `ArchiveUnavailableError` (retries exhausted, or another 4xx).
        A file already in `dest_dir` that matches the checksum is reused without downloading.
        """
        name = url.rsplit("/", 1)[-1]
        expected = parse_checksum(await self._get(url + ".CHECKSUM", _read_text), url=url)
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = dest_dir / name
        if target.exists() and await asyncio.to_thread(sha256_file, target) == expected:
            return target

        async def save(response: httpx.Response) -> tuple[Path, str]:
            return await _save_hashing(response, dest_dir, name)

        part, actual = await self._get(url, save)
        if actual != expected:
            part.unlink(missing_ok=True)
            raise ArchiveChecksumError(name, expected, actual)
        os.replace(part, target)  # atomic: a reader never sees a half-written or unverified zip
        return target

    async def _get(self, url: str, consume: Callable[[httpx.Response], Awaitable[T]]) -> T:
        """One streamed GET with retries of transient failures; `consume` reads a 200 response."""
        delays = self.backoff.delays()
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await self._get_once(url, consume)
            except _Transient as exc:
                problem = exc.problem
            if attempt == self.max_attempts:
                raise ArchiveUnavailableError(url, attempts=attempt, last_problem=problem)
            delay = next(delays)
            log.warning("GET %s: %s; retry %d in %.2fs", url, problem, attempt, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get_once(self, url: str, consume: Callable[[httpx.Response], Awaitable[T]]) -> T:
        try:
            async with self._http.stream("GET", url) as response:
                status = response.status_code
                if status == 200:
                    return await consume(response)
                if status == 404:
                    raise ArchiveNotPublishedError(url, status=status)
                if status >= 500 or status in (408, 429):
                    raise _Transient(f"HTTP {status}")
                raise ArchiveUnavailableError(url, attempts=1, last_problem=f"HTTP {status}")
        except httpx.TransportError as exc:  # connect errors, timeouts, connections dropped mid-body
            raise _Transient(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None


async def _read_text(response: httpx.Response) -> str:
    return (await response.aread()).decode("utf-8", errors="replace")


async def _save_hashing(response: httpx.Response, dest_dir: Path, name: str) -> tuple[Path, str]:
    """The body streamed to a temporary file next to its final name, hashed on the way."""
    digest = hashlib.sha256()
    handle, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=dest_dir)
    part = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as stream:
            async for chunk in response.aiter_bytes(_CHUNK):
                digest.update(chunk)
                stream.write(chunk)  # small buffered writes: not worth a thread hop per chunk
    except BaseException:
        part.unlink(missing_ok=True)  # a dropped connection leaves nothing behind; the retry starts over
        raise
    return part, digest.hexdigest()
