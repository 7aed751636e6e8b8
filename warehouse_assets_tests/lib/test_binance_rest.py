"""BinanceRestClient over real HTTP against the offline simulator: paging, open klines, ms/µs, real
archive data, 429/418 pauses shared by every caller, a tiny weight budget used fully without a 429,
5xx retries, unknown symbols and malformed rows."""

from __future__ import annotations

import asyncio
import csv
import json
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from warehouse_assets.lib.binance.rest import BinanceRestClient
from warehouse_assets.lib.errors import (
    ExchangeUnavailableError,
    MalformedKlineError,
    RateLimitedError,
    UnknownSymbolError,
)
from warehouse_assets.lib.ratelimit import WeightBudget, budget_for
from warehouse_assets.lib.records import Kline
from warehouse_assets.lib.retry import Backoff
from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator

MINUTE = 60_000
DAY = 86_400_000
# A fixed, long-closed stretch of the synthetic market, aligned to a day.
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ARCHIVE_DIR = SHARED_DATA / "binance_vision" / "spot"
EXTRACTED_CSV = SHARED_DATA / "binance_vision_extracted" / "spot" / "klines" / "BTCUSDT-1m-2020-01-01.csv"

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def fetch(base_url: str, symbol: str, start_ms: int, end_ms: int, **options: Any) -> list[Kline]:
    async with BinanceRestClient(base_url, **options) as client:
        return await client.klines(symbol, start_ms, end_ms)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with run_simulator() as handle:
        yield handle


@pytest.fixture()
def clean_sim(sim: SimulatorHandle) -> Iterator[SimulatorHandle]:
    sim.reset()
    yield sim
    sim.reset()


@pytest.fixture(scope="module")
def tiny_sim() -> Iterator[SimulatorHandle]:
    """40 weight per 2 s window: 20 klines requests per window."""
    with run_simulator(weight_limit=40, window_seconds=2) as handle:
        yield handle


def ready_budget() -> WeightBudget:
    """A private budget that already knows the limit and the clock, so no housekeeping request is sent."""
    budget = WeightBudget("private")
    budget.configure(6000, 60_000)
    now = time.time()
    budget.observe_server_time(now * 1000, now, now)
    return budget


def assert_contiguous(klines: list[Kline], first_open: int, count: int) -> None:
    opens = [k.open_time for k in klines]
    assert len(opens) == count
    assert opens == list(range(first_open, first_open + count * MINUTE, MINUTE))  # ordered, no duplicates
    assert all(k.close_time == k.open_time + MINUTE - 1 for k in klines)


# ------------------------------------------------------------------------------------------ paging


def test_range_of_many_pages_has_every_minute_once(clean_sim: SimulatorHandle) -> None:
    klines = run(fetch(clean_sim.base_url, "BTCUSDT", T0, T0 + 5037 * MINUTE))
    assert_contiguous(klines, T0, 5037)
    assert {k.symbol for k in klines} == {"BTCUSDT"}
    assert clean_sim.stats()["by_path"]["/api/v3/klines"] == 6  # 5 full pages of 1000, then 37


def test_range_not_aligned_to_minutes_or_pages(clean_sim: SimulatorHandle) -> None:
    start, end = T0 + 30_000, T0 + 2500 * MINUTE + 10_000
    klines = run(fetch(clean_sim.base_url, "ETHUSDT", start, end))
    # open times >= start: the first is T0 + 1 min; the kline opening at T0 + 2500 min is < end too
    assert_contiguous(klines, T0 + MINUTE, 2500)


def test_concurrency_and_chunking_do_not_change_the_answer(clean_sim: SimulatorHandle) -> None:
    start, end = T0 + 7 * MINUTE, T0 + 3333 * MINUTE

    async def both() -> tuple[list[Kline], list[Kline], list[list[Kline]]]:
        async with BinanceRestClient(clean_sim.base_url, max_in_flight=1) as one_at_a_time:
            sequential = await one_at_a_time.klines("SOLUSDT", start, end)
        async with BinanceRestClient(clean_sim.base_url, max_in_flight=8) as client:
            concurrent = await client.klines("SOLUSDT", start, end)
            chunks = [chunk async for chunk in client.iter_klines("SOLUSDT", start, end, chunk_minutes=1440)]
        return sequential, concurrent, chunks

    sequential, concurrent, chunks = run(both())
    assert_contiguous(sequential, start, 3326)
    assert concurrent == sequential
    assert [len(c) for c in chunks] == [1440, 1440, 446]
    assert [k for chunk in chunks for k in chunk] == sequential
    assert chunks[1][0].open_time == start + 1440 * MINUTE


