"""WeightBudget arithmetic with an injected clock: windows on the server clock, edges, headers, pauses."""

from __future__ import annotations

import asyncio
import threading

import pytest

from warehouse_assets.lib.ratelimit import Reservation, WeightBudget, budget_for


class FakeClock:
    """A wall clock that only moves when someone sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def make_budget(
    clock: FakeClock, *, limit: int = 10, window_ms: int = 1000, guard_ms: float = 20.0
) -> WeightBudget:
    return WeightBudget(
        "test", limit=limit, window_ms=window_ms, guard_ms=guard_ms, clock=clock, sleep=clock.sleep
    )


def reserve(budget: WeightBudget, weight: int) -> Reservation:
    outcome = budget.try_reserve(weight)
    assert isinstance(outcome, Reservation), f"expected a reservation, got a wait of {outcome}"
    return outcome


def test_fills_the_window_then_waits_for_the_next_one_plus_guard() -> None:
    clock = FakeClock(100.5)
    budget = make_budget(clock)
    first = reserve(budget, 4)
    reserve(budget, 6)
    assert first.windows == (100_000,)
    # 10/10 used: wait until 101.000 s + 20 ms guard
    assert budget.try_reserve(1) == pytest.approx(0.52)
    clock.now = 101.019
    assert budget.try_reserve(1) == pytest.approx(0.001)  # still inside the guard, where W may still count
    clock.now = 101.021
    assert reserve(budget, 10).windows == (101_000,)
    stats = budget.stats()
    assert stats.weight_by_window == {100_000: 10, 101_000: 10}
    assert (stats.requests, stats.weight) == (3, 20)


def test_windows_follow_the_server_clock_not_ours() -> None:
    clock = FakeClock(200.9)
    budget = make_budget(clock)
    # Server is 300 ms ahead, measured with a 2 ms round trip: server time is 201.2 s, inside window 201 000.
    budget.observe_server_time(201_200.0, sent_at=200.899, received_at=200.901)
    assert budget.server_now_ms() == pytest.approx(201_200.0)
    assert reserve(budget, 10).windows == (201_000,)
    wait = budget.try_reserve(1)
    # next server window at 202 000 ms + guard 20 + uncertainty 1 = local 201.721
    assert wait == pytest.approx((202_021.0 - 201_200.0) / 1000.0)


def test_a_request_near_the_window_edge_counts_in_both_windows() -> None:
    clock = FakeClock(101.010)
    budget = make_budget(clock)
    assert reserve(budget, 1).windows == (100_000, 101_000)  # just after the edge: W-1 may still count it
    budget = make_budget(clock)
    clock.now = 100.990
    edge = reserve(budget, 3)
    assert edge.windows == (100_000, 101_000)
    assert budget.stats().used_by_window == {100_000: 3, 101_000: 3}
    assert budget.stats().weight_by_window == {100_000: 3}
    # The header of an edge request cannot be attributed to one window, so it is ignored.
    budget.observe_used_weight(edge, {1000: 9})
    assert budget.stats().used_by_window == {100_000: 3, 101_000: 3}


def test_requests_still_in_flight_are_not_forgotten_when_the_server_reports() -> None:
    clock = FakeClock(70.1)
    budget = make_budget(clock, limit=40, window_ms=2000)
    in_flight = [reserve(budget, 2) for _ in range(8)]
    # The first answer: another process spent 20 in this window, plus our first request.
    budget.observe_used_weight(in_flight[0], {2000: 22})
    assert budget.stats().used_by_window == {70_000: 36}  # not max(16, 22): 7 of ours are still in flight
    # Answers out of order: the third was admitted after the second, whose answer has not come yet,
    # so others may have spent up to 26 - 4 = 22 for all we know ...
    budget.observe_used_weight(in_flight[2], {2000: 26})
    assert budget.stats().used_by_window == {70_000: 38}
    assert budget.try_reserve(4) == pytest.approx(0.025)  # blocked, but look again soon
    # ... until the second answer arrives: exact again.
    budget.observe_used_weight(in_flight[1], {2000: 24})
    assert budget.stats().used_by_window == {70_000: 36}
    last = reserve(budget, 4)
    for answered, figure in zip([*in_flight[3:], last], [28, 30, 32, 34, 36, 40], strict=True):
        budget.observe_used_weight(answered, {2000: figure})
    assert budget.stats().used_by_window == {70_000: 40}
    assert budget.try_reserve(2) == pytest.approx(1.92)  # all answered and full: wait for the next window


def test_weight_spent_by_others_is_learned_from_the_used_weight_figure() -> None:
    clock = FakeClock(50.2)
    budget = make_budget(clock)
    first = reserve(budget, 2)
    budget.observe_used_weight(first, {1000: 8, 60_000: 500})  # another process spent 6
    assert budget.stats().used_by_window == {50_000: 8}
    second = reserve(budget, 2)
    assert isinstance(budget.try_reserve(1), float)
    budget.observe_used_weight(second, {1000: 10})
    assert budget.stats().used_by_window == {50_000: 10}
    budget.observe_used_weight(second, {60_000: 10})  # no figure for our window length: nothing learned
    assert budget.stats().used_by_window == {50_000: 10}


def test_rate_limit_pause_stops_every_caller_until_retry_after() -> None:
    clock = FakeClock(10.0)
    budget = make_budget(clock, limit=1000)
    assert budget.note_rate_limited(429, 3.0) == pytest.approx(3.02)
    assert budget.try_reserve(1) == pytest.approx(3.02)
    budget.note_rate_limited(418, 1.0)  # a shorter answer never shortens the pause
    assert budget.paused_for() == pytest.approx(3.02)
    clock.now = 13.03
    reserve(budget, 1)
    stats = budget.stats()
    assert (stats.status_429, stats.status_418) == (1, 1)
    assert budget.clock_sync_due()  # a refusal asks for a fresh clock sample


def test_rate_limit_without_retry_after_waits_for_the_next_window() -> None:
    clock = FakeClock(10.25)
    budget = make_budget(clock, limit=1000)
    assert budget.note_rate_limited(429, None) == pytest.approx(0.77)


def test_acquire_sleeps_and_counts_the_wait() -> None:
    clock = FakeClock(100.1)
    budget = make_budget(clock, limit=4, window_ms=2000)

    async def run() -> list[Reservation]:
        return [await budget.acquire(2) for _ in range(5)]

    reservations = asyncio.run(run())
    assert [r.windows[0] for r in reservations] == [100_000, 100_000, 102_000, 102_000, 104_000]
    stats = budget.stats()
    assert stats.waited_seconds == pytest.approx((102.02 - 100.1) + 2.0, abs=1e-6)
    assert stats.weight_by_window == {100_000: 4, 102_000: 4, 104_000: 2}


def test_saturating_callers_use_every_window_fully() -> None:
    clock = FakeClock(1_000.3)
    budget = make_budget(clock, limit=6000, window_ms=60_000)

    async def worker(count: int) -> None:
        for _ in range(count):
            await budget.acquire(2)

    async def run() -> None:
        await asyncio.gather(*(worker(2_000) for _ in range(8)))  # 32 000 weight

    asyncio.run(run())
    by_window = budget.stats().weight_by_window
    full_windows = sorted(by_window)[:-1]
    assert all(by_window[w] == 6000 for w in full_windows), by_window
    assert sum(by_window.values()) == 32_000


def test_a_request_heavier_than_the_whole_budget_is_an_error() -> None:
    budget = make_budget(FakeClock(1.0), limit=10)
    with pytest.raises(ValueError, match="weight 20 can never fit a budget of 10 per 1000 ms"):
        budget.try_reserve(20)


def test_configure_adopts_the_published_limit() -> None:
    clock = FakeClock(7.5)
    budget = make_budget(clock, limit=6000, window_ms=60_000)
    assert not budget.limits_known
    reserve(budget, 30)
    budget.configure(40, 2_000)
    assert budget.limits_known and (budget.limit, budget.window_ms) == (40, 2_000)
    assert reserve(budget, 40).windows == (6_000,)
    assert isinstance(budget.try_reserve(1), float)


def test_claims_let_one_caller_do_housekeeping() -> None:
    clock = FakeClock(1.0)
    budget = make_budget(clock)
    assert budget.try_claim("clock-sync")
    assert not budget.try_claim("clock-sync")
    budget.release("clock-sync")
    assert budget.try_claim("clock-sync", ttl_seconds=5)
    clock.now = 7.0  # an abandoned claim expires
    assert budget.try_claim("clock-sync")


def test_clock_sync_keeps_the_sample_with_the_shortest_round_trip() -> None:
    clock = FakeClock(100.0)
    budget = make_budget(clock)
    assert budget.clock_sync_due() and not budget.clock_synced
    budget.observe_server_time(100_050.0, sent_at=99.98, received_at=100.02)  # ±20 ms, offset +50
    budget.observe_server_time(100_005.0, sent_at=99.999, received_at=100.001)  # ±1 ms, offset +5
    budget.observe_server_time(100_090.0, sent_at=99.95, received_at=100.05)  # ±50 ms
    stats = budget.stats()
    assert stats.clock_offset_ms == pytest.approx(5.0)
    assert stats.clock_uncertainty_ms == pytest.approx(1.0)
    assert budget.clock_synced and not budget.clock_sync_due()
    clock.now = 160.1
    assert budget.clock_sync_due()


def test_threads_sharing_a_budget_never_lose_a_reservation() -> None:
    budget = WeightBudget("threads", limit=10**9, window_ms=3_600_000)

    def hammer() -> None:
        for _ in range(2_000):
            reserve(budget, 3)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = budget.stats()
    assert (stats.requests, stats.weight) == (16_000, 48_000)
    assert sum(stats.weight_by_window.values()) == 48_000


def test_one_budget_per_base_url() -> None:
    assert budget_for("http://127.0.0.1:1/") is budget_for("http://127.0.0.1:1")
    assert budget_for("http://127.0.0.1:1") is not budget_for("http://127.0.0.1:2")


def test_weight_spent_before_learning_the_window_is_recovered_from_the_header() -> None:
    clock = FakeClock(300.5)
    budget = make_budget(clock, limit=6000, window_ms=60_000)
    exchange_info = reserve(budget, 20)  # sent while we still assumed 6000 per minute
    budget.observe_used_weight(exchange_info, {2_000: 21})  # the answer speaks of a 2 s window
    assert budget.configure(40, 2_000)
    budget.observe_used_weight(exchange_info, {2_000: 21})
    assert budget.stats().used_by_window == {300_000: 21}
    reserve(budget, 18)
    assert isinstance(budget.try_reserve(2), float)  # 21 + 18 + 2 > 40
