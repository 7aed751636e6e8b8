"""Where the streaming ingester's flushes run: a session per block (server), or a writer process (embedded).

Embedded chDB has two properties the ingester must not fight:
- one process at a time holds a data directory, and backfills, checks and the UI's runs need it too;
- starting chDB's engine leaks about five threads per start and was seen to hang after a few dozen
  starts in a process that also runs an asyncio WebSocket client.

So with the embedded warehouse the blocks are written by a child process (`python -m
warehouse_assets.lib.stream_writer`) that starts chDB once, keeps its session open and writes block after
block. When another process waits for the directory (`Warehouse.others_waiting`), the writer process ends,
giving the directory away; blocks wait in the spool meanwhile, and a new writer process starts once nobody
waits and a hold-off has passed. The receiving process never starts chDB, so neither the leak nor the hang
can reach the WebSocket client, and each writer process starts the engine once.

Protocol on two pipes (requests in, replies out, so nothing chDB prints can corrupt it): a request is a
header `<count, broken count, payload bytes>` (3 × uint64), then the broken frames (each length-prefixed),
then the joined frames; a reply is a uint32 length and a JSON object.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any, Protocol

from warehouse_assets.lib.stream_flush import FlushResult, flush_joined
from warehouse_assets.lib.warehouse import Warehouse, WarehouseLockedError, WarehouseOpenError

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<QQQ")
_LENGTH = struct.Struct("<I")
_LONG = struct.Struct("<Q")


class WarehouseBusyError(WarehouseOpenError):
    """The writer gave the embedded warehouse to another process and is holding off (blocks wait)."""


class Writer(Protocol):
    def flush(self, joined: bytes, count: int, broken: Sequence[bytes]) -> FlushResult: ...

    def available(self) -> bool: ...

    def maybe_yield(self) -> bool: ...

    def close(self) -> None: ...


def open_writer(warehouse: Warehouse, *, hold_off: float = 5.0) -> Writer:
    return (
        ProcessWriter(warehouse, hold_off=hold_off) if warehouse.target.embedded else SessionWriter(warehouse)
    )


class SessionWriter:
    """A ClickHouse server: a short session per block; there is nobody to yield to."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def flush(self, joined: bytes, count: int, broken: Sequence[bytes]) -> FlushResult:
        with self.warehouse.session() as client:
            return flush_joined(client, self.warehouse.database, joined, count, broken)

    def available(self) -> bool:
        return True

    def maybe_yield(self) -> bool:
        return False

    def close(self) -> None:
        pass


