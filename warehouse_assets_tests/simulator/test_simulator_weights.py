"""Request weight headers, 429 with Retry-After, then escalating 418 bans, over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator
from warehouse_assets.simulator.weights import MAX_BAN_SECONDS, WeightLimiter

LIMIT, WINDOW, BAN = 24, 2, 1


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with run_simulator() as handle:
        yield handle


@pytest.fixture(scope="module")
def tiny() -> Iterator[SimulatorHandle]:
    with run_simulator(weight_limit=LIMIT, window_seconds=WINDOW, ban_base_seconds=BAN) as handle:
        yield handle


def fresh_window() -> None:
    """Sleep to the start of the next 2-second window so a test's requests share one window."""
    time.sleep(WINDOW - time.time() % WINDOW + 0.02)


def test_weight_header_counts_every_request(sim: SimulatorHandle) -> None:
    sim.reset()
    with httpx.Client(base_url=sim.base_url) as c:
        if time.time() % 60 > 58:
            time.sleep(2.5)  # keep the sequence inside one minute window
        used = [
            c.get("/api/v3/ping").headers["x-mbx-used-weight-1m"],
            c.get("/api/v3/exchangeInfo").headers["x-mbx-used-weight-1m"],
            c.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": 1}).headers[
                "x-mbx-used-weight-1m"
            ],
            c.get("/api/v3/klines", params={"symbol": "NOPE", "interval": "1m"}).headers[
                "x-mbx-used-weight-1m"
            ],
            c.get("/api/v3/time").headers["x-mbx-used-weight-1m"],
        ]
    assert used == ["1", "21", "23", "25", "26"]
    stats = sim.stats()
    assert stats["requests"] == 5 and sum(stats["weight_by_window"].values()) == 26
    (window,) = stats["weight_by_window"]
    assert int(window) % 60_000 == 0
    assert stats["status_counts"] == {"200": 4, "400": 1}
    assert stats["by_path"]["/api/v3/klines"] == 2


def test_short_window_names(tiny: SimulatorHandle) -> None:
    tiny.reset()
    r = httpx.get(f"{tiny.base_url}/api/v3/exchangeInfo")
    assert r.json()["rateLimits"][0] == {
        "rateLimitType": "REQUEST_WEIGHT", "interval": "SECOND", "intervalNum": 2, "limit": LIMIT,
    }  # fmt: skip
    assert r.headers["x-mbx-used-weight-2s"] == "20" and "x-mbx-used-weight-1m" not in r.headers


def test_429_then_waiting_retry_after_is_fine(tiny: SimulatorHandle) -> None:
    tiny.reset()
    fresh_window()
    with httpx.Client(base_url=tiny.base_url) as c:
        for i in range(LIMIT):
            assert c.get("/api/v3/ping").status_code == 200, i
        r = c.get("/api/v3/ping")
        assert r.status_code == 429 and r.headers["x-mbx-used-weight-2s"] == str(LIMIT + 1)
        assert r.json() == {
            "code": -1003,
            "msg": "Too much request weight used; current limit is 24 request weight per 2 SECOND. "
            "Please use WebSocket Streams for live updates to avoid polling the API.",
        }
        retry_after = int(r.headers["retry-after"])
        assert 1 <= retry_after <= WINDOW
        time.sleep(retry_after + 0.05)
        again = c.get("/api/v3/ping")
        assert again.status_code == 200 and again.headers["x-mbx-used-weight-2s"] == "1"


def test_ignoring_retry_after_gets_escalating_bans(tiny: SimulatorHandle) -> None:
    tiny.reset()
    fresh_window()
    with httpx.Client(base_url=tiny.base_url) as c:
        for phase, expected_ban in enumerate((BAN, 2 * BAN)):
            if phase:
                fresh_window()
            statuses = [c.get("/api/v3/ping").status_code for _ in range(LIMIT + 1)]
            assert statuses[-1] == 429 and 200 in statuses
            before = int(time.time() * 1000)
            banned = c.get("/api/v3/ping")  # sent before Retry-After passed: banned
            assert banned.status_code == 418 and banned.headers["retry-after"] == str(expected_ban)
            body = banned.json()
            assert body["code"] == -1003
            until = int(body["msg"].split("IP banned until ")[1].split(".")[0])
            assert before + expected_ban * 1000 - 50 <= until <= before + expected_ban * 1000 + 500
            assert body["msg"].endswith("Please use WebSocket Streams for live updates to avoid bans.")
            still = c.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m"})
            assert still.status_code == 418 and 1 <= int(still.headers["retry-after"]) <= expected_ban
            assert "x-mbx-used-weight-2s" in still.headers
            time.sleep(expected_ban + 0.05)
    stats = tiny.stats()
    assert stats["status_counts"]["418"] == 4 and stats["status_counts"]["429"] == 2


def test_bans_double_and_cap_at_three_days() -> None:
    limiter = WeightLimiter(limit=1, window_seconds=60, ban_base_seconds=120)
    now, bans = 0.0, []
    for _ in range(14):
        limiter.admit("1.2.3.4", 2, now)  # 429
        bans.append(limiter.admit("1.2.3.4", 1, now + 0.5).retry_after)  # 418
        now += (bans[-1] or 0) + 60.0
    assert bans[:4] == [120, 240, 480, 960]
    assert bans[-1] == MAX_BAN_SECONDS == 259_200
    assert limiter.admit("5.6.7.8", 1, now).status == 200  # per IP
