"""Every fault switch of the control API, over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator

MIN = 60_000
T0 = 1_614_556_800_000  # 2021-03-01 00:00 UTC
INTERNAL = {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with run_simulator() as handle:
        yield handle


@pytest.fixture
def client(sim: SimulatorHandle) -> Iterator[httpx.Client]:
    if time.time() % 60 > 57:
        time.sleep(60 - time.time() % 60 + 0.05)  # keep each test's weight inside one minute window
    sim.reset()
    with httpx.Client(base_url=sim.base_url, timeout=10) as c:
        yield c
    sim.reset()


def opens(client: httpx.Client, symbol: str = "BTCUSDT", **params: object) -> list[int]:
    r = client.get("/api/v3/klines", params={"symbol": symbol, "interval": "1m", **params})
    assert r.status_code == 200, r.text
    return [row[0] for row in r.json()]


def test_defaults_and_control_calls_cost_nothing(sim: SimulatorHandle, client: httpx.Client) -> None:
    assert sim.faults() == {
        "error_rate": 0.0, "error_status": 503, "fail_next": 0, "delay_ms": 0, "missing": [],
        "kline_overrides": [], "script": [], "extra_weight": 0,
    }  # fmt: skip
    sim.set_faults(fail_next=3)
    sim.stats()
    assert sim.faults()["fail_next"] == 3  # control calls are never faulted
    sim.set_faults()
    ping = client.get("/api/v3/ping")
    assert ping.status_code == 200 and ping.headers["x-mbx-used-weight-1m"] == "1"
    assert sim.stats()["requests"] == 1


def test_fail_next_and_error_status(sim: SimulatorHandle, client: httpx.Client) -> None:
    sim.set_faults(fail_next=2)
    first, second = client.get("/api/v3/ping"), client.get("/api/v3/time")
    assert (first.status_code, first.json(), second.status_code) == (503, INTERNAL, 503)
    assert first.headers["x-mbx-used-weight-1m"] == "1" and second.headers["x-mbx-used-weight-1m"] == "2"
    assert client.get("/api/v3/ping").status_code == 200
    assert sim.faults()["fail_next"] == 0
    sim.set_faults(fail_next=1, error_status=500)
    assert client.get("/api/v3/exchangeInfo").status_code == 500
    assert sim.stats()["status_counts"] == {"503": 2, "200": 1, "500": 1}


def test_error_rate_is_seeded(sim: SimulatorHandle, client: httpx.Client) -> None:
    sim.set_faults(error_rate=1.0)
    assert {client.get("/api/v3/ping").status_code for _ in range(5)} == {503}
    runs = []
    for _ in range(2):
        sim.reset()
        sim.set_faults(error_rate=0.3, error_status=502)
        runs.append([client.get("/api/v3/ping").status_code for _ in range(100)])
    assert runs[0] == runs[1]  # same seed, same sequence after a reset
    assert set(runs[0]) == {200, 502} and 10 <= runs[0].count(502) <= 50


def test_delay_ms(sim: SimulatorHandle, client: httpx.Client) -> None:
    sim.set_faults(delay_ms=300)
    start = time.perf_counter()
    assert client.get("/api/v3/ping").status_code == 200
    assert time.perf_counter() - start >= 0.3
    start = time.perf_counter()
    sim.stats()
    assert time.perf_counter() - start < 0.25  # control calls are not delayed
    with pytest.raises(httpx.ReadTimeout):
        client.get("/api/v3/ping", timeout=0.1)


def test_missing_ranges_are_outages(sim: SimulatorHandle, client: httpx.Client) -> None:
    sim.set_faults(missing=[{"symbol": "BTCUSDT", "start": T0 + 10 * MIN, "end": T0 + 20 * MIN}])
    got = opens(client, startTime=T0, limit=30)
    assert got == [T0 + i * MIN for i in [*range(10), *range(20, 40)]]  # still `limit` rows, the gap skipped
    assert opens(client, startTime=T0 + 12 * MIN, limit=2) == [T0 + 20 * MIN, T0 + 21 * MIN]
    assert opens(client, endTime=T0 + 15 * MIN, limit=3) == [T0 + 7 * MIN, T0 + 8 * MIN, T0 + 9 * MIN]
    assert opens(client, startTime=T0 + 10 * MIN, endTime=T0 + 20 * MIN - 1) == []
    assert opens(client, "ETHUSDT", startTime=T0 + 10 * MIN, limit=1) == [
        T0 + 10 * MIN
    ]  # other symbols intact
    hours = opens(client, interval="1h", startTime=T0, limit=2)
    assert hours == [T0, T0 + 3_600_000]


def test_kline_overrides_replace_rows_verbatim(sim: SimulatorHandle, client: httpx.Client) -> None:
    bad_rows = [
        [
            T0 + MIN,
            "1.00000000",
            "1.00000000",
            "1.00000000",
            "1.00000000",
            "1.00000000",
            T0 + 2 * MIN - 1,
        ],  # short
        [T0 + 2 * MIN, "abc", "1", "1", "1", "1", T0 + 3 * MIN - 1, "1", 1, "1", "1", "0"],  # not a number
        [T0 + 3 * MIN, "10", "5", "20", "10", "1", T0 + 4 * MIN - 1, "1", 1, "1", "1", "0"],  # high < low
    ]
    overrides = [{"symbol": "BTCUSDT", "open_time": row[0], "row": row} for row in bad_rows]
    sim.set_faults(kline_overrides=overrides)
    normal = client.get(
        "/api/v3/klines", params={"symbol": "ETHUSDT", "interval": "1m", "startTime": T0, "limit": 5}
    )
    r = client.get(
        "/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "startTime": T0, "limit": 5}
    )
    rows = r.json()
    assert rows[1:4] == bad_rows
    assert len(rows[0]) == 12 and len(rows[4]) == 12 and rows[4][0] == T0 + 4 * MIN
    assert normal.json()[1][0] == T0 + MIN and len(normal.json()[1]) == 12
    micro = client.get(
        "/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "startTime": T0, "limit": 3},
        headers={"X-MBX-TIME-UNIT": "MICROSECOND"},
    ).json()  # fmt: skip
    assert micro[1] == bad_rows[0] and micro[0][0] == T0 * 1000


def test_script_is_consumed_in_order(sim: SimulatorHandle, client: httpx.Client) -> None:
    sim.set_faults(
        script=[
            {"status": 429, "retry_after": 3},
            {"status": 418, "retry_after": 60, "body": {"code": -1003, "msg": "custom ban"}},
            {"status": 500},
            {"status": 200, "body": []},
        ]
    )
    first = client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m"})
    assert (first.status_code, first.headers["retry-after"], first.json()["code"]) == (429, "3", -1003)
    assert first.json()["msg"].startswith(
        "Too much request weight used; current limit is 6000 request weight per 1 MINUTE."
    )
    assert first.headers["x-mbx-used-weight-1m"] == "2"
    second = client.get("/api/v3/ping")
    assert (second.status_code, second.headers["retry-after"], second.json()) == (
        418,
        "60",
        {"code": -1003, "msg": "custom ban"},
    )
    third = client.get("/api/v3/ping")
    assert third.status_code == 500 and "retry-after" not in third.headers and third.json() == INTERNAL
    assert client.get("/api/v3/exchangeInfo").json() == []
    assert sim.faults()["script"] == []
    assert client.get("/api/v3/ping").status_code == 200  # scripted answers do not ban


def test_extra_weight_pushes_over_the_limit(sim: SimulatorHandle, client: httpx.Client) -> None:
    if time.time() % 60 > 58:
        time.sleep(2.5)
    sim.set_faults(extra_weight=5998)
    assert client.get("/api/v3/ping").headers["x-mbx-used-weight-1m"] == "5999"
    assert sim.faults()["extra_weight"] == 0  # added once
    at_limit = client.get("/api/v3/ping")
    assert at_limit.status_code == 200 and at_limit.headers["x-mbx-used-weight-1m"] == "6000"
    over = client.get("/api/v3/ping")
    assert over.status_code == 429 and over.headers["x-mbx-used-weight-1m"] == "6001"
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert sum(sim.stats()["weight_by_window"].values()) == 6001


def test_bad_fault_bodies_are_refused(sim: SimulatorHandle) -> None:
    for body, word in (
        ({"fail_nxt": 1}, "fail_nxt"),
        ({"error_rate": 2}, "error_rate"),
        ({"missing": [{"symbol": "BTCUSDT", "start": 1}]}, "missing"),
        ({"script": [{"retry_after": 1}]}, "status"),
        ([1, 2], "JSON object"),
    ):
        r = httpx.put(f"{sim.base_url}/_sim/faults", json=body)
        assert r.status_code == 400 and word in r.json()["error"], body
    assert sim.faults()["error_rate"] == 0.0


def test_reset_clears_faults_bans_and_stats(sim: SimulatorHandle, client: httpx.Client) -> None:
    sim.set_faults(extra_weight=7000, fail_next=5, delay_ms=10)
    client.get("/api/v3/ping")
    assert client.get("/api/v3/ping").status_code == 418  # ignored the 429's Retry-After
    sim.reset()
    assert sim.stats() == {"requests": 0, "by_path": {}, "weight_by_window": {}, "status_counts": {}}
    assert sim.faults()["fail_next"] == 0 and sim.faults()["delay_ms"] == 0
    r = client.get("/api/v3/ping")
    assert r.status_code == 200 and r.headers["x-mbx-used-weight-1m"] == "1"


def test_startup_faults_from_the_command_line() -> None:
    with run_simulator(extra_args=["--error-rate", "1.0", "--delay-ms", "50"]) as sim:
        start = time.perf_counter()
        assert httpx.get(f"{sim.base_url}/api/v3/ping").status_code == 503
        assert time.perf_counter() - start >= 0.05
        sim.reset()  # back to the start-up faults, not to none
        assert sim.faults()["error_rate"] == 1.0 and sim.faults()["delay_ms"] == 50
        sim.set_faults()
        assert httpx.get(f"{sim.base_url}/api/v3/ping").status_code == 200
