"""Synthetic klines over HTTP: pagination semantics, the open kline, time units, determinism, invariants."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator

MIN = 60_000
DAY = 86_400_000
LISTING_BTC = 1_502_928_000_000  # 2017-08-17 00:00 UTC
DAY_2021_03_01 = 1_614_556_800_000


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with run_simulator(seed=42) as handle:
        yield handle


@pytest.fixture
def client(sim: SimulatorHandle) -> Iterator[httpx.Client]:
    sim.reset()
    with httpx.Client(base_url=sim.base_url, timeout=10) as c:
        yield c


def klines(client: httpx.Client, headers: dict[str, str] | None = None, **params: object) -> list[list]:
    r = client.get(
        "/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", **params}, headers=headers
    )
    assert r.status_code == 200, r.text
    return r.json()


def whole_day(client: httpx.Client, symbol: str, day_ms: int) -> list[list]:
    first = klines(client, symbol=symbol, startTime=day_ms, limit=1000)
    rest = klines(client, symbol=symbol, startTime=first[-1][0] + 1, endTime=day_ms + DAY - 1, limit=1000)
    return first + rest


def test_start_time_gives_oldest_from_start(client: httpx.Client) -> None:
    start = DAY_2021_03_01 + 17 * MIN + 5  # not on a minute: the first kline opens at the next minute
    rows = klines(client, startTime=start, limit=10)
    assert [r[0] for r in rows] == [DAY_2021_03_01 + (18 + i) * MIN for i in range(10)]
    exact = klines(client, startTime=DAY_2021_03_01, limit=2)
    assert exact[0][0] == DAY_2021_03_01  # startTime is inclusive


def test_start_and_end_are_inclusive_and_limit_caps(client: httpx.Client) -> None:
    end = DAY_2021_03_01 + 4 * MIN
    rows = klines(client, startTime=DAY_2021_03_01, endTime=end)
    assert [r[0] for r in rows] == [DAY_2021_03_01 + i * MIN for i in range(5)]
    capped = klines(client, startTime=DAY_2021_03_01, endTime=DAY_2021_03_01 + DAY, limit=3)
    assert [r[0] for r in capped] == [DAY_2021_03_01 + i * MIN for i in range(3)]
    assert klines(client, startTime=end, endTime=DAY_2021_03_01) == []  # start after end: nothing


def test_only_end_time_gives_newest_up_to_end(client: httpx.Client) -> None:
    end = DAY_2021_03_01 + 100 * MIN + 30_000  # inside the 100th minute: that kline opened before endTime
    rows = klines(client, endTime=end, limit=5)
    assert [r[0] for r in rows] == [DAY_2021_03_01 + (96 + i) * MIN for i in range(5)]


def test_pages_chain_without_gaps_or_overlap(client: httpx.Client) -> None:
    page1 = klines(client, startTime=DAY_2021_03_01, limit=1000)
    page2 = klines(client, startTime=page1[-1][0] + 1, limit=1000)
    opens = [r[0] for r in page1 + page2]
    assert opens == [DAY_2021_03_01 + i * MIN for i in range(2000)]
    assert page2[0][1] == page1[-1][4]  # continuous across pages and across midnight


def test_nothing_before_listing(client: httpx.Client) -> None:
    assert klines(client, startTime=LISTING_BTC - 10 * DAY, endTime=LISTING_BTC - 1) == []
    assert klines(client, endTime=LISTING_BTC - 1) == []
    first = klines(client, startTime=0, limit=2)
    assert first[0][0] == LISTING_BTC
    sol = klines(client, symbol="SOLUSDT", startTime=0, limit=1)
    assert sol[0][0] == 1_597_104_000_000  # 2020-08-11


def test_newest_kline_is_still_open(client: httpx.Client) -> None:
    before = int(time.time() * 1000)
    rows = klines(client, limit=3)
    after = int(time.time() * 1000)
    last = rows[-1]
    assert last[0] in (before // MIN * MIN, after // MIN * MIN)
    assert last[6] == last[0] + MIN - 1 and last[6] > before  # closes in the future: clients must drop it
    assert rows[-2][0] == last[0] - MIN and rows[-2][6] < after
    assert Decimal(last[3]) <= min(Decimal(last[1]), Decimal(last[4])) <= Decimal(last[2])
    # the open hour holds the closed minutes of the hour so far (plus part of the current one)
    before = int(time.time() * 1000)
    hour = klines(client, interval="1h", limit=1)[0]
    now = int(time.time() * 1000)
    assert hour[0] in (before // 3_600_000 * 3_600_000, now // 3_600_000 * 3_600_000) and hour[6] > before
    minutes = klines(client, startTime=hour[0], endTime=now, limit=60)
    closed = [m for m in minutes if m[6] < now]
    assert Decimal(hour[5]) >= sum(Decimal(m[5]) for m in closed)
    if closed:
        assert hour[1] == closed[0][1]
        assert Decimal(hour[2]) >= max(Decimal(m[2]) for m in closed)


def test_micro_header_gives_same_klines_in_microseconds(client: httpx.Client) -> None:
    ms_rows = klines(client, startTime=DAY_2021_03_01, limit=5)
    us_rows = klines(client, headers={"X-MBX-TIME-UNIT": "MICROSECOND"}, startTime=DAY_2021_03_01, limit=5)
    assert [r[0] for r in us_rows] == [r[0] * 1000 for r in ms_rows]
    assert [r[6] for r in us_rows] == [r[0] * 1000 + 59_999_999 for r in ms_rows]
    assert [r[1:6] + r[7:] for r in us_rows] == [r[1:6] + r[7:] for r in ms_rows]
    # startTime/endTime may be sent in microseconds whatever the answer's unit
    by_us = klines(client, startTime=DAY_2021_03_01 * 1000, endTime=(DAY_2021_03_01 + 4 * MIN) * 1000)
    assert by_us == ms_rows
    lower = klines(client, headers={"x-mbx-time-unit": "microsecond"}, startTime=DAY_2021_03_01, limit=5)
    assert lower == us_rows


def test_hour_klines_aggregate_minutes_exactly(client: httpx.Client) -> None:
    hour = klines(client, interval="1h", startTime=DAY_2021_03_01 + 3_600_000, limit=1)[0]
    minutes = klines(client, startTime=hour[0], limit=60)
    assert hour[6] == hour[0] + 3_600_000 - 1
    assert hour[1] == minutes[0][1] and hour[4] == minutes[-1][4]
    assert Decimal(hour[2]) == max(Decimal(m[2]) for m in minutes)
    assert Decimal(hour[3]) == min(Decimal(m[3]) for m in minutes)
    for i in (5, 7, 9, 10):
        assert Decimal(hour[i]) == sum(Decimal(m[i]) for m in minutes), i
    assert hour[8] == sum(m[8] for m in minutes)


def check_day(rows: list[list], tick: Decimal, lot: Decimal, day_ms: int) -> None:
    assert [r[0] for r in rows] == [day_ms + i * MIN for i in range(1440)]
    previous_close = None
    for r in rows:
        o, h, low, c, v, qv, tbb, tbq = (Decimal(r[i]) for i in (1, 2, 3, 4, 5, 7, 9, 10))
        assert r[6] == r[0] + MIN - 1
        assert low <= min(o, c) <= max(o, c) <= h, r
        assert low > 0
        assert previous_close is None or o == previous_close, r
        previous_close = c
        assert all(x % tick == 0 for x in (o, h, low, c)), r
        assert v >= 0 and v % lot == 0 and tbb % lot == 0 and tbb <= v, r
        half = Decimal("0.000000005")
        assert v * low - half <= qv <= v * h + half, r
        assert 0 <= tbq <= qv, r
        assert r[8] >= 0 and (r[8] == 0) == (v == 0), r
        if v == 0:
            assert o == h == low == c, r


def test_whole_day_invariants_and_seasonality(client: httpx.Client) -> None:
    for symbol, tick, lot in (("BTCUSDT", "0.01", "0.00001"), ("XRPUSDT", "0.0001", "1")):
        rows = whole_day(client, symbol, DAY_2021_03_01)
        check_day(rows, Decimal(tick), Decimal(lot), DAY_2021_03_01)
        next_day = klines(client, symbol=symbol, startTime=DAY_2021_03_01 + DAY, limit=1)[0]
        assert next_day[1] == rows[-1][4]
    # volume follows the UTC day: the US afternoon trades more than the Asian night (over a week)
    night, afternoon = Decimal(0), Decimal(0)
    for d in range(7):
        rows = whole_day(client, "ETHUSDT", DAY_2021_03_01 + d * DAY)
        night += sum(Decimal(r[5]) for r in rows[2 * 60 : 5 * 60])
        afternoon += sum(Decimal(r[5]) for r in rows[13 * 60 : 16 * 60])
    assert afternoon > Decimal("1.5") * night


def test_same_seed_same_bytes_other_seed_other_data(sim: SimulatorHandle) -> None:
    params = {"symbol": "ETHUSDT", "interval": "1m", "startTime": DAY_2021_03_01, "limit": 1000}
    ours = httpx.get(f"{sim.base_url}/api/v3/klines", params=params).content
    with run_simulator(seed=42) as twin, run_simulator(seed=7) as other:
        assert httpx.get(f"{twin.base_url}/api/v3/klines", params=params).content == ours
        different = httpx.get(f"{other.base_url}/api/v3/klines", params=params).json()
    assert (
        different[0][0] == DAY_2021_03_01
        and different != httpx.get(f"{sim.base_url}/api/v3/klines", params=params).json()
    )


def test_prices_are_plausible(client: httpx.Client) -> None:
    first = klines(client, startTime=LISTING_BTC, limit=1)[0]
    assert Decimal(first[1]) == Decimal("4300.00")  # the listing-day waypoint
    late_2021 = klines(client, startTime=1_636_502_400_000, limit=1)[0]  # 2021-11-10
    assert 50_000 < Decimal(late_2021[1]) < 90_000
