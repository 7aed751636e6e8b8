"""GET /api/v3/aggTrades of the simulator: selection semantics, and trades that add up to the klines."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from warehouse_assets.simulator.testing import run_simulator

SPOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "binance_vision" / "spot"
DAY_MS = 86_400_000
DAY = 18_687 * DAY_MS  # 2021-03-01
MICRO = {"X-MBX-TIME-UNIT": "MICROSECOND"}


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with run_simulator(symbols=["BTCUSDT", "XRPUSDT"]) as sim, httpx.Client(base_url=sim.base_url) as c:
        yield c


def trades(
    client: httpx.Client, headers: dict[str, str] | None = None, **params: Any
) -> list[dict[str, Any]]:
    response = client.get("/api/v3/aggTrades", params=params, headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["x-mbx-used-weight-1m"]
    rows: list[dict[str, Any]] = response.json()
    return rows


def day_trades(client: httpx.Client, symbol: str, day_ms: int) -> list[dict[str, Any]]:
    """Every aggregate trade of a UTC day, paginated by fromId."""
    rows = trades(client, symbol=symbol, startTime=day_ms, limit=1)
    while rows[-1]["T"] < day_ms + DAY_MS:
        rows += trades(client, symbol=symbol, fromId=rows[-1]["a"] + 1, limit=1000)
    return [r for r in rows if r["T"] < day_ms + DAY_MS]


@pytest.mark.parametrize("symbol", ["BTCUSDT", "XRPUSDT"])
def test_trades_aggregate_to_every_kline(client: httpx.Client, symbol: str) -> None:
    rows = day_trades(client, symbol, DAY)
    assert [r["a"] for r in rows] == list(range(rows[0]["a"], rows[0]["a"] + len(rows)))
    assert all(b["f"] == a["l"] + 1 and b["T"] >= a["T"] for a, b in zip(rows, rows[1:], strict=False))
    by_minute: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_minute.setdefault(row["T"] // 60_000 * 60_000, []).append(row)
    klines: list[list[Any]] = []
    for start in (DAY, DAY + 1000 * 60_000):
        params = {"symbol": symbol, "interval": "1m", "startTime": start, "endTime": DAY + DAY_MS - 1, "limit": 1000}  # fmt: skip
        klines += client.get("/api/v3/klines", params=params).json()
    assert len(klines) == 1440
    previous_close = None
    for k in klines:
        minute = by_minute.get(k[0], [])
        if not minute:  # Binance's flat kline: no trades, prices at the previous close
            assert Decimal(k[5]) == 0 and k[8] == 0 and k[1] == k[2] == k[3] == k[4] == previous_close
            previous_close = k[4]
            continue
        prices = [Decimal(r["p"]) for r in minute]
        qtys = [Decimal(r["q"]) for r in minute]
        takers = [(p, q) for p, q, r in zip(prices, qtys, minute, strict=True) if not r["m"]]
        assert Decimal(k[1]) == prices[0] and Decimal(k[4]) == prices[-1], k
        assert Decimal(k[2]) == max(prices) and Decimal(k[3]) == min(prices)
        assert Decimal(k[5]) == sum(qtys)
        assert Decimal(k[7]) == sum(p * q for p, q in zip(prices, qtys, strict=True))
        assert k[8] == sum(r["l"] - r["f"] + 1 for r in minute)
        assert Decimal(k[9]) == sum(q for _, q in takers)
        assert Decimal(k[10]) == sum(p * q for p, q in takers)
        previous_close = k[4]
    assert 20 * 1440 < len(rows) < 200 * 1440


def test_ids_run_on_across_midnight(client: httpx.Client) -> None:
    rows = trades(client, symbol="BTCUSDT", startTime=DAY - 5_000, endTime=DAY + 5_000, limit=1000)
    assert rows[0]["T"] < DAY <= rows[-1]["T"]
    for a, b in zip(rows, rows[1:], strict=False):
        assert b["a"] == a["a"] + 1 and b["f"] == a["l"] + 1
    again = trades(client, symbol="BTCUSDT", fromId=rows[0]["a"], limit=len(rows))
    assert again == rows


def test_window_newest_and_microseconds(client: httpx.Client) -> None:
    window = trades(client, symbol="XRPUSDT", startTime=DAY + 600_000, endTime=DAY + 600_999, limit=1000)
    assert all(DAY + 600_000 <= r["T"] <= DAY + 600_999 for r in window)
    micro = trades(client, MICRO, symbol="XRPUSDT", startTime=DAY + 600_000, endTime=DAY + 600_999)
    assert [r["T"] // 1000 for r in micro] == [r["T"] for r in window] and micro[0]["T"] > 10**15
    newest = trades(client, symbol="XRPUSDT")
    assert len(newest) == 500 and newest[-1]["a"] - newest[0]["a"] == 499
    before = trades(client, symbol="XRPUSDT", endTime=DAY - 1, limit=3)
    assert [r["a"] for r in before] == [before[0]["a"] + i for i in range(3)] and before[-1]["T"] < DAY
    assert trades(client, symbol="XRPUSDT", fromId=before[-1]["a"] + 1, limit=1)[0]["T"] >= DAY
    assert trades(client, symbol="XRPUSDT", startTime=DAY + 10, endTime=DAY) == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, -1102),
        ({"symbol": "DOGEUSDT"}, -1121),
        ({"symbol": "BTCUSDT", "limit": "1001"}, -1130),
        ({"symbol": "BTCUSDT", "limit": "0"}, -1130),
        ({"symbol": "BTCUSDT", "fromId": "x"}, -1100),
        ({"symbol": "BTCUSDT", "fromId": "1", "startTime": str(DAY)}, -1128),
    ],
)
def test_errors(client: httpx.Client, params: dict[str, str], code: int) -> None:
    response = client.get("/api/v3/aggTrades", params=params)
    assert response.status_code == 400 and response.json()["code"] == code


def test_weight_is_four(client: httpx.Client) -> None:
    first = client.get("/api/v3/aggTrades", params={"symbol": "BTCUSDT", "limit": 1})
    second = client.get("/api/v3/aggTrades", params={"symbol": "BTCUSDT", "limit": 1})
    used = [int(r.headers["x-mbx-used-weight-1m"]) for r in (first, second)]
    assert used[1] - used[0] == 4


def test_archive_mode_serves_the_file_strings() -> None:
    files = sorted((SPOT / "aggTrades").glob("BTCUSDT-aggTrades-*.csv"))
    if not files:
        pytest.fail(
            f"the shared sample data is not at {SPOT}: run the tests from a checkout with ../shared beside it"
        )
    lines = [line.split(",") for line in files[0].read_text().splitlines()]
    with run_simulator(archive_dir=SPOT) as sim, httpx.Client(base_url=sim.base_url) as c:
        first = trades(c, symbol="BTCUSDT", fromId=int(lines[0][0]), limit=1000)
        micro = trades(c, MICRO, symbol="BTCUSDT", fromId=int(lines[0][0]), limit=1000)
        newest = trades(c, symbol="BTCUSDT", limit=10)
        window = trades(c, symbol="BTCUSDT", startTime=int(lines[10][5]) // 1000, limit=5)
    for row, fields, row_us in zip(first, lines, micro, strict=False):
        assert [str(row["a"]), row["p"], row["q"], str(row["f"]), str(row["l"])] == fields[:5]
        assert row_us["T"] == int(fields[5]) and row["T"] == int(fields[5]) // 1000
        assert row["m"] == (fields[6] == "True") and row["M"] == (fields[7] == "True")
    assert len(first) == 1000 and [r["a"] for r in newest] == [int(f[0]) for f in lines[-10:]]
    assert window[0]["T"] >= int(lines[10][5]) // 1000 and window[0]["a"] <= int(lines[10][0])
