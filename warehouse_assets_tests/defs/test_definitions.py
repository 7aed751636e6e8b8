"""The whole definitions object loads, and its shape is what the UI and backfills rely on."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from warehouse_assets.definitions import defs as load_defs
from warehouse_assets.defs.partitions import BINANCE_DAILY_BY_SYMBOL, days_by_symbol

KLINES = dg.AssetKey(["binance", "klines_1m"])


def test_definitions_load_with_the_klines_asset_checks_and_sensor() -> None:
    defs = load_defs()
    graph = defs.resolve_asset_graph()
    assert KLINES in graph.get_all_asset_keys()
    node = graph.get(KLINES)
    assert node.partitions_def == BINANCE_DAILY_BY_SYMBOL
    assert node.backfill_policy == dg.BackfillPolicy.multi_run(max_partitions_per_run=366)
    assert set(node.kinds) >= {"clickhouse"}
    assert node.owners == ["team:market-data"]
    assert {k.name for k in graph.asset_check_keys if k.asset_key == KLINES} == {
        "ohlc_invariants",
        "no_duplicate_minutes",
        "complete_days",
        "schema",
        "fresh",
    }
    blocking = {
        k.name for k in graph.asset_check_keys if k.asset_key == KLINES and graph.get_check_spec(k).blocking
    }
    assert blocking == {"ohlc_invariants", "no_duplicate_minutes", "schema"}  # they stop the aggregates
    assets_def = defs.resolve_assets_def(KLINES)
    assert {op.pool for op in assets_def.node_def.iterate_op_defs()} == {"binance_api"}
    assert {s.name for s in defs.sensors or []} >= {"register_binance_symbols"}
    assert set(defs.resources or {}) == {"warehouse", "binance"}


def test_trades_and_candles_share_the_partitions_and_candles_descend_from_trades() -> None:
    defs = load_defs()
    graph = defs.resolve_asset_graph()
    trades, candles = dg.AssetKey(["binance", "agg_trades"]), dg.AssetKey(["binance", "candles_1m"])
    for key in (trades, candles):
        node = graph.get(key)
        assert node.partitions_def == BINANCE_DAILY_BY_SYMBOL
        assert node.backfill_policy == dg.BackfillPolicy.multi_run(max_partitions_per_run=366)
    assert graph.get(candles).parent_keys == {trades}  # lineage: candles are built from trades
    assert {k.name for k in graph.asset_check_keys if k.asset_key == trades} == {
        "contiguous_ids",
        "trade_id_chain",
        "matches_klines",
    }
    assets_def = defs.resolve_assets_def(trades)
    assert assets_def.can_subset and assets_def.keys == {trades, candles}
    assert {op.pool for op in assets_def.node_def.iterate_op_defs()} == {"binance_api"}


def test_aggregates_descend_from_klines_and_follow_backfilled_days() -> None:
    graph = load_defs().resolve_asset_graph()
    hourly, daily = dg.AssetKey(["binance", "ohlcv_1h"]), dg.AssetKey(["binance", "ohlcv_1d"])
    assert graph.get(hourly).parent_keys == {KLINES} and graph.get(daily).parent_keys == {hourly}
    for key in (KLINES, hourly, daily):
        node = graph.get(key)
        assert node.partitions_def == BINANCE_DAILY_BY_SYMBOL
        assert isinstance(node.freshness_policy, dg.FreshnessPolicy)
    condition = graph.get(hourly).automation_condition
    assert "InLatestTimeWindowCondition" in str(dg.AutomationCondition.eager())
    assert condition is not None and "InLatestTimeWindowCondition" not in str(
        condition
    )  # backfills propagate
    assert {k.name for k in graph.asset_check_keys if k.asset_key in (hourly, daily)} == {
        "hours_match_minutes",
        "days_match_hours",
    }


def test_partitions_are_utc_days_from_the_start_date_by_registered_symbol() -> None:
    dims = {d.name: d.partitions_def for d in BINANCE_DAILY_BY_SYMBOL.partitions_defs}
    daily = dims["date"]
    assert isinstance(daily, dg.DailyPartitionsDefinition)
    assert daily.timezone == "UTC"
    assert daily.start.date() == date(2017, 8, 17)
    assert (
        isinstance(dims["symbol"], dg.DynamicPartitionsDefinition)
        and dims["symbol"].name == "binance_symbols"
    )


def backfill_run_requests(days: int, symbols: list[str]) -> list[dg.RunRequest]:
    """The run requests the backfill daemon builds for a rectangular UI selection (its own code path)."""
    from dagster._core.definitions.automation_tick_evaluation_context import (
        build_run_requests_with_backfill_policies,
    )
    from dagster._core.definitions.events import AssetKeyPartitionKey
    from dagster._core.definitions.partitions.context import partition_loading_context

    graph = load_defs().resolve_asset_graph()
    selection = [
        AssetKeyPartitionKey(
            KLINES,
            dg.MultiPartitionKey({"date": (date(2017, 9, 1) + timedelta(days=d)).isoformat(), "symbol": s}),
        )
        for d in range(days)
        for s in symbols
    ]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("binance_symbols", symbols)
        with partition_loading_context(dynamic_partitions_store=instance):
            return list(build_run_requests_with_backfill_policies(selection, graph, instance))


SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"]


def test_a_year_for_five_symbols_is_a_handful_of_runs_not_1825() -> None:
    requests = backfill_run_requests(365, SYMBOLS)
    assert len(requests) == 5
    ranges = {
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in requests
    }
    assert ("2017-09-01|BTCUSDT", "2018-08-31|BTCUSDT") in ranges


def test_a_decade_is_cut_into_runs_of_at_most_a_year_of_one_symbol() -> None:
    requests = backfill_run_requests(3300, SYMBOLS[:2])
    assert len(requests) == 2 * 10  # ceil(3300 / 366) runs per symbol
    for request in requests:
        start = request.tags["dagster/asset_partition_range_start"].split("|")
        end = request.tags["dagster/asset_partition_range_end"].split("|")
        assert start[1] == end[1]
        assert (date.fromisoformat(end[0]) - date.fromisoformat(start[0])).days < 366


def test_a_run_groups_its_keys_by_symbol_whatever_the_range_shape() -> None:
    one_symbol_many_days = [f"2020-01-0{d}|BTCUSDT" for d in (1, 2, 3)]
    one_day_many_symbols = ["2020-01-01|BTCUSDT", "2020-01-01|ETHUSDT", "2020-01-01|SOLUSDT"]
    assert days_by_symbol(one_symbol_many_days) == {"BTCUSDT": [date(2020, 1, d) for d in (1, 2, 3)]}
    assert days_by_symbol(one_day_many_symbols) == {
        s: [date(2020, 1, 1)] for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    }