def test_missing_minutes_are_not_invented(clean_sim: SimulatorHandle) -> None:
    gap_start, gap_end = T0 + 998 * MINUTE, T0 + 1003 * MINUTE  # across a page boundary
    clean_sim.set_faults(missing=[{"symbol": "BTCUSDT", "start": gap_start, "end": gap_end}])
    klines = run(fetch(clean_sim.base_url, "BTCUSDT", T0, T0 + 2000 * MINUTE))
    opens = [k.open_time for k in klines]
    assert len(opens) == 1995
    assert not [t for t in opens if gap_start <= t < gap_end]
    assert opens == sorted(set(opens))


def test_the_still_open_kline_is_dropped(clean_sim: SimulatorHandle) -> None:
    async def scenario() -> tuple[float, list[Kline], float]:
        async with BinanceRestClient(clean_sim.base_url) as client:
            before = await client.server_time()
            klines = await client.klines("BTCUSDT", int(before) - 30 * MINUTE, int(before) + 10 * MINUTE)
            after = await client.server_time()
            return before, klines, after

    before, klines, after = run(scenario())
    current_minutes = {int(before) // MINUTE * MINUTE, int(after) // MINUTE * MINUTE}
    assert klines[-1].open_time + MINUTE in current_minutes  # the newest closed one, not the open one
    assert klines[-1].close_time < after
    # The server does send the open kline: the client is what drops it.
    raw = httpx.get(
        f"{clean_sim.base_url}/api/v3/klines",
        params={"symbol": "BTCUSDT", "interval": "1m", "startTime": int(after) - 2 * MINUTE},
    ).json()
    assert raw[-1][6] >= after


def test_milliseconds_and_microseconds_give_identical_klines(clean_sim: SimulatorHandle) -> None:
    start, end = T0 + 123 * MINUTE + 1, T0 + 1500 * MINUTE
    in_ms = run(fetch(clean_sim.base_url, "XRPUSDT", start, end))
    in_us = run(fetch(clean_sim.base_url, "XRPUSDT", start, end, time_unit="MICROSECOND"))
    assert len(in_ms) == 1376
    assert in_us == in_ms
    # ... and the µs client really was answered in µs.
    raw = httpx.get(
        f"{clean_sim.base_url}/api/v3/klines",
        params={"symbol": "XRPUSDT", "interval": "1m", "startTime": start, "limit": 1},
        headers={"X-MBX-TIME-UNIT": "MICROSECOND"},
    ).json()
    assert raw[0][0] == in_ms[0].open_time * 1000 and raw[0][6] == in_ms[0].close_time * 1000 + 999


# ------------------------------------------------------------------------------------- real data


def test_real_archive_day_matches_the_published_csv() -> None:
    day = 1_577_836_800_000  # 2020-01-01
    with run_simulator(archive_dir=ARCHIVE_DIR) as archive_sim:
        klines = run(fetch(archive_sim.base_url, "BTCUSDT", day, day + DAY))
    with EXTRACTED_CSV.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 1440 and len(klines) == 1440
    for kline, row in zip(klines, rows, strict=True):
        expected = (
            int(row[0]), Decimal(row[1]), Decimal(row[2]), Decimal(row[3]), Decimal(row[4]), Decimal(row[5]),
            int(row[6]), Decimal(row[7]), int(row[8]), Decimal(row[9]), Decimal(row[10]),
        )  # fmt: skip
        got = (
            kline.open_time, kline.open, kline.high, kline.low, kline.close, kline.volume,
            kline.close_time, kline.quote_volume, kline.trades, kline.taker_buy_base_volume,
            kline.taker_buy_quote_volume,
        )  # fmt: skip
        assert got == expected
    # The exchange's digits, not a float's: Decimal(7195.24) would be 7195.2399999999998....
    assert klines[0].open == Decimal("7195.24") and klines[0].open != Decimal(7195.24)


# ------------------------------------------------------------------------------- rate limiting


def test_429_then_418_pause_every_caller_sharing_the_budget(clean_sim: SimulatorHandle) -> None:
    budget = budget_for(clean_sim.base_url)

    async def scenario() -> dict[str, float]:
        async with (
            BinanceRestClient(clean_sim.base_url) as first,
            BinanceRestClient(clean_sim.base_url) as second,
        ):
            await first.server_time()  # warm: clock and limits known, so the script hits klines
            await first.exchange_info(["BTCUSDT"])
            before = budget.stats()
            clean_sim.set_faults(
                script=[{"status": 429, "retry_after": 1}, {"status": 418, "retry_after": 1}]
            )
            started = time.monotonic()
            first_task = asyncio.create_task(first.klines("BTCUSDT", T0, T0 + 100 * MINUTE))
            while budget.paused_for() == 0:  # the first caller has been told 429
                await asyncio.sleep(0.005)
            second_started = time.monotonic()
            second_klines = await second.klines("ETHUSDT", T0, T0 + 100 * MINUTE)
            second_done = time.monotonic()
            first_klines = await first_task
            first_done = time.monotonic()
            assert len(first_klines) == len(second_klines) == 100
            after = budget.stats()
            return {
                "first_waited": first_done - started,
                "second_waited": second_done - second_started,
                "second_started_after": second_started - started,
                "429": after.status_429 - before.status_429,
                "418": after.status_418 - before.status_418,
                "budget_waited": after.waited_seconds - before.waited_seconds,
            }

    measured = run(scenario())
    print("429/418 pauses:", json.dumps(measured))
    assert (measured["429"], measured["418"]) == (1, 1)
    assert measured["first_waited"] >= 2.0  # Retry-After 1 s, twice
    # The second caller started while the first was paused, and waited for that pause too.
    assert measured["second_waited"] >= 1.0 - measured["second_started_after"]
    assert measured["second_started_after"] < 0.5
    assert measured["budget_waited"] >= 2.5
    assert clean_sim.stats()["status_counts"] == {
        "200": clean_sim.stats()["requests"] - 2,
        "429": 1,
        "418": 1,
    }


def test_tiny_budget_is_used_fully_by_two_threads_without_a_single_429(tiny_sim: SimulatorHandle) -> None:
    tiny_sim.reset()
    budget = budget_for(tiny_sim.base_url)
    before = budget.stats()
    results: dict[str, list[Kline]] = {}

    def backfill(symbol: str) -> None:  # each thread has its own event loop and client
        results[symbol] = run(fetch(tiny_sim.base_url, symbol, T0, T0 + 36_000 * MINUTE))

    threads = [threading.Thread(target=backfill, args=(s,)) for s in ("BTCUSDT", "BNBUSDT")]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    for symbol in ("BTCUSDT", "BNBUSDT"):
        assert_contiguous(results[symbol], T0, 36_000)
    stats = tiny_sim.stats()
    assert stats["status_counts"] == {"200": stats["requests"]}, stats["status_counts"]  # zero 429/418
    by_window = {int(w): weight for w, weight in stats["weight_by_window"].items()}
    windows = sorted(by_window)
    assert windows == list(range(windows[0], windows[-1] + 2000, 2000))  # no idle window in between
    full = windows[1:-1]
    utilisation = {w: by_window[w] / 40 for w in full}
    print("tiny budget:", json.dumps({"elapsed_s": round(elapsed, 2), "weight_by_window": by_window}))
    assert len(full) >= 3
    assert min(utilisation.values()) >= 0.9, by_window
    ours = budget.stats()
    # The shared budget counted exactly what the server counted.
    assert ours.weight - before.weight == sum(by_window.values())
    assert ours.requests - before.requests == stats["requests"]
    assert ours.status_429 == before.status_429


def test_weight_spent_by_another_process_is_respected(tiny_sim: SimulatorHandle) -> None:
    budget = budget_for(tiny_sim.base_url)
    tiny_sim.reset()
    # Start at the beginning of a fresh window so the other process's weight lands in it.
    now_ms = budget.server_now_ms()
    time.sleep((2000 - now_ms % 2000 + 50) / 1000)
    tiny_sim.set_faults(extra_weight=20)
    klines = run(fetch(tiny_sim.base_url, "XRPUSDT", T0, T0 + 30_000 * MINUTE))
    assert len(klines) == 30_000
    stats = tiny_sim.stats()
    assert stats["status_counts"] == {"200": stats["requests"]}, stats["status_counts"]
    by_window = {int(w): weight for w, weight in stats["weight_by_window"].items()}
    print("with 20 spent by another process:", json.dumps(by_window))
    assert max(by_window.values()) <= 40
    assert by_window[min(by_window)] >= 36  # the first window still filled up, 20 of it ours


def test_a_ban_longer_than_we_will_wait_fails_every_caller_fast(clean_sim: SimulatorHandle) -> None:
    budget = ready_budget()  # private: the pause must not leak into the other tests
    clean_sim.set_faults(script=[{"status": 418, "retry_after": 3600}])

    async def scenario() -> tuple[RateLimitedError, RateLimitedError, float]:
        started = time.monotonic()
        async with BinanceRestClient(clean_sim.base_url, budget=budget, max_pause_seconds=60) as client:
            with pytest.raises(RateLimitedError) as first:
                await client.klines("BTCUSDT", T0, T0 + 10 * MINUTE)
            with pytest.raises(RateLimitedError) as second:  # a later caller does not hang for an hour
                await client.klines("ETHUSDT", T0, T0 + 10 * MINUTE)
        return first.value, second.value, time.monotonic() - started

    first, second, elapsed = run(scenario())
    assert elapsed < 5
    assert (first.status, first.retry_after) == (418, 3600)
    assert "GET /api/v3/klines was refused with HTTP 418 (Retry-After 3600 s)" in str(first)
    assert "every request is paused for 3600 s" in str(second)
    assert budget.stats().status_418 == 1
    assert clean_sim.stats()["requests"] == 1


# ------------------------------------------------------------------------------------------- errors


def test_transient_5xx_are_retried(clean_sim: SimulatorHandle) -> None:
    expected = run(fetch(clean_sim.base_url, "BNBUSDT", T0, T0 + 1000 * MINUTE))

    async def scenario() -> list[Kline]:
        async with BinanceRestClient(clean_sim.base_url, backoff=Backoff(base=0.02, cap=0.2)) as client:
            await client.server_time()
            clean_sim.set_faults(fail_next=3)
            return await client.klines("BNBUSDT", T0, T0 + 1000 * MINUTE)

    assert run(scenario()) == expected
    stats = clean_sim.stats()
    assert stats["status_counts"]["503"] == 3


def test_too_many_failures_give_a_clear_error(clean_sim: SimulatorHandle) -> None:
    clean_sim.set_faults(fail_next=50)
    options = {"max_attempts": 3, "backoff": Backoff(base=0.01, cap=0.05)}
    with pytest.raises(ExchangeUnavailableError) as caught:
        run(fetch(clean_sim.base_url, "BTCUSDT", T0, T0 + 10 * MINUTE, budget=ready_budget(), **options))
    message = str(caught.value)
    assert "GET /api/v3/klines for symbol 'BTCUSDT' failed 3 times in a row (last: HTTP 503)" in message
    assert clean_sim.base_url in message and "retry later" in message
    assert clean_sim.stats()["status_counts"] == {"503": 3}


def test_unknown_symbol_names_the_symbol_and_the_setting(clean_sim: SimulatorHandle) -> None:
    fresh = WeightBudget("fresh")  # limits not known yet: the client asks exchangeInfo for this symbol
    with pytest.raises(UnknownSymbolError) as first_contact:
        run(fetch(clean_sim.base_url, "BTCUSD", T0, T0 + MINUTE, budget=fresh))
    assert str(first_contact.value) == (
        "symbol 'BTCUSD' is not listed on Binance spot (exchangeInfo); check WAREHOUSE_SYMBOLS"
    )
    with pytest.raises(UnknownSymbolError) as from_klines:  # limits known: /klines itself answers -1121
        run(fetch(clean_sim.base_url, "BTCUSD", T0, T0 + MINUTE))
    assert from_klines.value.symbol == "BTCUSD"
    assert "symbol 'BTCUSD' is not listed on Binance spot" in str(from_klines.value)
    assert "-1121" in str(from_klines.value) and "check WAREHOUSE_SYMBOLS" in str(from_klines.value)

    async def validate(symbols: list[str]) -> dict[str, Any]:
        async with BinanceRestClient(clean_sim.base_url) as client:
            return await client.validate_symbols(symbols)

    listed = run(validate(["ETHUSDT", "BTCUSDT"]))
    assert list(listed) == ["ETHUSDT", "BTCUSDT"]
    assert (listed["ETHUSDT"].base_asset, listed["ETHUSDT"].quote_asset) == ("ETH", "USDT")
    with pytest.raises(UnknownSymbolError) as from_list:
        run(validate(["BTCUSDT", "NOPEUSDT", "ETHUSDT"]))
    assert str(from_list.value) == (
        "symbol 'NOPEUSDT' is not listed on Binance spot (exchangeInfo); check WAREHOUSE_SYMBOLS"
    )


GOOD_ROW = [T0 + 1500 * MINUTE, "100.0", "110.0", "90.0", "105.0", "1.5", T0 + 1501 * MINUTE - 1,
            "150.0", 7, "0.5", "50.0", "0"]  # fmt: skip


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (GOOD_ROW[:5] + GOOD_ROW[6:], "row has 11 fields, expected 12"),
        (
            [*GOOD_ROW[:2], "abc", *GOOD_ROW[3:]],
            "field 'high' (index 2) is 'abc', not a decimal number string",
        ),
        ([*GOOD_ROW[:2], "80.0", *GOOD_ROW[3:]], "high 80.0 is below low 90.0"),
        ([*GOOD_ROW[:4], 105.0, *GOOD_ROW[5:]], "field 'close' (index 4) is 105.0 (a JSON float)"),
    ],
)
def test_malformed_rows_are_rejected_before_anything_is_returned(
    clean_sim: SimulatorHandle, row: list[Any], reason: str
) -> None:
    clean_sim.set_faults(kline_overrides=[{"symbol": "BTCUSDT", "open_time": T0 + 1500 * MINUTE, "row": row}])

    async def stream() -> tuple[list[list[Kline]], MalformedKlineError]:
        received: list[list[Kline]] = []
        async with BinanceRestClient(clean_sim.base_url) as client:
            chunks: AsyncIterator[list[Kline]] = client.iter_klines("BTCUSDT", T0, T0 + 3000 * MINUTE)
            with pytest.raises(MalformedKlineError) as caught:
                async for chunk in chunks:
                    received.append(chunk)
        return received, caught.value

    with pytest.raises(MalformedKlineError) as caught:
        run(fetch(clean_sim.base_url, "BTCUSDT", T0, T0 + 3000 * MINUTE))
    assert reason in caught.value.reason
    assert caught.value.symbol == "BTCUSDT"
    assert json.loads(caught.value.raw) == row
    received, error = run(stream())
    assert [len(chunk) for chunk in received] == [1000]  # the page holding the bad row is never yielded
    assert reason in error.reason


def test_a_long_backfill_keeps_the_server_clock_fresh(clean_sim: SimulatorHandle) -> None:
    budget = WeightBudget("resync", clock_sync_interval_seconds=0.05)

    async def slow_consumer() -> int:
        count = 0
        async with BinanceRestClient(clean_sim.base_url, budget=budget, max_in_flight=1) as client:
            async for chunk in client.iter_klines("BTCUSDT", T0, T0 + 5000 * MINUTE):
                count += len(chunk)
                await asyncio.sleep(0.06)  # longer than the sync interval
        return count

    assert run(slow_consumer()) == 5000
    # two samples at the start, then fresh ones while the pages were fetched
    assert clean_sim.stats()["by_path"]["/api/v3/time"] >= 4
