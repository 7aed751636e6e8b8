"""WebSocket fault switches: drop, stall (with and without pongs), skip, malformed, repeat, and their counters."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator

AGG = "btcusdt@aggTrade"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with run_simulator(symbols=["BTCUSDT"], trades_per_day=2_000_000) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _reset(sim: SimulatorHandle) -> None:
    sim.reset()


async def texts(ws: Any, count: int, timeout: float = 10.0) -> list[str]:
    return [await asyncio.wait_for(ws.recv(), timeout) for _ in range(count)]


def test_drop_closes_tcp_without_a_close_frame(sim: SimulatorHandle) -> None:
    async def run() -> None:
        async with (
            websockets.connect(sim.ws_url(f"/ws/{AGG}"), ping_interval=None) as agg,
            websockets.connect(sim.ws_url("/ws/btcusdt@trade"), ping_interval=None) as trade,
        ):
            await texts(agg, 1)
            result = await asyncio.to_thread(sim.ws_faults, drop={"stream": AGG})
            assert len(result["dropped"]) == 1
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(agg.recv(), 5)
            assert closed.value.rcvd is None and closed.value.sent is None  # no close handshake: 1006
            await texts(trade, 3)  # the other connection is untouched
            assert len((await asyncio.to_thread(sim.ws_faults, drop=True))["dropped"]) == 1
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(trade.recv(), 5)
            assert closed.value.rcvd is None

    asyncio.run(run())
    assert sim.ws_stats()["closed"] == {"dropped": 2}
    assert sim.stats()["ws"]["closed"] == {"dropped": 2}  # also in /_sim/stats once streams were used
    sim.reset()
    assert "ws" not in sim.stats() and sim.ws_stats()["connections_opened"] == 0


@pytest.mark.parametrize("answer_pings", [True, False])
def test_stall_withholds_data_and_optionally_pongs(sim: SimulatorHandle, answer_pings: bool) -> None:
    async def run() -> None:
        async with websockets.connect(sim.ws_url(f"/stream?streams={AGG}"), ping_interval=None) as ws:
            await texts(ws, 1)
            stalled = await asyncio.to_thread(
                sim.ws_faults, stall={"seconds": 1.5, "answer_pings": answer_pings}
            )
            assert len(stalled["stalled"]) == 1
            started = time.monotonic()
            while time.monotonic() - started < 0.3:  # frames written before the stall may still arrive
                try:
                    await asyncio.wait_for(ws.recv(), 0.3)
                except TimeoutError:
                    break
            pong = await ws.ping()
            if answer_pings:
                await asyncio.wait_for(pong, 0.5)
            else:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(pong), 0.5)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.4)
            message = json.loads(await asyncio.wait_for(ws.recv(), 3))  # the stall ends after 1.5 s
            assert message["stream"] == AGG and time.monotonic() - started > 1.0
            await asyncio.wait_for(await ws.ping(), 1)  # pings are answered again afterwards

    asyncio.run(run())
    assert sim.ws_stats()["withheld"][AGG] > 0


def test_stall_until_cleared(sim: SimulatorHandle) -> None:
    async def run() -> None:
        async with websockets.connect(sim.ws_url(f"/ws/{AGG}"), ping_interval=None) as ws:
            await texts(ws, 1)
            await asyncio.to_thread(sim.ws_faults, stall={})
            await asyncio.sleep(0.3)
            while True:  # drain what was in flight
                try:
                    await asyncio.wait_for(ws.recv(), 0.3)
                except TimeoutError:
                    break
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 1.0)
            assert len((await asyncio.to_thread(sim.ws_faults))["stalled"]) == 1
            await asyncio.to_thread(sim.ws_faults, stall=False)
            assert json.loads(await asyncio.wait_for(ws.recv(), 3))["e"] == "aggTrade"

    asyncio.run(run())


def test_skip_makes_a_known_id_gap_and_repeat_duplicates(sim: SimulatorHandle) -> None:
    async def run() -> list[dict[str, Any]]:
        async with websockets.connect(sim.ws_url(f"/ws/{AGG}"), ping_interval=None) as ws:
            before = await texts(ws, 2)  # the message just before the gap may be one of these
            reading = asyncio.create_task(texts(ws, 40))
            await asyncio.to_thread(sim.ws_faults, skip={AGG: 3}, repeat={AGG: 2})
            return [json.loads(t) for t in before + await reading]

    received = asyncio.run(run())
    stats = sim.ws_stats()
    skipped, repeated = stats["skipped_ids"][AGG], stats["repeated_ids"][AGG]
    assert len(skipped) == 3 and skipped == list(range(skipped[0], skipped[0] + 3))
    assert repeated == [skipped[-1] + 1, skipped[-1] + 2]  # skip acts first, then repeat
    ids = [m["a"] for m in received]
    assert not set(skipped) & set(ids)
    at = ids.index(repeated[0])
    assert at > 0
    assert ids[at - 1] == skipped[0] - 1  # the gap: exactly the skipped ids
    assert ids[at : at + 4] == [repeated[0], repeated[0], repeated[1], repeated[1]]
    assert received[at] == received[at + 1]
    assert ids[at + 4 :] == list(range(repeated[1] + 1, repeated[1] + 1 + len(ids) - at - 4))
    assert sim.ws_faults()["pending"] == {"skip": {}, "repeat": {}, "malformed": {}}


def test_malformed_messages_are_exactly_the_recorded_ones(sim: SimulatorHandle) -> None:
    async def run() -> tuple[list[str], list[str]]:
        async with (
            websockets.connect(sim.ws_url(f"/ws/{AGG}"), ping_interval=None) as raw,
            websockets.connect(sim.ws_url(f"/stream?streams={AGG}"), ping_interval=None) as combined,
        ):
            await texts(raw, 1)
            await texts(combined, 1)
            await asyncio.to_thread(sim.ws_faults, malformed={AGG: 4})
            return await texts(raw, 24), await texts(combined, 24)

    raw, combined = asyncio.run(run())
    recorded = sim.ws_stats()["malformed"]
    assert [m["kind"] for m in recorded] == ["bad_json", "missing_field", "wrong_type", "negative_price"]
    assert all(m["stream"] == AGG for m in recorded)
    payloads = [m["payload"] for m in recorded]
    assert [t for t in raw if t in payloads] == payloads  # sent verbatim, in order, once each
    wrapped = ['{"stream":"' + AGG + '","data":' + p + "}" for p in payloads]
    assert [t for t in combined if t in wrapped] == wrapped

    good = [json.loads(t) for t in raw if t not in payloads]
    ids = [m["a"] for m in good]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # no real message lost
    for entry in recorded:  # each bad message goes just before the real one it was made from
        following = raw[raw.index(entry["payload"]) + 1]
        assert json.loads(following)["a"] == entry["before_id"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(payloads[0])
    missing, wrong, negative = (json.loads(p) for p in payloads[1:])
    real = {m["a"]: m for m in good}
    assert "p" not in missing and {k: v for k, v in real[missing["a"]].items() if k != "p"} == missing
    assert wrong["a"] == str(recorded[2]["before_id"]) and isinstance(wrong["a"], str)
    assert negative["p"] == "-" + real[negative["a"]]["p"]


def test_fault_bodies_are_checked_and_reset_clears_them(sim: SimulatorHandle) -> None:
    for body in (
        {"skip": {AGG: -1}},
        {"skip": {"BTCUSDT": 1}},
        {"explode": True},
        {"stall": {"seconds": "x"}},
    ):
        response = httpx.post(f"{sim.base_url}/_sim/ws/faults", json=body)
        assert response.status_code == 400 and "error" in response.json()
    assert sim.ws_faults(skip={AGG: 1000}, malformed={"ethusdt@trade": 2})["pending"] == {
        "skip": {AGG: 1000},
        "repeat": {},
        "malformed": {"ethusdt@trade": 2},
    }
    bad = httpx.post(f"{sim.base_url}/_sim/ws", json={"ping_interval": 0})
    assert bad.status_code == 400
    sim.reset()
    assert sim.ws_faults()["pending"] == {"skip": {}, "repeat": {}, "malformed": {}}
    assert sim.ws_stats()["skipped_ids"] == {}