class ProcessWriter:
    """The embedded warehouse: blocks written by one long-lived child process, which yields to waiters."""

    def __init__(self, warehouse: Warehouse, *, hold_off: float = 5.0, max_failures: int = 3) -> None:
        self.warehouse = warehouse
        self.hold_off = hold_off
        self.max_failures = max_failures
        self._proc: subprocess.Popen[bytes] | None = None
        self._requests: Any = None
        self._replies: Any = None
        self._resume_after = 0.0
        self._failures = 0  # writer processes in a row that died without a reply

    def available(self) -> bool:
        """False while holding off after a yield or while another process waits (blocks stay spooled)."""
        if self._proc is not None:
            return True
        if time.monotonic() < self._resume_after or self.warehouse.others_waiting():
            return False
        return not self.warehouse.held_by_other_process()  # no writer process started just to find it locked

    def maybe_yield(self) -> bool:
        """Give the directory away if another process waits for it; True when it did."""
        if self._proc is None or not self.warehouse.others_waiting():
            return False
        log.info("another process waits for the embedded warehouse: the stream writer yields it")
        self.close()
        self._resume_after = time.monotonic() + self.hold_off
        return True

    def flush(self, joined: bytes, count: int, broken: Sequence[bytes]) -> FlushResult:
        if self._proc is None:
            self._start()
        assert self._requests is not None
        try:
            self._requests.write(_HEADER.pack(count, len(broken), len(joined)))
            for frame in broken:
                self._requests.write(_LONG.pack(len(frame)) + frame)
            self._requests.write(joined)
            self._requests.flush()
            reply = self._read_reply()
        except (BrokenPipeError, EOFError) as exc:
            code = self._reap()
            self._failures += 1
            if self._failures >= self.max_failures:
                raise RuntimeError(
                    f"the stream writer process died {self._failures} times in a row (last exit code {code}); "
                    "the block stays in the spool. See the run's stderr for chDB's message."
                ) from exc
            raise WarehouseOpenError(
                f"the stream writer process ended unexpectedly (exit code {code})"
            ) from exc
        self._failures = 0
        if "error" in reply:
            self._reap()
            raise RuntimeError(f"the stream writer could not write a block: {reply['error']}")
        data = reply["result"]
        data["symbols"] = set(data["symbols"])
        return FlushResult(**data)

    def _start(self) -> None:
        if time.monotonic() < self._resume_after:
            raise WarehouseBusyError(
                "the stream writer gave the embedded warehouse to another process; holding off"
            )
        if self.warehouse.others_waiting():
            raise WarehouseBusyError(
                "another process waits for the embedded warehouse; the stream waits its turn"
            )
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        env = dict(os.environ, WAREHOUSE_URL=self.warehouse.url)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "warehouse_assets.lib.stream_writer", str(request_r), str(reply_w)],
                pass_fds=(request_r, reply_w),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(request_r)
            os.close(reply_w)
        self._proc = proc
        self._requests = os.fdopen(request_w, "wb")
        self._replies = os.fdopen(reply_r, "rb")
        try:
            ready = self._read_reply()
        except EOFError:
            code = self._reap()
            raise WarehouseOpenError(
                f"the stream writer process ended before opening (exit code {code})"
            ) from None
        if "error" in ready:
            self._reap()
            error: type[WarehouseOpenError] = (
                WarehouseLockedError if ready.get("locked") else WarehouseOpenError
            )
            raise error(ready["error"])

    def _read_reply(self) -> dict[str, Any]:
        head = self._replies.read(_LENGTH.size)
        if len(head) < _LENGTH.size:
            raise EOFError
        (size,) = _LENGTH.unpack(head)
        body = self._replies.read(size)
        if len(body) < size:
            raise EOFError
        reply: dict[str, Any] = json.loads(body)
        return reply

    def _reap(self, timeout: float = 60.0) -> int | None:
        proc, self._proc = self._proc, None
        for pipe in (self._requests, self._replies):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        self._requests = self._replies = None
        if proc is None:
            return None
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def close(self) -> None:
        """End the writer process (it closes its session on the end of its request pipe)."""
        self._reap()


# --- the writer process ------------------------------------------------------------------------------


def _send(out: Any, message: dict[str, Any]) -> None:
    body = json.dumps(message).encode()
    out.write(_LENGTH.pack(len(body)) + body)
    out.flush()


def _read_exact(stream: Any, size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return bytes(data)


def _serve(request_fd: int, reply_fd: int) -> int:
    requests, replies = os.fdopen(request_fd, "rb"), os.fdopen(reply_fd, "wb")
    warehouse = Warehouse(lock_timeout=0)
    session = warehouse.session()
    try:
        client = session.__enter__()
    except WarehouseOpenError as exc:
        _send(replies, {"error": str(exc), "locked": isinstance(exc, WarehouseLockedError)})
        return 2
    try:
        _send(replies, {"ready": True})
        while True:
            try:
                count, broken_count, size = _HEADER.unpack(_read_exact(requests, _HEADER.size))
                broken = []
                for _ in range(broken_count):
                    (length,) = _LONG.unpack(_read_exact(requests, _LONG.size))
                    broken.append(_read_exact(requests, length))
                joined = _read_exact(requests, size)
            except EOFError:  # the ingester closed the pipe (yield, end of window) or died
                return 0
            try:
                result = flush_joined(client, warehouse.database, joined, count, broken)
            except Exception as exc:  # noqa: BLE001  # reported to the ingester, which fails the run; the block stays spooled
                _send(replies, {"error": f"{type(exc).__name__}: {exc}"})
                return 1
            data = dataclasses.asdict(result)
            data["symbols"] = sorted(result.symbols)
            _send(replies, {"result": data})
    finally:
        session.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(_serve(int(sys.argv[1]), int(sys.argv[2])))
