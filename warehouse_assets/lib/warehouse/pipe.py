"""A named pipe that a thread fills from a stream, for ClickHouse's file() to read as it is written.

The embedded warehouse reads local files itself; a pipe lets it parse a zip member while Python is still
inflating it (the two overlap on two cores) instead of first writing the whole CSV to disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_CHUNK = 1 << 22


@contextmanager
def pipe_from(open_stream: Callable[[], contextlib.AbstractContextManager[IO[bytes]]]) -> Iterator[Path]:
    """Yields the path of a FIFO fed with the bytes of `open_stream()` by a background thread.

    The reader must open the FIFO once and read it to the end. If it stops early (a parse error) or never
    opens it, the feeder is released on exit and its own error, if any, is dropped in favour of the
    reader's: the reader is what failed.
    """
    directory = Path(tempfile.mkdtemp(prefix="warehouse-pipe-"))
    fifo = directory / "data"
    os.mkfifo(fifo, 0o600)
    failure: list[BaseException] = []

    def feed() -> None:
        try:
            with open_stream() as source, open(fifo, "wb") as sink:
                while chunk := source.read(_CHUNK):
                    sink.write(chunk)
        except BrokenPipeError:
            pass  # the reader stopped early: its error is the one that matters
        except BaseException as exc:  # re-raised in the caller's thread below
            failure.append(exc)

    feeder = threading.Thread(target=feed, name="warehouse-pipe", daemon=True)
    feeder.start()
    try:
        yield fifo
    finally:
        _release(fifo, feeder)
        shutil.rmtree(directory, ignore_errors=True)
    if failure:
        raise failure[0]


def _release(fifo: Path, feeder: threading.Thread) -> None:
    """Unblock a feeder whose reader never came or left early: open and close the read end until it ends."""
    while feeder.is_alive():
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return
        os.close(fd)  # the feeder's open returns, or its next write fails with EPIPE: it ends either way
        feeder.join(timeout=0.05)
