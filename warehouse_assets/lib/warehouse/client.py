"""Warehouse sessions: open, work, close.

Embedded chDB allows one process per data directory, so every unit of work opens a session and
closes it promptly; opening waits for another process's lock with jittered exponential backoff up
to a deadline. Never hold a session while waiting on the network.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ProgrammingError

from warehouse_assets.lib import settings
from warehouse_assets.lib.retry import Backoff
from warehouse_assets.lib.warehouse.target import WarehouseTarget, parse_warehouse_url

log = logging.getLogger(__name__)

# Waiting probes a flock (no engine start), so polling twice a second costs nothing and hands over fast.
LOCK_BACKOFF = Backoff(base=0.05, cap=0.5, jitter=0.5)


class WarehouseOpenError(RuntimeError):
    """The warehouse could not be opened for a reason other than another process holding it."""


class WarehouseLockedError(WarehouseOpenError):
    """Another process held the embedded warehouse for longer than the lock timeout."""


def _flock_held(file: Path, flags: int = os.O_RDONLY) -> bool:
    """True when some open file description holds a flock on `file` (probed without blocking, released)."""
    try:
        fd = os.open(file, flags, 0o644)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _held_by_other_process(path: Path) -> bool:
    """True when ClickHouse's lock on <path>/status is held (ClickHouse flocks that file while open).

    Only called when our own process holds no engine on `path`, so a held flock is another process's.
    """
    return _flock_held(path / "status")


WAITERS_FILE = "waiters.lock"


def _announce_waiting(path: Path) -> int:
    """Hold a shared flock on <path>/waiters.lock while waiting, so a long holder can see it and yield."""
    fd = os.open(path / WAITERS_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)  # a holder's probe holds the exclusive lock only for an instant
    return fd


def others_waiting(path: Path) -> bool:
    """True while another session (any process) waits for the embedded warehouse at `path`."""
    return _flock_held(path / WAITERS_FILE, os.O_RDWR | os.O_CREAT)


class _HeldElsewhere(Exception):
    """The embedded directory's lock is held by another process (seen by probing, before opening)."""


class Warehouse:
    """Entry point for everything that touches ClickHouse.

    ``with warehouse.session() as client:`` yields a clickhouse-connect client on the target
    database; the first session of the process applies pending migrations first.
    """

    _migrated: set[str] = set()
    _migrate_lock = threading.Lock()
    # Embedded sessions open in this process, by directory: while one is open, this process holds the
    # directory's lock itself, so a new session opens at once; otherwise the lock is probed first.
    _open_here: dict[Path, int] = {}
    _open_here_lock = threading.Lock()

    def __init__(self, url: str | None = None, *, lock_timeout: float | None = None) -> None:
        self.url = url or settings.warehouse_url()
        self.target: WarehouseTarget = parse_warehouse_url(self.url)
        self.lock_timeout = settings.warehouse_lock_timeout() if lock_timeout is None else lock_timeout

    @property
    def database(self) -> str:
        return self.target.database

    def describe(self) -> str:
        return self.target.describe()

    @contextmanager
    def session(self, *, migrate: bool = True) -> Iterator[Client]:
        path = self.target.path
        if path is not None:
            with Warehouse._open_here_lock:  # counted before opening: a concurrent session need not probe
                Warehouse._open_here[path] = Warehouse._open_here.get(path, 0) + 1
        try:
            client = self._open()
            try:
                if migrate:
                    self._ensure_migrated(client)
                yield client
            finally:
                client.close()
        finally:
            if path is not None:
                with Warehouse._open_here_lock:
                    Warehouse._open_here[path] -= 1

    def _ensure_migrated(self, client: Client) -> None:
        key = f"{self.target.describe()}"
        if key in Warehouse._migrated:
            return
        from warehouse_assets.lib.warehouse.migrations import apply_migrations

        with Warehouse._migrate_lock:
            if key not in Warehouse._migrated:
                apply_migrations(client, self.database)
                Warehouse._migrated.add(key)

    def _open(self) -> Client:
        if not self.target.embedded:
            return self._open_server()
        assert self.target.path is not None
        path = self.target.path
        path.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        waited_since: float | None = None
        waiting_fd: int | None = None  # held while this session waits: see `others_waiting`
        try:
            for delay in LOCK_BACKOFF.delays():
                try:
                    # Probe the lock before asking chDB: a failed engine start is not free (it logs, and it
                    # has been seen to disturb an asyncio loop in the same process), so wait without one.
                    if Warehouse._open_here.get(path, 0) <= 1 and _held_by_other_process(path):
                        raise _HeldElsewhere(path)
                    client = clickhouse_connect.get_client(interface="chdb", path=str(path))
                except (ProgrammingError, _HeldElsewhere) as exc:
                    if not isinstance(exc, _HeldElsewhere) and not _held_by_other_process(path):
                        raise WarehouseOpenError(
                            f"could not open the embedded warehouse at {path}: {exc}. "
                            "If another WAREHOUSE_URL was opened earlier in this process, "
                            "use one warehouse per process."
                        ) from exc
                    now = time.monotonic()
                    if waited_since is None:
                        waited_since = now
                    if now >= deadline:
                        raise WarehouseLockedError(
                            f"the embedded warehouse at {path} is held by another process "
                            f"(waited {now - waited_since:.1f}s, WAREHOUSE_LOCK_TIMEOUT={self.lock_timeout:g}s). "
                            "Stop the other process (a running demo, Dagster run or script on the same "
                            "directory), raise WAREHOUSE_LOCK_TIMEOUT, or point WAREHOUSE_URL at a ClickHouse server."
                        ) from exc
                    if waiting_fd is None:
                        log.info("embedded warehouse at %s is held by another process; waiting", path)
                        waiting_fd = _announce_waiting(path)
                    time.sleep(min(delay, deadline - now))  # the last attempt lands on the deadline
                    continue
                if waited_since is not None:
                    log.info(
                        "embedded warehouse at %s opened after %.2fs", path, time.monotonic() - waited_since
                    )
                return client
        finally:
            if waiting_fd is not None:
                os.close(waiting_fd)  # releases the shared flock
        raise AssertionError("unreachable")

    def held_by_other_process(self) -> bool:
        """True while another process holds this embedded warehouse (a probe of its lock; False for a server)."""
        path = self.target.path
        return path is not None and Warehouse._open_here.get(path, 0) == 0 and _held_by_other_process(path)

    def others_waiting(self) -> bool:
        """True while a session of another process waits for this embedded warehouse (always False for a
        server): a long-running holder (the streaming writer) checks it and yields the directory."""
        path = self.target.path
        return path is not None and path.is_dir() and others_waiting(path)

    def _open_server(self) -> Client:
        t = self.target
        kwargs: dict[str, Any] = {
            "host": t.host,
            "port": t.port,
            "username": t.username,
            "password": t.password,
            "secure": t.secure,
            "database": "default",  # the target database may not exist before migrations
        }
        try:
            return clickhouse_connect.get_client(**kwargs)
        except Exception as exc:
            raise WarehouseOpenError(f"could not connect to {t.describe()}: {exc}") from exc
