"""Request statistics for the control API (GET /_sim/stats): counts by path, status and window."""

from __future__ import annotations

from collections import Counter
from typing import Any


class Stats:
    """Counters of the Binance requests served since start-up or the last reset."""

    def __init__(self) -> None:
        self.requests = 0
        self.by_path: Counter[str] = Counter()
        self.status_counts: Counter[str] = Counter()
        self.weight_by_window: Counter[str] = Counter()

    def record(self, path: str, status: int, weight: int, window_start_ms: int) -> None:
        self.requests += 1
        self.by_path[path] += 1
        self.status_counts[str(status)] += 1
        self.weight_by_window[str(window_start_ms)] += weight

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_path": dict(self.by_path),
            "weight_by_window": dict(sorted(self.weight_by_window.items())),
            "status_counts": dict(self.status_counts),
        }
