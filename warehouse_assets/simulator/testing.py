"""Run the simulator as a subprocess for tests and benchmarks: `with run_simulator() as sim: ...`.

The child is `python -m warehouse_assets.simulator --port 0 ...`; its port is read from the one
line it prints. The handle talks to the control API (/_sim/*) with httpx, and gives the WebSocket
stream URLs (`sim.ws_url("/stream?streams=btcusdt@aggTrade")`) and their controls (ws.py).
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
        """{"requests", "by_path", "weight_by_window", "status_counts"} since start or the last reset.

        "ws" (the ws_stats() counters) is added once a stream connection was opened since the reset.
        """
        result: dict[str, Any] = self._control("GET", "/_sim/stats")
        return result

    def ws_url(self, path: str) -> str:
        """The WebSocket URL of a stream path: ws_url("/ws/btcusdt@aggTrade"), ws_url("/stream?streams=a/b")."""
        return "ws" + self.base_url.removeprefix("http") + path

    def ws_stats(self) -> dict[str, Any]:
        """The WebSocket counters: messages_sent per stream, skipped_ids, repeated_ids, malformed, closed, ..."""
        result: dict[str, Any] = self._control("GET", "/_sim/ws/stats")
        return result

    def ws_state(self) -> dict[str, Any]:
        """{"settings", "faults", "connections", "replay"} of the stream endpoint."""
        result: dict[str, Any] = self._control("GET", "/_sim/ws")
        return result

    def ws_settings(self, **settings: float) -> dict[str, Any]:
        """Change agg_trade_rate, ping_interval, pong_timeout, lifetime_seconds or shutdown_notice_seconds."""
        result: dict[str, Any] = self._control("POST", "/_sim/ws", json=settings)["settings"]
        return result

    def ws_faults(self, **faults: Any) -> dict[str, Any]:
        """Apply WebSocket faults: drop=True, stall={"seconds", "answer_pings"}, skip/repeat/malformed={stream: n}."""
        result: dict[str, Any] = self._control("POST", "/_sim/ws/faults", json=faults)
        return result

    def ws_shutdown(self, close_after_seconds: float | None = None) -> list[int]:
        """Send serverShutdown to every connection (closing them after close_after_seconds); their ids."""
        body = {"close_after_seconds": close_after_seconds}
        result: list[int] = self._control("POST", "/_sim/ws/shutdown", json=body)["sent_to"]
        return result

    def set_clock_offset(self, offset_ms: int) -> int:
        """Run the market clock offset_ms ahead of the wall clock; returns the simulated now (ms)."""
        result: int = self._control("POST", "/_sim/clock", json={"offset_ms": offset_ms})["now_ms"]
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
    clock_offset_ms: int | None = None,
    ws_ping_interval: float | None = None,
    ws_pong_timeout: float | None = None,
    ws_lifetime_seconds: float | None = None,
    ws_shutdown_notice_seconds: float | None = None,
    ws_agg_trade_rate: float | None = None,
    replay: Sequence[str | Path] = (),
    replay_speed: float | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[SimulatorHandle]:
    """Start a simulator subprocess on a free loopback port; terminate it (then kill) on exit.

    Options left at None take the simulator's defaults (see `python -m warehouse_assets.simulator --help`).
    """
    command = [sys.executable, "-m", "warehouse_assets.simulator", "--port", "0", "--seed", str(seed),
               "--weight-limit", str(weight_limit), "--window-seconds", str(window_seconds),
               "--ban-base-seconds", str(ban_base_seconds)]  # fmt: skip
    if archive_dir is not None:
        command += ["--archive-dir", str(archive_dir)]
    if symbols:
        command += ["--symbols", ",".join(symbols)]
    options = {
        "--trades-per-day": trades_per_day,
        "--clock-offset-ms": clock_offset_ms,
        "--ws-ping-interval": ws_ping_interval,
        "--ws-pong-timeout": ws_pong_timeout,
        "--ws-lifetime-seconds": ws_lifetime_seconds,
        "--ws-shutdown-notice-seconds": ws_shutdown_notice_seconds,
        "--ws-agg-trade-rate": ws_agg_trade_rate,
        "--replay": ",".join(str(p) for p in replay) or None,
        "--replay-speed": replay_speed,
    }
    for flag, value in options.items():
        if value is not None:
            command += [flag, str(value)]
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
