"""Fault switches for tests: injected errors, delays, outages, bad rows and scripted answers.

Set at start-up (--error-rate, --delay-ms) and replaced at run time through PUT /_sim/faults
(absent fields take their defaults). Faults apply to Binance requests only, never to /_sim/*.
Order for each Binance request: extra_weight is counted, the weight limiter may answer 429/418,
delay_ms is slept, then script entries, then fail_next, then error_rate. `missing` and
`kline_overrides` work on open times (ms) of any interval; an override only replaces a kline that
is served (it never adds one, and a missing range wins over it). Scripted 429/418 answers do not
arm the real limiter. The archive_* switches act on the data.binance.vision endpoints only.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from typing import Any

ARCHIVE_FAULTS = ("archive_corrupt", "archive_truncate", "archive_missing")


class FaultError(ValueError):
    """A fault specification that cannot be used; the message says which field and why."""


@dataclass(frozen=True)
class Scripted:
    """One canned answer for the next Binance request."""

    status: int
    retry_after: int | None = None
    body: Any = None


@dataclass
class Faults:
    """The fault settings (JSON field names)."""

    error_rate: float = 0.0  # probability (seeded RNG) of answering error_status
    error_status: int = 503
    fail_next: int = 0  # the next N Binance requests are answered error_status
    delay_ms: int = 0  # sleep before answering each Binance request
    missing: list[dict[str, Any]] = field(default_factory=list)  # {"symbol","start","end"} ms, half-open
    kline_overrides: list[dict[str, Any]] = field(default_factory=list)  # {"symbol","open_time","row"}
    script: list[dict[str, Any]] = field(default_factory=list)  # {"status","retry_after"?,"body"?}
    extra_weight: int = 0  # added once to the current window of the next Binance request's IP
    # data.binance.vision archive files by zip name (BTCUSDT-1m-2024-03-01.zip; a .CHECKSUM name
    # in archive_missing hides only the checksum): served bytes altered after the checksum was
    # computed / CSV cut to its first half with a matching checksum / answered 404
    archive_corrupt: list[str] = field(default_factory=list)
    archive_truncate: list[str] = field(default_factory=list)
    archive_missing: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Any) -> Faults:
        """Validate a PUT /_sim/faults body; raises FaultError naming the bad field."""
        if not isinstance(data, dict):
            raise FaultError('the faults body must be a JSON object like {"fail_next": 2}')
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise FaultError(f"unknown fault field(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        faults = cls(**data)
        faults._check()
        return faults

    def _check(self) -> None:
        for name in ("missing", "kline_overrides", "script", *ARCHIVE_FAULTS):
            if not isinstance(getattr(self, name), list):
                raise FaultError(f"{name} must be a JSON list, got {getattr(self, name)!r}")
        for name in ARCHIVE_FAULTS:
            for item in getattr(self, name):
                if not isinstance(item, str) or not item.endswith((".zip", ".zip.CHECKSUM")):
                    raise FaultError(
                        f"{name} entries must be archive file names like BTCUSDT-1m-2024-03-01.zip, "
                        f"got {item!r}"
                    )
        if not isinstance(self.error_rate, int | float) or not 0 <= self.error_rate <= 1:
            raise FaultError(f"error_rate must be a number in 0..1, got {self.error_rate!r}")
        for name in ("error_status", "fail_next", "delay_ms", "extra_weight"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise FaultError(f"{name} must be a non-negative integer, got {value!r}")
        if not 100 <= self.error_status <= 599:
            raise FaultError(f"error_status must be an HTTP status 100..599, got {self.error_status}")
        for item in self.missing:
            if not isinstance(item, dict) or not {"symbol", "start", "end"} <= set(item):
                raise FaultError(f"each missing entry needs symbol, start and end (ms), got {item!r}")
            if not all(isinstance(item[k], int) for k in ("start", "end")):
                raise FaultError(f"missing start and end must be integer ms, got {item!r}")
        for item in self.kline_overrides:
            if not isinstance(item, dict) or not {"symbol", "open_time", "row"} <= set(item):
                raise FaultError(
                    f"each kline_overrides entry needs symbol, open_time (ms) and row, got {item!r}"
                )
            if not isinstance(item["open_time"], int):
                raise FaultError(f"kline_overrides open_time must be integer ms, got {item!r}")
        for item in self.script:
            if not isinstance(item, dict) or not isinstance(item.get("status"), int):
                raise FaultError(f"each script entry needs an integer status, got {item!r}")
            unknown = set(item) - {"status", "retry_after", "body"}
            if unknown:
                raise FaultError(f"script entry {item!r} has unknown field(s) {sorted(unknown)}")

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON; the archive_* lists only when set (the REST-only shape stays as it was)."""
        data = asdict(self)
        for name in ARCHIVE_FAULTS:
            if not data[name]:
                del data[name]
        return data


class FaultState:
    """The current faults plus what consuming them needs (a seeded RNG, the start-up defaults)."""

    def __init__(self, startup: Faults, seed: int) -> None:
        self.startup = startup
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        """Back to the start-up faults (the defaults unless --error-rate / --delay-ms were given)."""
        self.replace(Faults.from_json(self.startup.to_json()))
        self._rng = random.Random(self.seed)

    def replace(self, faults: Faults) -> None:
        self.current = faults
        self._missing: dict[str, list[tuple[int, int]]] = {}
        for item in faults.missing:
            self._missing.setdefault(item["symbol"], []).append((item["start"], item["end"]))
        self._overrides: dict[str, dict[int, str]] = {}
        for item in faults.kline_overrides:
            text = json.dumps(item["row"], separators=(",", ":"))
            self._overrides.setdefault(item["symbol"], {})[item["open_time"]] = text

    def missing(self, symbol: str) -> list[tuple[int, int]]:
        return self._missing.get(symbol, [])

    def overrides(self, symbol: str) -> dict[int, str]:
        return self._overrides.get(symbol, {})

    def take_extra_weight(self) -> int:
        extra, self.current.extra_weight = self.current.extra_weight, 0
        return extra

    def take_scripted(self) -> Scripted | None:
        if not self.current.script:
            return None
        item = self.current.script.pop(0)
        return Scripted(item["status"], item.get("retry_after"), item.get("body"))

    def take_failure(self) -> int | None:
        """The error status to answer with now (fail_next first, then error_rate), or None."""
        if self.current.fail_next > 0:
            self.current.fail_next -= 1
            return self.current.error_status
        if self.current.error_rate > 0 and self._rng.random() < self.current.error_rate:
            return self.current.error_status
        return None
