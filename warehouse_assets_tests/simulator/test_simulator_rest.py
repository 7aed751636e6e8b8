"""Binance REST shapes and errors of the simulator, over real HTTP (synthetic mode)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with run_simulator(symbols=["BTCUSDT", "ETHUSDT", "XRPUSDT", "DOGEUSDT"]) as handle:
        yield handle


@pytest.fixture
def client(sim: SimulatorHandle) -> Iterator[httpx.Client]:
    if time.time() % 60 > 57:
        time.sleep(60 - time.time() % 60 + 0.05)  # keep each test's weight inside one minute window
    sim.reset()
    with httpx.Client(base_url=sim.base_url, timeout=10) as c:
        yield c


def test_ping_and_time(client: httpx.Client) -> None:
    r = client.get("/api/v3/ping")
    assert (r.status_code, r.json(), r.headers["content-type"]) == (200, {}, "application/json")
    assert r.headers["x-mbx-used-weight-1m"] == "1"
    before = int(time.time() * 1000)
    r = client.get("/api/v3/time")
    after = int(time.time() * 1000)
    assert list(r.json()) == ["serverTime"]
    assert before - 5 <= r.json()["serverTime"] <= after + 5
    micros = client.get("/api/v3/time", headers={"X-MBX-TIME-UNIT": "microsecond"}).json()["serverTime"]
    assert before * 1000 <= micros <= (after + 1000) * 1000
    assert client.get("/api/v3/time").headers["x-mbx-used-weight-1m"] == "4"


def test_exchange_info_shape(client: httpx.Client) -> None:
    r = client.get("/api/v3/exchangeInfo")
    body = r.json()
    assert r.headers["x-mbx-used-weight-1m"] == "20"
    assert list(body) == ["timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"]
    assert body["timezone"] == "UTC" and body["exchangeFilters"] == []
    assert body["rateLimits"][0] == {
        "rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000,
    }  # fmt: skip
    types = [limit["rateLimitType"] for limit in body["rateLimits"]]
    assert "ORDERS" in types and "RAW_REQUESTS" in types
    assert [s["symbol"] for s in body["symbols"]] == ["BTCUSDT", "ETHUSDT", "XRPUSDT", "DOGEUSDT"]
    btc = body["symbols"][0]
    assert (btc["status"], btc["baseAsset"], btc["quoteAsset"]) == ("TRADING", "BTC", "USDT")
    assert btc["baseAssetPrecision"] == 8 and btc["quotePrecision"] == 8
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert filters["LOT_SIZE"]["stepSize"] == "0.00001000"
    xrp = {f["filterType"]: f for f in body["symbols"][2]["filters"]}
    assert (xrp["PRICE_FILTER"]["tickSize"], xrp["LOT_SIZE"]["stepSize"]) == ("0.00010000", "1.00000000")
    doge = body["symbols"][3]
    assert (doge["baseAsset"], doge["quoteAsset"]) == ("DOGE", "USDT")


def test_exchange_info_filters_and_errors(client: httpx.Client) -> None:
    one = client.get("/api/v3/exchangeInfo", params={"symbol": "ETHUSDT"}).json()
    assert [s["symbol"] for s in one["symbols"]] == ["ETHUSDT"]
    two = client.get("/api/v3/exchangeInfo", params={"symbols": '["XRPUSDT","BTCUSDT"]'}).json()
    assert sorted(s["symbol"] for s in two["symbols"]) == ["BTCUSDT", "XRPUSDT"]
    bad = client.get("/api/v3/exchangeInfo", params={"symbol": "NOPEUSDT"})
    assert (bad.status_code, bad.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})
    bad = client.get("/api/v3/exchangeInfo", params={"symbols": '["BTCUSDT","NOPE"]'})
    assert (bad.status_code, bad.json()["code"]) == (400, -1121)
    assert bad.headers["x-mbx-used-weight-1m"] == "80"  # rejected requests count too


def test_klines_row_shape(client: httpx.Client) -> None:
    start = 1_600_000_000_000 // 60_000 * 60_000
    r = client.get(
        "/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "startTime": start, "limit": 3}
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["x-mbx-used-weight-1m"] == "2"
    rows = r.json()
    assert len(rows) == 3
    for i, row in enumerate(rows):
        assert len(row) == 12
        assert [type(v) for v in row] == [int, str, str, str, str, str, int, str, int, str, str, str]
        assert row[0] == start + i * 60_000 and row[6] == row[0] + 59_999 and row[11] == "0"
        for text in row[1:6] + row[7:8] + row[9:11]:
            whole, _, frac = text.partition(".")
            assert whole.isdigit() and len(frac) == 8 and frac.isdigit(), text
    assert rows[1][1] == rows[0][4]  # open = previous close
    assert b'"0"]' in r.content and b", " not in r.content  # compact JSON like Binance


@pytest.mark.parametrize(
    ("params", "body"),
    [
        ({"interval": "1m"}, {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}),
        ({"symbol": "", "interval": "1m"}, {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}),
        ({"symbol": "BTCUSDT"}, {"code": -1102, "msg": "Mandatory parameter 'interval' was not sent, was empty/null, or malformed."}),
        ({"symbol": "BTCUSDT", "interval": "1x"}, {"code": -1120, "msg": "Invalid interval."}),
        ({"symbol": "BTCUSDT", "interval": "1H"}, {"code": -1120, "msg": "Invalid interval."}),
        ({"symbol": "NOPEUSDT", "interval": "1m"}, {"code": -1121, "msg": "Invalid symbol."}),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": "1001"}, {"code": -1130, "msg": "Invalid data sent for a parameter."}),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": "0"}, {"code": -1130, "msg": "Invalid data sent for a parameter."}),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": "ten"}, {"code": -1100, "msg": "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'."}),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": "-5"}, {"code": -1100, "msg": "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'."}),
        ({"symbol": "BTCUSDT", "interval": "1m", "startTime": "1.5e12"}, {"code": -1100, "msg": "Illegal characters found in parameter 'startTime'; legal range is '^[0-9]{1,20}$'."}),
    ],
)  # fmt: skip
def test_klines_errors(client: httpx.Client, params: dict[str, str], body: dict[str, object]) -> None:
    r = client.get("/api/v3/klines", params=params)
    assert (r.status_code, r.json()) == (400, body)
    assert r.headers["x-mbx-used-weight-1m"] == "2"
    assert r.headers["content-type"] == "application/json"


def test_limit_bounds_and_default(client: httpx.Client) -> None:
    params = {"symbol": "ETHUSDT", "interval": "1m", "startTime": 1_600_000_000_000}
    assert len(client.get("/api/v3/klines", params=params).json()) == 500
    assert len(client.get("/api/v3/klines", params={**params, "limit": 1000}).json()) == 1000
    assert len(client.get("/api/v3/klines", params={**params, "limit": 1}).json()) == 1


def test_unknown_path_and_method(client: httpx.Client) -> None:
    r = client.get("/api/v3/nonexistent")
    assert r.status_code == 404 and r.json()["code"] == -1000 and "/api/v3/nonexistent" in r.json()["msg"]
    assert r.headers["x-mbx-used-weight-1m"] == "1" and r.headers["content-type"] == "application/json"
    r = client.post("/api/v3/klines")
    assert r.status_code == 405 and r.json()["code"] == -1000


def test_unserved_interval_and_huge_times(client: httpx.Client) -> None:
    r = client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1w"})
    assert r.status_code == 400 and r.json()["code"] == -1120
    assert r.json()["msg"].startswith("Invalid interval.") and "'1w'" in r.json()["msg"]
    huge = "99999999999999999999"
    r = client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "startTime": huge})
    assert (r.status_code, r.json()) == (200, [])
    r = client.get(
        "/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1h", "endTime": huge, "limit": 2}
    )
    assert r.status_code == 200 and r.json()[-1][6] > time.time() * 1000  # the open hour
