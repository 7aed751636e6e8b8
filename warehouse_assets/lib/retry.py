"""The one backoff policy of the project: capped exponential delays with full jitter.

Used by the exchange clients (timeouts, 5xx) and by the warehouse (waiting for the embedded lock).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay n is uniform in [base * 2**n * (1 - jitter), base * 2**n], capped at `cap` seconds."""

    base: float = 0.25
    cap: float = 10.0
    jitter: float = 1.0  # 1.0 = "full jitter" (AWS architecture blog); 0.0 = deterministic

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(attempt, 62)))
        r = (rng or random).random()
        return ceiling * (1.0 - self.jitter * r)

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        attempt = 0
        while True:
            yield self.delay(attempt, rng)
            attempt += 1
