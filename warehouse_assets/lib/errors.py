"""Exceptions the lib raises on purpose. Each names the thing that failed and what to do about it.

Every class keeps its constructor arguments in `__reduce__` so errors survive pickling (Dagster ships
errors between processes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class WarehouseError(Exception):
    """Base class of every error raised on purpose by `warehouse_assets.lib`."""


class ExchangeError(WarehouseError):
    """Something went wrong talking to an exchange (after whatever retries were sensible)."""


def _for_symbol(symbol: str | None) -> str:
    return f" for symbol {symbol!r}" if symbol else ""


class UnknownSymbolError(ExchangeError):
    """The exchange does not list the symbol(s). Fixing the configuration is the only remedy."""

    def __init__(
        self, symbols: str | Sequence[str], *, venue: str = "Binance spot", source: str = "exchangeInfo"
    ) -> None:
        self.symbols: tuple[str, ...] = (symbols,) if isinstance(symbols, str) else tuple(symbols)
        self.symbol = self.symbols[0] if self.symbols else ""
        self.venue = venue
        self.source = source
        names = ", ".join(repr(s) for s in self.symbols)
        subject = f"symbol {names} is" if len(self.symbols) == 1 else f"symbols {names} are"
        super().__init__(f"{subject} not listed on {venue} ({source}); check WAREHOUSE_SYMBOLS")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.symbols,), {"venue": self.venue, "source": self.source}))


class BinanceApiError(ExchangeError):
    """Binance refused a request with an error body `{"code": .., "msg": ..}` (or a non-JSON 4xx)."""

    def __init__(
        self,
        code: int | None,
        msg: str,
        path: str,
        *,
        status: int = 400,
        symbol: str | None = None,
        hint: str = "",
    ) -> None:
        self.code = code
        self.msg = msg
        self.path = path
        self.status = status
        self.symbol = symbol
        self.hint = hint
        code_text = f"code {code}" if code is not None else "no error code"
        message = f"Binance rejected GET {path}{_for_symbol(symbol)}: HTTP {status}, {code_text}: {msg}"
        super().__init__(f"{message}; {hint}" if hint else message)

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"status": self.status, "symbol": self.symbol, "hint": self.hint}
        return (_rebuild, (type(self), (self.code, self.msg, self.path), kwargs))


class MalformedResponseError(ExchangeError):
    """A response did not have the documented shape; nothing from it may be used."""

    def __init__(self, path: str, reason: str, *, message: str | None = None) -> None:
        self.path = path
        self.reason = reason
        super().__init__(message or f"malformed response from {path}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.path, self.reason), {}))


class MalformedKlineError(MalformedResponseError):
    """A kline row failed validation. `raw` is the row exactly as received (JSON text)."""

    def __init__(self, symbol: str, raw: str, reason: str, *, path: str = "/api/v3/klines") -> None:
        self.symbol = symbol
        self.raw = raw
        shown = raw if len(raw) <= 500 else raw[:500] + "..."
        super().__init__(
            path,
            reason,
            message=(
                f"malformed kline for symbol {symbol!r} from {path}: {reason}; row as received: {shown}; "
                "nothing from this response was used; report it if it persists"
            ),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.symbol, self.raw, self.reason), {"path": self.path}))


class MalformedAggTradeError(MalformedResponseError):
    """An aggregate trade row (or the id chain between rows) failed validation. `raw` is the row as received."""

    def __init__(self, symbol: str, raw: str, reason: str, *, path: str = "/api/v3/aggTrades") -> None:
        self.symbol = symbol
        self.raw = raw
        shown = raw if len(raw) <= 500 else raw[:500] + "..."
        super().__init__(
            path,
            reason,
            message=(
                f"malformed aggregate trade for symbol {symbol!r} from {path}: {reason}; row as received: "
                f"{shown}; nothing from this response was used; report it if it persists"
            ),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.symbol, self.raw, self.reason), {"path": self.path}))


class ExchangeUnavailableError(ExchangeError):
    """Transient failures (5xx, timeouts, connection errors) outlasted every retry."""

    def __init__(
        self, base_url: str, path: str, *, symbol: str | None, attempts: int, last_problem: str
    ) -> None:
        self.base_url = base_url
        self.path = path
        self.symbol = symbol
        self.attempts = attempts
        self.last_problem = last_problem
        super().__init__(
            f"GET {path}{_for_symbol(symbol)} failed {attempts} times in a row (last: {last_problem}); "
            f"{base_url} is down or unreachable; retry later or check BINANCE_API_URL"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"symbol": self.symbol, "attempts": self.attempts, "last_problem": self.last_problem}
        return (_rebuild, (type(self), (self.base_url, self.path), kwargs))


class RateLimitedError(ExchangeError):
    """The exchange asked us to stop for longer than we are willing to wait (or kept refusing)."""

    def __init__(self, path: str, *, status: int, retry_after: float | None, reason: str) -> None:
        self.path = path
        self.status = status
        self.retry_after = retry_after
        self.reason = reason
        super().__init__(
            f"GET {path} was refused with HTTP {status} ({reason}); every request to this exchange from "
            "this IP is paused; lower the request rate or wait until the ban ends"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"status": self.status, "retry_after": self.retry_after, "reason": self.reason}
        return (_rebuild, (type(self), (self.path,), kwargs))


class ArchiveError(ExchangeError):
    """A data.binance.vision file could not be used. The caller may fall back to REST for that day."""


class ArchiveNotPublishedError(ArchiveError):
    """The archive (or its .CHECKSUM) is not published (HTTP 404): too recent, or no trading that day."""

    def __init__(self, url: str, *, status: int = 404) -> None:
        self.url = url
        self.status = status
        super().__init__(
            f"{url} is not published on data.binance.vision (HTTP {status}); daily files appear about a "
            "day later, so fetch this day from the REST API instead"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.url,), {"status": self.status}))


class ArchiveChecksumError(ArchiveError):
    """A downloaded archive does not match its published sha256; the file was deleted."""

    def __init__(self, file: str, expected: str, actual: str) -> None:
        self.file = file
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"archive {file} failed verification: its .CHECKSUM says sha256 {expected} but the downloaded "
            f"bytes hash to {actual}; the file was deleted; retry the download, and report it if it persists"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.file, self.expected, self.actual), {}))


class ArchiveFormatError(ArchiveError):
    """An archive's CSV failed validation (format, value, contiguity or day coverage); nothing was used.

    `row` is the 1-based data row (a header line is not counted), or None for a whole-file problem.
    """

    def __init__(self, file: str, reason: str, *, row: int | None = None) -> None:
        self.file = file
        self.reason = reason
        self.row = row
        where = f"{file} row {row}" if row is not None else str(file)
        super().__init__(
            f"archive {where}: {reason}; nothing from this file was used; fetch the day from REST instead"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.file, self.reason), {"row": self.row}))


class ArchiveUnavailableError(ArchiveError):
    """data.binance.vision kept failing (5xx, timeouts) or refused the request (non-404 4xx)."""

    def __init__(self, url: str, *, attempts: int, last_problem: str) -> None:
        self.url = url
        self.attempts = attempts
        self.last_problem = last_problem
        super().__init__(
            f"GET {url} failed {attempts} time(s) (last: {last_problem}); the archive host is down or "
            "unreachable; retry later, check BINANCE_ARCHIVE_URL, or set KLINES_ARCHIVE=false to fetch from REST"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"attempts": self.attempts, "last_problem": self.last_problem}
        return (_rebuild, (type(self), (self.url,), kwargs))


def _rebuild(cls: type[Exception], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Exception:
    return cls(*args, **kwargs)


class SpoolError(WarehouseError):
    """The stream spool (the on-disk buffer between the WebSocket ingester and the flusher) cannot go on."""


def _size_text(n: int) -> str:
    return f"{n} bytes ({n / 2**20:.1f} MiB)"


class SpoolFullError(SpoolError):
    """An append would take the spool past its size cap; the batch was not written (not received)."""

    def __init__(
        self,
        directory: str,
        *,
        max_bytes: int,
        size_bytes: int,
        batch_bytes: int,
        setting: str = "STREAM_SPOOL_MAX_BYTES",
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.size_bytes = size_bytes
        self.batch_bytes = batch_bytes
        self.setting = setting
        super().__init__(
            f"stream spool {directory} is full: {_size_text(size_bytes)} on disk plus a batch of "
            f"{_size_text(batch_bytes)} would pass the cap of {_size_text(max_bytes)}; the flusher is not "
            "draining it, so the warehouse is probably down or locked; fix the warehouse (the spool drains "
            f"once flushes succeed) or raise the cap ({setting})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {
            "max_bytes": self.max_bytes,
            "size_bytes": self.size_bytes,
            "batch_bytes": self.batch_bytes,
            "setting": self.setting,
        }
        return (_rebuild, (type(self), (self.directory,), kwargs))


class SpoolLockedError(SpoolError):
    """Another process (or another Spool object) already writes to this spool directory."""

    def __init__(self, directory: str, *, holder_pid: int | None) -> None:
        self.directory = directory
        self.holder_pid = holder_pid
        holder = (
            f"process {holder_pid}" if holder_pid is not None else "another process (pid not yet written)"
        )
        super().__init__(
            f"stream spool {directory} is in use by {holder}, which holds the lock on {directory}/lock; "
            "a spool has one writer process: stop that process, or give this one its own spool directory"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.directory,), {"holder_pid": self.holder_pid}))


class SpoolCorruptError(SpoolError):
    """Spool data that was acknowledged as durable fails its checks; nothing from it was returned."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"stream spool file {path} is corrupt at byte {offset}: {reason}; acknowledged messages may be "
            "lost; stop the ingester, move the spool directory aside for inspection and start with an empty one"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.path, self.offset, self.reason), {}))


class StreamRejectedError(ExchangeError):
    """The exchange refused a WebSocket handshake with an HTTP status that retrying will not fix."""

    def __init__(self, url: str, status: int, *, hint: str) -> None:
        self.url = url
        self.status = status
        self.hint = hint
        super().__init__(f"the WebSocket handshake to {url} was refused with HTTP {status}; {hint}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.url, self.status), {"hint": self.hint}))


class StreamUnavailableError(ExchangeError):
    """No WebSocket connection to a stream URL could be opened for longer than the client waits."""

    def __init__(self, url: str, *, seconds: float, attempts: int, last_problem: str) -> None:
        self.url = url
        self.seconds = seconds
        self.attempts = attempts
        self.last_problem = last_problem
        super().__init__(
            f"no WebSocket connection to {url} for {seconds:.0f} s ({attempts} failed attempts; last: "
            f"{last_problem}); the stream host is down or unreachable from here; check network access "
            "to it and BINANCE_WS_URL, then restart the stream"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"seconds": self.seconds, "attempts": self.attempts, "last_problem": self.last_problem}
        return (_rebuild, (type(self), (self.url,), kwargs))
