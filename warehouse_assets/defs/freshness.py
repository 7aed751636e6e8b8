"""Dagster's freshness policy for what the nightly schedule keeps current (klines and their aggregates).

Evaluated per asset by the daemon: an asset not materialized within KLINES_FRESHNESS_HOURS turns stale in
the UI. The per-symbol view is the klines `fresh` check (defs/quality/checks.py).
"""

from datetime import timedelta

import dagster as dg

from warehouse_assets.lib import settings

NIGHTLY_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=settings.klines_freshness_hours())
)
