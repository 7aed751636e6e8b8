"""Gap repair against the simulator over loopback and a real embedded ClickHouse: holes in klines and in
aggregate ids are found and filled exactly; what the exchange lacks is recorded once and not retried."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pyarrow as pa
import pytest

from warehouse_assets.lib import gap_repair, klines_store
from warehouse_assets.lib.binance.rest import BinanceRestClient
from warehouse_assets.lib.stream_flush import flush_frames
from warehouse_assets.lib.warehouse import Warehouse
from warehouse_assets.simulator.testing import SimulatorHandle, run_simulator
from warehouse_assets_tests.conftest import sql

START = 1_709_251_200_000 + 10 * 3_600_000  # 2024-03-01T10:00Z
END = START + 30 * 60_000  # half an hour


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with run_simulator(trades_per_day=20_000) as handle:
        yield handle


def rest(sim: SimulatorHandle) -> BinanceRestClient:
    return BinanceRestClient(sim.base_url, discover_rate_limits=False)


def frames_of(trades: pa.Table) -> list[bytes]:
    """The trades as the aggTrade stream sends them (µs times)."""
    out = []
    for t in trades.to_pylist():
        data = {"e": "aggTrade", "E": 0, "s": "BTCUSDT", "a": t["trade_id"], "p": str(t["price"]), "q": str(t["qty"]),
                "f": t["first_trade_id"], "l": t["last_trade_id"], "T": int(t["ts"].timestamp() * 1_000_000),
                "m": t["is_buyer_maker"], "M": True}  # fmt: skip
        out.append(json.dumps({"stream": "btcusdt@aggTrade", "data": data}).encode())
    return out


def stored_ids(wh: Warehouse) -> list[int]:
    with wh.session() as client:
        return [
            r[0]
            for r in client.query(
                sql(wh, "SELECT trade_id FROM ${database}.trades ORDER BY trade_id")
            ).result_rows
        ]


def test_holes_in_trades_and_klines_are_filled_exactly(sim: SimulatorHandle, warehouse: Warehouse) -> None:
    async def fetch() -> tuple[pa.Table, pa.Table]:
        async with rest(sim) as client:
            return await client.agg_trades("BTCUSDT", START * 1000, END * 1000), await client.kline_table(
                "BTCUSDT", START, END
            )

    trades, klines = asyncio.run(fetch())
    ids = trades.column("trade_id").to_pylist()
    assert len(ids) > 200
    # The stream missed two stretches of trades, and the klines of minutes 5..9 and 20 never arrived.
    kept = [i for i, a in enumerate(ids) if not (50 <= i < 70 or 150 <= i < 151)]
    minute = klines.column("open_time").cast(pa.int64())
    keep_minutes = [i for i in range(klines.num_rows) if not (5 <= i < 10 or i == 20)]
    with warehouse.session() as client:
        flush_frames(client, warehouse.database, frames_of(trades.take(kept)))
        klines_store.replace_window(
            client, warehouse.database, exchange="binance", symbol="BTCUSDT", start_ms=START, end_ms=END,
            klines=klines.take(keep_minutes), source="stream",
        )  # fmt: skip
        gaps = gap_repair.find_gaps(client, warehouse.database, symbol="BTCUSDT", start_ms=START, end_ms=END)
    assert gaps.trade_ids == 21 and len(gaps.trade_gaps) == 2
    assert gaps.missing_minutes == [
        (minute[5].as_py(), minute[9].as_py()),
        (minute[20].as_py(), minute[20].as_py()),
    ]

    async def run_repair() -> gap_repair.Repair:
        async with rest(sim) as client:
            return await gap_repair.repair(warehouse, client, gaps)

    repaired = asyncio.run(run_repair())
    assert (repaired.trades_filled, repaired.minutes_filled, repaired.exchange_gaps) == (21, 6, [])
    assert stored_ids(warehouse) == ids  # each trade once, contiguous
    with warehouse.session() as client:
        again = gap_repair.find_gaps(client, warehouse.database, symbol="BTCUSDT", start_ms=START, end_ms=END)
        count, volume = client.query(
            sql(warehouse, "SELECT count(), sum(volume) FROM ${database}.klines_1m")
        ).result_rows[0]
        candles = client.query(
            sql(warehouse, "SELECT sum(agg_trades) FROM ${database}.candles_1m")
        ).result_rows[0][0]
    assert (again.minutes, again.trade_ids) == (0, 0)
    assert count == 30 and volume == sum(klines.column("volume").to_pylist())
    # The candles of the repaired minutes were rebuilt; the newest minute has no candle: no later trade
    # has closed it (the stream builds a minute once, when it has closed).
    minutes = [t // 60_000_000 for t in trades.column("ts").cast(pa.int64()).to_pylist()]
    assert candles == sum(1 for m in minutes if m < minutes[-1]) < len(ids)


def test_what_the_exchange_lacks_is_recorded_once_and_not_retried(
    sim: SimulatorHandle, warehouse: Warehouse
) -> None:
    sim.reset()
    lacking = START + 12 * 60_000
    sim.set_faults(missing=[{"symbol": "BTCUSDT", "start": lacking, "end": lacking + 3 * 60_000}])
    try:
        with warehouse.session() as client:
            gaps = gap_repair.find_gaps(
                client, warehouse.database, symbol="BTCUSDT", start_ms=START, end_ms=END
            )
        assert gaps.minutes == 30  # nothing loaded yet

        async def run_repair() -> gap_repair.Repair:
            async with rest(sim) as client:
                return await gap_repair.repair(warehouse, client, gaps)

        repaired = asyncio.run(run_repair())
        assert (repaired.minutes_filled, repaired.minutes_exchange_gap) == (27, 3)
        assert repaired.exchange_gaps == [("klines", lacking, lacking + 2 * 60_000)]
        with warehouse.session() as client:
            again = gap_repair.find_gaps(
                client, warehouse.database, symbol="BTCUSDT", start_ms=START, end_ms=END
            )
        assert again.minutes == 0  # the exchange gap is known: not looked for again
    finally:
        sim.reset()
