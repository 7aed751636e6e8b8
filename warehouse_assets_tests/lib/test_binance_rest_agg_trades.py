"""BinanceRestClient aggregate trades over real HTTP against the offline simulator: whole UTC days equal
the same days read from the simulator's data.binance.vision archive (ms archive in 2024, µs from 2025),
no trade asked for twice, µs window edges, and pages that do not continue each other rejected."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pyarrow as pa
import pytest

from warehouse_assets.lib.binance.archive import ArchiveClient
from warehouse_assets.lib.binance.rest import BinanceRestClient
from warehouse_assets.lib.errors import MalformedAggTradeError
from warehouse_assets.lib.ratelimit import WeightBudget
from warehouse_assets.lib.records import AGG_TRADE_SCHEMA
from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator

SYMBOL = "BTCUSDT"
DAY_US = 86_400_000_000
MS_ARCHIVE_DAY = date(2024, 3, 1)  # spot archives carry ms times before 2025 ...
US_ARCHIVE_DAY = date(2025, 3, 1)  # ... and µs from 2025-01-01 on
AGG_TRADES = "/api/v3/aggTrades"

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def day_start_us(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000


def ts_us(table: pa.Table) -> list[int]:
    return table.column("ts").cast(pa.int64()).to_pylist()


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with run_simulator(symbols=[SYMBOL], trades_per_day=10_000) as handle:
        yield handle


@pytest.fixture()
def clean_sim(sim: SimulatorHandle) -> Iterator[SimulatorHandle]:
    sim.reset()
    yield sim
    sim.reset()


@pytest.fixture(scope="module")
def archive_days(sim: SimulatorHandle) -> dict[date, pa.Table]:
    """The simulator's published archive days, read and checked by the library's archive client."""

    async def read() -> dict[date, pa.Table]:
        async with ArchiveClient(base_url=sim.base_url) as archive:
            days = (MS_ARCHIVE_DAY, US_ARCHIVE_DAY, US_ARCHIVE_DAY + timedelta(days=1))
            return {day: (await archive.daily_agg_trades(SYMBOL, day)).table for day in days}

    return run(read())


def ready_budget() -> WeightBudget:
    """A private budget that already knows the limit and the clock: no housekeeping requests."""
    budget = WeightBudget("private")
    budget.configure(6000, 60_000)
    now = time.time()
    budget.observe_server_time(now * 1000, now, now)
    return budget


class Recorder:
    """Every aggTrades request the client sends: its query parameters and time-unit header."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], str | None]] = []

    async def __call__(self, request: httpx.Request) -> None:
        if request.url.path == AGG_TRADES:
            self.requests.append((dict(request.url.params), request.headers.get("x-mbx-time-unit")))

    def attach(self, client: BinanceRestClient) -> None:
        client._http.event_hooks["request"].append(self)  # observe the real transport, change nothing


async def fetch(base_url: str, start_us: int, end_us: int, **options: Any) -> tuple[pa.Table, Recorder]:
    recorder = Recorder()
    async with BinanceRestClient(base_url, **options) as client:
        recorder.attach(client)
        table = await client.agg_trades(SYMBOL, start_us, end_us)
    return table, recorder


def assert_contiguous(table: pa.Table) -> None:
    ids = table.column("trade_id").to_pylist()
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    firsts, lasts = table.column("first_trade_id").to_pylist(), table.column("last_trade_id").to_pylist()
    assert all(f == previous + 1 for f, previous in zip(firsts[1:], lasts, strict=False))


# ------------------------------------------------------------------------------------ whole days


