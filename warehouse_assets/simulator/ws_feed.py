"""Live synthetic streams of one symbol: <s>@aggTrade, <s>@trade and <s>@kline_1m, driven by the clock.

Natural mode: the aggregate trades are exactly TradeGenerator's (the ones REST /api/v3/aggTrades
and the archive files serve): same ids, price and quantity strings and times, each sent once, in id
order, as soon as the clock passes its time (E = the send time, so E >= T). A feed starts when its
first listener arrives, from "now": no trade at or before that moment is sent. `trade` events
expand each aggregate trade into its trades f..l (same price, time and side; the quantity split
exactly as ws_wire.split_quantity documents). kline_1m: every 2 s (on the even seconds inside the
minute) an x:false event with the minute's running values, i.e. the aggregation of its trades up to
now (trades before the feed started included); at the minute's end one x:true event whose values
are the aggregation of all the minute's trades, which equals the REST kline of that minute. A
minute without trades so far is flat at the previous close with n 0 and f = L = -1 (inferred).

Rate mode (POST /_sim/ws {"agg_trade_rate": N}): N aggTrade messages per second per symbol instead
of the natural flow, for benchmarks. Ids continue contiguously from the natural next ids; prices,
quantities, sides and trade counts cycle through 4096 natural trades around the switch; T = E =
the send time of the batch (batches every few ms). The trade and kline streams follow these
trades. REST and the archives do not hold them: they are for load, not for reconciliation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import numpy as np

from warehouse_assets.simulator import clock
from warehouse_assets.simulator.market import OPEN, SyntheticMarket
from warehouse_assets.simulator.trades import DAY_US, MINUTE_US, TradeDay, TradeGenerator
from warehouse_assets.simulator.ws_kline import MinuteKline, next_push_us
from warehouse_assets.simulator.ws_rate import RateState
from warehouse_assets.simulator.ws_wire import (
    AGG_TRADE,
    TRADE,
    Chunk,
    decimal,
    js_bool,
    split_quantity,
)

if TYPE_CHECKING:
    from warehouse_assets.simulator.ws_session import Session

log = logging.getLogger(__name__)
MAX_SLEEP_S = 0.5
PREFETCH_US = 60_000_000  # build the next day's trades in a worker thread this long before midnight


class FeedHost(Protocol):
    """What a feed needs from the hub."""

    @property
    def agg_trade_rate(self) -> float: ...

    def publish(self, sessions: Iterable[Session], chunks: list[Chunk]) -> None: ...


class SymbolFeed:
    """The live streams of one symbol, shared by every connection listening to them."""

    def __init__(self, symbol: str, market: SyntheticMarket, host: FeedHost) -> None:
        self.symbol = symbol
        self.market = market
        self.host = host
        spec = market.specs[symbol]
        self.tick, self.lot = spec.tick_e8, spec.lot_e8
        self.generator = TradeGenerator(market, cache_days=3)  # private: days are built off the loop thread
        lower = symbol.lower()
        self.names = {kind: f"{lower}@{kind}" for kind in ("aggTrade", "trade", "kline_1m")}
        self.listeners: dict[str, set[Session]] = {kind: set() for kind in self.names}
        self.task: asyncio.Task[None] | None = None
        self._next_day: tuple[int, asyncio.Future[TradeDay]] | None = None

    # ---- listeners -------------------------------------------------------------------------
    def add(self, session: Session, kind: str) -> None:
        self.listeners[kind].add(session)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run(), name=f"ws feed {self.symbol}")
            self.task.add_done_callback(self._finished)

    def remove(self, session: Session, kind: str) -> None:
        self.listeners[kind].discard(session)
        if not any(self.listeners.values()):
            self.stop()

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None
        self._next_day = None

    def restart(self) -> None:
        """Start again from now (after a clock or rate change)."""
        self.stop()
        sessions = self.sessions()
        if sessions:
            self.task = asyncio.get_running_loop().create_task(self._run(), name=f"ws feed {self.symbol}")
            self.task.add_done_callback(self._finished)

    def sessions(self) -> set[Session]:
        return set().union(*self.listeners.values())

    def _finished(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "the %s stream feed stopped (its streams stay silent)", self.symbol, exc_info=task.exception()
            )

    def _wants(self, kind: str) -> tuple[bool, bool]:
        """(any listener wants ms, any wants us) for a stream kind."""
        forms = {s.micro for s in self.listeners[kind]}
        return False in forms, True in forms

    # ---- the loop --------------------------------------------------------------------------
    async def _day(self, epoch_day: int) -> TradeDay:
        """A day's trades, built in a worker thread (2M trades take about a second)."""
        pending, self._next_day = self._next_day, None
        if pending is not None and pending[0] == epoch_day:
            return await pending[1]
        return await asyncio.to_thread(self.generator.day, self.symbol, epoch_day)

    def _prefetch(self, epoch_day: int) -> None:
        if self._next_day is None:
            job = asyncio.to_thread(self.generator.day, self.symbol, epoch_day)
            self._next_day = (epoch_day, asyncio.ensure_future(job))

    def _open_price(self, open_us: int) -> int:
        """A minute's open (= the previous close when it has no trades) from the day's klines."""
        epoch_day, minute = divmod(open_us // MINUTE_US, 1440)
        return int(self.market.day(self.symbol, int(epoch_day))[minute, OPEN])

    async def _run(self) -> None:
        now = clock.now_us()
        epoch_day = now // DAY_US
        day = await self._day(epoch_day)
        now = clock.now_us()
        minute_us = now // MINUTE_US * MINUTE_US
        kline = MinuteKline.flat(minute_us, self._open_price(minute_us))
        cursor = int(np.searchsorted(day.times_us, now, side="right"))
        rate = self.host.agg_trade_rate
        rate_state = RateState.start(self.symbol, day, cursor, now, rate) if rate > 0 else None
        if rate_state is None:
            first = int(np.searchsorted(day.times_us, minute_us, side="left"))
            kline.add(day.prices_e8[first:cursor], day.qtys_e8[first:cursor], day.first_ids[first:cursor],
                      day.last_ids[first:cursor], day.buyer_maker[first:cursor], self.tick, self.lot)  # fmt: skip
        next_push = next_push_us(now)
        while True:
            now = clock.now_us()
            chunks: list[Chunk] = []
            if rate_state is not None:
                kline = self._rate_batch(rate_state, now, kline, chunks)
            else:
                while True:
                    end = int(np.searchsorted(day.times_us, now, side="right"))
                    kline = self._natural(day, cursor, end, now, kline, chunks)
                    cursor = end
                    if end < len(day.times_us) or now < (epoch_day + 1) * DAY_US:
                        break
                    epoch_day += 1
                    day, cursor = await self._day(epoch_day), 0
                if now > (epoch_day + 1) * DAY_US - PREFETCH_US:
                    self._prefetch(epoch_day + 1)
            while now >= kline.open_us + MINUTE_US:
                kline = self._close(kline, now, chunks)
            if now >= next_push:
                self._kline_chunk(kline, now, False, chunks)
                next_push = next_push_us(now)
            if chunks:
                self.host.publish(self.sessions(), chunks)
            if rate_state is not None:
                wake = now + max(2_000, int(1e6 / rate_state.rate))
            else:
                wake = int(day.times_us[cursor]) if cursor < len(day.times_us) else (epoch_day + 1) * DAY_US
            wake = min(wake, next_push, kline.open_us + MINUTE_US)
            await asyncio.sleep(min(max((wake - clock.now_us()) / 1e6, 0.0005), MAX_SLEEP_S))

    def _close(self, kline: MinuteKline, now: int, chunks: list[Chunk]) -> MinuteKline:
        """Emit the x:true event of `kline` and return the next minute's (flat) kline."""
        self._kline_chunk(kline, now, True, chunks)
        following = kline.open_us + MINUTE_US
        return MinuteKline.flat(following, self._open_price(following))

    def _kline_chunk(self, kline: MinuteKline, now: int, closed: bool, chunks: list[Chunk]) -> None:
        want_ms, want_us = self._wants("kline_1m")
        if want_ms or want_us:
            ms = [kline.payload(self.symbol, now, closed, False)] if want_ms else None
            us = [kline.payload(self.symbol, now, closed, True)] if want_us else None
            chunks.append(Chunk(self.names["kline_1m"], ms, us, [kline.open_us // 1000]))

    def _natural(self, day: TradeDay, start: int, end: int, now: int, kline: MinuteKline,
                 chunks: list[Chunk]) -> MinuteKline:  # fmt: skip
        """Publish the natural trades [start, end) of a day, closing klines at minute changes."""
        if start >= end:
            return kline
        minutes = day.times_us[start:end] // MINUTE_US
        cuts = [start, *(start + 1 + np.flatnonzero(np.diff(minutes))).tolist(), end]
        for i, j in zip(cuts, cuts[1:], strict=False):
            minute_us = int(day.times_us[i]) // MINUTE_US * MINUTE_US
            while kline.open_us < minute_us:
                kline = self._close(kline, now, chunks)
            columns = (day.prices_e8[i:j], day.qtys_e8[i:j], day.first_ids[i:j], day.last_ids[i:j],
                       day.buyer_maker[i:j])  # fmt: skip
            kline.add(*columns, self.tick, self.lot)
            rows = list(zip(day.agg_ids[i:j].tolist(), *(c.tolist() for c in columns[:4]),
                            day.times_us[i:j].tolist(), columns[4].tolist(), strict=True))  # fmt: skip
            self._agg_chunk(rows, now, chunks)
            self._trade_chunk(rows, now, chunks)
        return kline

    def _agg_chunk(self, rows: list[tuple[int, int, int, int, int, int, bool]], now: int,
                   chunks: list[Chunk]) -> None:  # fmt: skip
        """The aggTrade chunk of aggregate trades (a, price e8, qty e8, f, l, T us, m)."""
        symbol = self.symbol
        want_ms, want_us = self._wants("aggTrade")
        if want_ms or want_us:
            forms: dict[bool, list[str] | None] = {}
            for micro, wanted in ((False, want_ms), (True, want_us)):
                unit = 1 if micro else 1000
                forms[micro] = (
                    [AGG_TRADE % (now // unit, symbol, a, decimal(p), decimal(q), f, last, t // unit, js_bool(m))
                     for a, p, q, f, last, t, m in rows]
                    if wanted else None
                )  # fmt: skip
            chunks.append(Chunk(self.names["aggTrade"], forms[False], forms[True], [r[0] for r in rows]))

    def _trade_chunk(self, rows: list[tuple[int, int, int, int, int, int, bool]], now: int,
                     chunks: list[Chunk]) -> None:  # fmt: skip
        """The trade chunk: each aggregate trade expanded into its trades f..l."""
        symbol = self.symbol
        want_ms, want_us = self._wants("trade")
        if want_ms or want_us:
            expanded = []
            for _, p, q, f, last, t, m in rows:
                price, side = decimal(p), js_bool(m)
                for trade_id, part in zip(
                    range(f, last + 1), split_quantity(q, self.lot, last - f + 1), strict=True
                ):
                    expanded.append((trade_id, price, decimal(part), t, side))
            forms: dict[bool, list[str] | None] = {}
            for micro, wanted in ((False, want_ms), (True, want_us)):
                unit = 1 if micro else 1000
                forms[micro] = (
                    [TRADE % (now // unit, symbol, tid, price, part, t // unit, side)
                     for tid, price, part, t, side in expanded]
                    if wanted else None
                )  # fmt: skip
            chunks.append(Chunk(self.names["trade"], forms[False], forms[True], [e[0] for e in expanded]))

    # ---- rate mode -------------------------------------------------------------------------
    def _rate_batch(self, state: RateState, now: int, kline: MinuteKline, chunks: list[Chunk]) -> MinuteKline:
        """The rate-mode messages due by now (at most 100 ms worth: a lagging loop drops the debt)."""
        due_total = int((now - state.start_us) * state.rate / 1e6)
        due = due_total - state.sent
        due = min(due, max(1000, int(state.rate / 10)))
        state.sent = due_total
        if due <= 0:
            return kline
        while now >= kline.open_us + MINUTE_US:
            kline = self._close(kline, now, chunks)
        k = len(state.formats)
        index = (state.position + np.arange(due)) % k
        state.position = int(index[-1] + 1) % k
        sizes = state.sizes[index]
        firsts = state.next_trade + np.cumsum(sizes) - sizes
        lasts = firsts + sizes - 1
        aggs = state.next_agg + np.arange(due, dtype=np.int64)
        state.next_agg += due
        state.next_trade = int(lasts[-1]) + 1
        prices, qtys, maker = state.prices[index], state.qtys[index], state.maker[index]
        kline.add(prices, qtys, firsts, lasts, maker, self.tick, self.lot)
        want_ms, want_us = self._wants("aggTrade")
        if want_ms or want_us:
            ids = list(zip(index.tolist(), aggs.tolist(), firsts.tolist(), lasts.tolist(), strict=True))
            formats = state.formats
            forms: dict[bool, list[str] | None] = {}
            for micro, wanted in ((False, want_ms), (True, want_us)):
                event = now if micro else now // 1000
                forms[micro] = (
                    [formats[i] % (event, a, f, last, event) for i, a, f, last in ids] if wanted else None
                )
            chunks.append(
                Chunk(
                    self.names["aggTrade"], forms[False], forms[True], range(int(aggs[0]), int(aggs[-1]) + 1)
                )
            )
        if self.listeners["trade"]:
            rows: list[tuple[int, int, int, int, int, int, bool]] = list(zip(aggs.tolist(), prices.tolist(), qtys.tolist(), firsts.tolist(), lasts.tolist(),
                            [now] * due, maker.tolist(), strict=True))  # fmt: skip
            self._trade_chunk(rows, now, chunks)
        return kline
