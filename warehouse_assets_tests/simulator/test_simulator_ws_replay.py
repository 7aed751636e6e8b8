"""Replay of recorded combined-stream captures: the real BTCUSDT hftbacktest capture, timing, skipped lines."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator

CAPTURES = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ws_captures" / "binance_hftbacktest"
)
FILES = [CAPTURES / "binance_spot_btcusdt_20240808.gz", CAPTURES / "binance_spot_btcusdt_20240809.gz"]
FIRST_TRADE, LAST_TRADE = 3735683259, 3735703162
TRADES_PER_FILE = [9757, 10147]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    missing = [str(f) for f in FILES if not f.is_file()]
    assert not missing, f"shared capture files missing: {missing}"
    with run_simulator(replay=FILES, replay_speed=0) as handle:
        yield handle


def captured_lines(stream: str) -> list[str]:
    """The capture's JSON lines of one stream, straight from the files."""
    lines = []
    for path in FILES:
        with gzip.open(path, "rt") as capture:
            lines += [text for _, _, text in (raw.rstrip("\n").partition(" ") for raw in capture) if f'"stream":"{stream}"' in text[:40]]  # fmt: skip
    return lines


async def read_all(url: str, idle: float = 1.0) -> list[str]:
    """Every message until the connection has been quiet for `idle` seconds."""
    received = []
    async with websockets.connect(url, ping_interval=None, max_queue=None) as ws:
        while True:
            try:
                received.append(await asyncio.wait_for(ws.recv(), idle))
            except TimeoutError:
                return received


def test_replay_delivers_exactly_the_captured_trades_at_speed_0(sim: SimulatorHandle) -> None:
    received = asyncio.run(read_all(sim.ws_url("/stream?streams=btcusdt@trade/btcusdt@aggTrade")))
    assert received == captured_lines("btcusdt@trade")  # verbatim, in order; aggTrade is not in the capture
    trades = [json.loads(text)["data"] for text in received]
    assert len(trades) == sum(TRADES_PER_FILE) == 19904
    assert [t["t"] for t in trades] == list(range(FIRST_TRADE, LAST_TRADE + 1))
    assert trades[TRADES_PER_FILE[0]]["T"] >= trades[TRADES_PER_FILE[0] - 1]["T"]  # file 2 follows file 1
    state = sim.ws_state()["replay"]
    assert state["streams"]["btcusdt@trade"] == 19904 and state["speed"] == 0
    assert [f["messages"] + f["skipped_lines"] for f in state["files"]] == [41249, 58325]
    assert [f["skipped_lines"] for f in state["files"]] == [1, 0]  # the REST depth snapshot line
    assert sim.ws_stats()["messages_sent"]["btcusdt@trade"] >= 19904


def test_raw_replay_sends_the_data_part(sim: SimulatorHandle) -> None:
    received = asyncio.run(read_all(sim.ws_url("/ws/btcusdt@bookTicker")))
    expected = [json.loads(line)["data"] for line in captured_lines("btcusdt@bookTicker")]
    assert [json.loads(text) for text in received] == expected
    assert all(text.startswith('{"u":') for text in received)


def test_replay_keeps_the_recorded_gaps_scaled_by_speed(tmp_path: Path) -> None:
    capture = tmp_path / "capture.txt"
    first = 1_723_161_254_000_000_000
    lines = [
        f'{first} {{"lastUpdateId":1,"bids":[],"asks":[]}}',  # not a stream message: skipped
        f'{first} {{"stream":"btcusdt@trade","data":{{"e":"trade","t":1}}}}',
        f'{first + 400_000_000} {{"stream":"ethusdt@trade","data":{{"e":"trade","t":7}}}}',
        f'{first + 600_000_000} {{"stream":"btcusdt@trade","data":{{"e":"trade","t":2}}}}',
        f'{first + 1_400_000_000} {{"stream":"btcusdt@trade","data":{{"e":"trade","t":3}}}}',
        "garbage",
    ]
    capture.write_text("\n".join(lines) + "\n")

    async def timed(url: str) -> list[tuple[float, Any]]:
        out = []
        async with websockets.connect(url, ping_interval=None) as ws:
            started = time.monotonic()
            for _ in range(3):
                message = json.loads(await asyncio.wait_for(ws.recv(), 5))
                out.append((time.monotonic() - started, message))
            with pytest.raises(TimeoutError):  # ethusdt@trade is not subscribed
                await asyncio.wait_for(ws.recv(), 0.3)
        return out

    with run_simulator(replay=[capture], replay_speed=2.0) as sim:
        events = asyncio.run(timed(sim.ws_url("/ws/btcusdt@trade")))
        assert [e["t"] for _, e in events] == [1, 2, 3]
        gaps = [b - a for (a, _), (b, _) in zip(events, events[1:], strict=False)]
        assert 0.25 < gaps[0] < 0.45 and 0.3 < gaps[1] < 0.5  # recorded 0.6 s and 0.8 s apart, at speed 2
        assert sim.ws_state()["replay"]["files"][0]["skipped_lines"] == 2
