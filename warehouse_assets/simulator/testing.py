"""Run the simulator as a subprocess for tests and benchmarks: `with run_simulator() as sim: ...`.

The child is `python -m warehouse_assets.simulator --port 0 ...`; its port is read from the one
line it prints. The handle talks to the control API (/_sim/*) with httpx.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
LISTENING_PREFIX = "simulator listening on "
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class SimulatorHandle:
    """A running simulator: its base URL and the control API."""

    base_url: str
    process: subprocess.Popen[str]

    def _control(self, method: str, path: str, json: Any = None) -> Any:
        response = httpx.request(method, f"{self.base_url}{path}", json=json, timeout=10.0)
        if response.status_code != 200:
            raise RuntimeError(
                f"simulator control {method} {path} failed: {response.status_code} {response.text}"
            )
        return response.json()

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replace the faults (fields not given take their defaults); returns the faults now in force."""
        result: dict[str, Any] = self._control("PUT", "/_sim/faults", json=faults)
        return result

    def faults(self) -> dict[str, Any]:
        """The faults now in force (fail_next, script and extra_weight shrink as they are consumed)."""
        result: dict[str, Any] = self._control("GET", "/_sim/faults")
        return result

    def reset(self) -> None:
        """Clear faults, weight counters, bans and statistics."""
        self._control("POST", "/_sim/reset")

    def stats(self) -> dict[str, Any]:
        """{"requests", "by_path", "weight_by_window", "status_counts"} since start or the last reset."""
        result: dict[str, Any] = self._control("GET", "/_sim/stats")
        return result


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@contextmanager
def run_simulator(
    *,
    archive_dir: str | Path | None = None,
    seed: int = 42,
    symbols: Sequence[str] | None = None,
    weight_limit: int = 6000,
    window_seconds: int = 60,
    ban_base_seconds: int = 120,
    trades_per_day: int | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[SimulatorHandle]:
    """Start a simulator subprocess on a free loopback port; terminate it (then kill) on exit."""
    command = [sys.executable, "-m", "warehouse_assets.simulator", "--port", "0", "--seed", str(seed),
               "--weight-limit", str(weight_limit), "--window-seconds", str(window_seconds),
               "--ban-base-seconds", str(ban_base_seconds)]  # fmt: skip
    if archive_dir is not None:
        command += ["--archive-dir", str(archive_dir)]
    if symbols:
        command += ["--symbols", ",".join(symbols)]
    if trades_per_day is not None:
        command += ["--trades-per-day", str(trades_per_day)]
    command += list(extra_args)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True, env=env
        )
        try:
            yield SimulatorHandle(_wait_for_port(process, stderr, command), process)
        finally:
            _stop(process)


def _wait_for_port(process: subprocess.Popen[str], stderr: IO[str], command: list[str]) -> str:
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        line = lines.get(timeout=STARTUP_TIMEOUT_S)
    except queue.Empty:
        line = None
        reason = f"did not print '{LISTENING_PREFIX}...' within {STARTUP_TIMEOUT_S:.0f} s"
    else:
        reason = f"exited with code {process.wait(timeout=5)}" if line is None else f"printed {line!r}"
    if line is not None and line.startswith(LISTENING_PREFIX):
        return line[len(LISTENING_PREFIX) :].strip()
    _stop(process)
    stderr.seek(0)
    raise RuntimeError(f"simulator {' '.join(command)} {reason}; its stderr:\n{stderr.read()[-4000:]}")


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