def test_a_2025_day_equals_the_microsecond_archive_and_asks_each_trade_once(
    clean_sim: SimulatorHandle, archive_days: dict[date, pa.Table]
) -> None:
    start = day_start_us(US_ARCHIVE_DAY)
    rest, recorder = run(fetch(clean_sim.base_url, start, start + DAY_US))
    archive = archive_days[US_ARCHIVE_DAY]
    assert archive.num_rows > 5_000
    assert rest.schema == AGG_TRADE_SCHEMA
    assert rest.equals(archive)  # row for row, value for value, ts to the microsecond
    assert_contiguous(rest)

    n = rest.num_rows
    requests = clean_sim.stats()["by_path"][AGG_TRADES]
    assert math.ceil(n / 1000) <= requests <= math.ceil(n / 1000) + 2
    assert len(recorder.requests) == requests
    # The window's oldest trades by time (inclusive ms bounds), then pages by fromId alone, 1000 apart.
    (first_params, _), *pages = recorder.requests
    assert first_params == {
        "symbol": SYMBOL,
        "startTime": str(start // 1000),
        "endTime": str((start + DAY_US - 1) // 1000),
        "limit": "1000",
    }
    first_id = rest.column("trade_id")[0].as_py()
    assert [params for params, _ in pages] == [
        {"symbol": SYMBOL, "fromId": str(first_id + 1000 * k), "limit": "1000"}
        for k in range(1, len(pages) + 1)
    ]
    assert {unit for _, unit in recorder.requests} == {"MICROSECOND"}  # although the client is in ms


def test_a_2024_day_equals_the_millisecond_archive(
    clean_sim: SimulatorHandle, archive_days: dict[date, pa.Table]
) -> None:
    start = day_start_us(MS_ARCHIVE_DAY)
    rest, _ = run(fetch(clean_sim.base_url, start, start + DAY_US, time_unit="MICROSECOND"))
    archive = archive_days[MS_ARCHIVE_DAY]
    assert rest.num_rows == archive.num_rows > 5_000
    for name in AGG_TRADE_SCHEMA.names:
        if name != "ts":
            assert rest.column(name).equals(archive.column(name)), name
    # The archive keeps ms (stored as ms x 1000); REST was asked for µs, so it agrees to the millisecond.
    rest_ts, archive_ts = ts_us(rest), ts_us(archive)
    assert [t // 1000 * 1000 for t in rest_ts] == archive_ts
    assert any(t % 1000 for t in rest_ts)  # REST did carry sub-millisecond digits
    assert_contiguous(rest)
    n = rest.num_rows
    assert math.ceil(n / 1000) <= clean_sim.stats()["by_path"][AGG_TRADES] <= math.ceil(n / 1000) + 2


def test_batches_and_concurrency_do_not_change_the_answer(
    sim: SimulatorHandle, archive_days: dict[date, pa.Table]
) -> None:
    start = day_start_us(US_ARCHIVE_DAY)

    async def batches() -> tuple[list[pa.Table], pa.Table]:
        async with BinanceRestClient(sim.base_url, max_in_flight=1) as client:
            tables = [
                t async for t in client.iter_agg_trades(SYMBOL, start, start + DAY_US, tables_of_pages=3)
            ]
        async with BinanceRestClient(sim.base_url, max_in_flight=16) as client:
            wide = await client.agg_trades(SYMBOL, start, start + DAY_US)
        return tables, wide

    tables, wide = run(batches())
    archive = archive_days[US_ARCHIVE_DAY]
    assert all(0 < t.num_rows <= 3000 for t in tables)
    assert len(tables) == math.ceil(archive.num_rows / 3000)
    assert pa.concat_tables(tables).equals(archive)
    assert wide.equals(archive)


# ------------------------------------------------------------------------------------ window edges


def test_window_across_midnight_with_microsecond_edges(
    clean_sim: SimulatorHandle, archive_days: dict[date, pa.Table]
) -> None:
    both = pa.concat_tables([archive_days[US_ARCHIVE_DAY], archive_days[US_ARCHIVE_DAY + timedelta(days=1)]])
    times = ts_us(both)
    # Start exactly on a trade (inclusive), end exactly on a later trade (exclusive), both mid-day.
    i = next(k for k, t in enumerate(times) if t >= day_start_us(US_ARCHIVE_DAY) + 20 * 3_600_000_000)
    j = next(k for k, t in enumerate(times) if t >= day_start_us(US_ARCHIVE_DAY) + 28 * 3_600_000_000)
    assert times[i - 1] < times[i] and times[j - 1] < times[j]
    rest, _ = run(fetch(clean_sim.base_url, times[i], times[j]))
    assert rest.equals(both.slice(i, j - i))
    assert rest.column("ts")[0].as_py().date() == US_ARCHIVE_DAY
    assert rest.column("ts")[-1].as_py().date() == US_ARCHIVE_DAY + timedelta(days=1)


def test_window_inside_one_millisecond_is_trimmed_to_the_microsecond(
    clean_sim: SimulatorHandle, archive_days: dict[date, pa.Table]
) -> None:
    archive = archive_days[US_ARCHIVE_DAY]
    times = ts_us(archive)
    # A trade alone in its window, whose millisecond (what startTime/endTime can say) is wider.
    k = next(
        k for k in range(1, len(times) - 1) if times[k - 1] < times[k] - 2 and times[k] + 2 < times[k + 1]
    )
    rest, _ = run(fetch(clean_sim.base_url, times[k] - 1, times[k] + 1))
    assert rest.equals(archive.slice(k, 1))
    empty, _ = run(fetch(clean_sim.base_url, times[k] + 1, times[k + 1]))
    assert empty.num_rows == 0 and empty.schema == AGG_TRADE_SCHEMA


def test_empty_window_yields_nothing_after_one_request(
    clean_sim: SimulatorHandle, archive_days: dict[date, pa.Table]
) -> None:
    times = ts_us(archive_days[US_ARCHIVE_DAY])
    gap = max(range(len(times) - 1), key=lambda k: times[k + 1] - times[k])  # the day's longest pause
    assert times[gap + 1] - times[gap] > 1_000  # wider than a millisecond

    async def windows() -> tuple[list[pa.Table], list[pa.Table]]:
        async with BinanceRestClient(clean_sim.base_url) as client:
            between = [t async for t in client.iter_agg_trades(SYMBOL, times[gap] + 1, times[gap + 1])]
            backwards = [t async for t in client.iter_agg_trades(SYMBOL, times[gap + 1], times[gap])]
        return between, backwards

    between, backwards = run(windows())
    assert between == [] and backwards == []
    assert clean_sim.stats()["by_path"][AGG_TRADES] == 1  # the backwards window asked nothing


# ------------------------------------------------------------------------------------ agg_trades_from


def test_agg_trades_from_tells_whether_an_archive_day_is_complete(
    sim: SimulatorHandle, archive_days: dict[date, pa.Table]
) -> None:
    archive = archive_days[US_ARCHIVE_DAY]
    first_id, last_id = archive.column("trade_id")[0].as_py(), archive.column("trade_id")[-1].as_py()

    async def pages() -> tuple[pa.Table, pa.Table, pa.Table, pa.Table]:
        async with BinanceRestClient(sim.base_url) as client:
            return (
                await client.agg_trades_from(SYMBOL, last_id + 1),
                await client.agg_trades_from(SYMBOL, first_id, limit=5),
                await client.agg_trades_from(SYMBOL, last_id, limit=2),
                await client.agg_trades_from(SYMBOL, 10**15),
            )

    after, head, across, beyond = run(pages())
    assert after.num_rows == 1 and after.column("trade_id")[0].as_py() == last_id + 1
    assert ts_us(after)[0] >= day_start_us(US_ARCHIVE_DAY) + DAY_US  # the day ended with last_id
    assert head.equals(archive.slice(0, 5))
    assert across.slice(0, 1).equals(archive.slice(archive.num_rows - 1, 1))
    assert across.column("trade_id").to_pylist() == [last_id, last_id + 1]
    assert beyond.num_rows == 0 and beyond.schema == AGG_TRADE_SCHEMA


def test_agg_trades_from_rejects_bad_arguments(sim: SimulatorHandle) -> None:
    async def ask(from_id: int, limit: int) -> pa.Table:
        async with BinanceRestClient(sim.base_url) as client:
            return await client.agg_trades_from(SYMBOL, from_id, limit)

    with pytest.raises(ValueError, match="limit must be in 1..1000"):
        run(ask(1, 1001))
    with pytest.raises(ValueError, match="non-negative"):
        run(ask(-1, 1))


# ------------------------------------------------------------------------------ pages that do not fit


def scripted_rows(first_id: int, count: int, first_trade_id: int, start_ms: int) -> list[dict[str, Any]]:
    return [
        {"a": first_id + k, "p": "100.5", "q": "1", "f": first_trade_id + k, "l": first_trade_id + k,
         "T": start_ms + k, "m": False, "M": True}
        for k in range(count)
    ]  # fmt: skip


def test_a_hole_in_the_exchange_ids_is_an_error_naming_them(clean_sim: SimulatorHandle) -> None:
    clean_sim.set_faults(script=[{"status": 200, "body": scripted_rows(503, 2, 900, 1_700_000_000_000)}])

    async def ask() -> pa.Table:
        async with BinanceRestClient(clean_sim.base_url, budget=ready_budget()) as client:
            return await client.agg_trades_from(SYMBOL, 500, limit=2)

    with pytest.raises(MalformedAggTradeError) as caught:
        run(ask())
    assert caught.value.reason == (
        "asked for fromId=500 but the answer starts at aggregate trade id 503: ids 500..502 are missing on "
        "the exchange (a hole in its ids)"
    )
    assert caught.value.raw.startswith('{"a":503,')


def test_a_page_that_breaks_the_trade_id_chain_stops_the_stream(clean_sim: SimulatorHandle) -> None:
    start_ms = 1_700_000_000_000
    first = scripted_rows(1, 1000, 10, start_ms)
    second = scripted_rows(1001, 1000, 1012, start_ms + 1000)  # trade ids 1010 and 1011 are missing
    clean_sim.set_faults(script=[{"status": 200, "body": first}, {"status": 200, "body": second}])

    async def stream() -> list[pa.Table]:
        tables: list[pa.Table] = []
        async with BinanceRestClient(clean_sim.base_url, max_in_flight=1, budget=ready_budget()) as client:
            async for table in client.iter_agg_trades(
                SYMBOL, start_ms * 1000, (start_ms + 10_000) * 1000, tables_of_pages=1
            ):
                tables.append(table)
        return tables

    with pytest.raises(MalformedAggTradeError) as caught:
        run(stream())
    assert caught.value.reason == (
        "first trade id 1012 of aggregate trade 1001 does not follow last trade id 1009 of aggregate "
        "trade 1000 (previous page): the trade-id chain is broken"
    )
    # Pages already in flight were cancelled or finished; nothing is left running against the simulator.
    assert clean_sim.stats()["by_path"][AGG_TRADES] <= 3
