"""Fault switches of the WebSocket streams and their counters (POST /_sim/ws/faults, GET /_sim/stats "ws").

Per-stream switches act on the next messages of a stream as they are published, once for every
connection listening (a replayed capture is played per connection, so there the first connection
to send the stream's next message consumes the switch):
  skip      {"btcusdt@aggTrade": 3}  the next 3 messages are sent to nobody; their ids are recorded
  repeat    {"btcusdt@aggTrade": 2}  each of the next 2 messages is sent twice in a row
  malformed {"btcusdt@aggTrade": 4}  4 extra bad messages go out, one before each of the next 4
            real ones (which are still sent), kinds in turn: bad_json (the real payload cut in
            half), missing_field (no price: "p", or "c" in a kline), wrong_type (the id as a
            string), negative_price; each is recorded verbatim with the id of the message it
            precedes. It is built from the millisecond payload (the us one if no connection wants
            ms) and sent as it is on every connection, wrapped for combined streams.
Connection switches (drop, stall) are applied by the hub (ws.py) to the sessions open at the time.
Ids: `a` for aggTrade, `t` for trade, the kline open time in ms, `u`/`lastUpdateId` for depth and
bookTicker.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from warehouse_assets.simulator.ws_wire import Chunk, split_stream, wrap

MALFORMED_KINDS = ("bad_json", "missing_field", "wrong_type", "negative_price")
SWITCHES = ("skip", "repeat", "malformed")


class WsFaultError(ValueError):
    """A WebSocket fault body that cannot be used; the message names the field."""


class WsStats:
    """Counters of the WebSocket endpoint since start-up or the last reset."""

    def __init__(self) -> None:
        self.connections_opened = 0
        self.closed: Counter[str] = Counter()  # why: client, dropped, lifetime, pong_timeout, ...
        self.incoming: Counter[str] = Counter()  # text, bytes, ping, pong
        self.messages_sent: Counter[str] = Counter()  # frames written per stream, all connections
        self.withheld: Counter[str] = Counter()  # messages not written to stalled connections
        self.skipped_ids: dict[str, list[int]] = {}
        self.repeated_ids: dict[str, list[int]] = {}
        self.malformed: list[dict[str, Any]] = []
        self.pings_sent = 0
        self.server_shutdown_sent = 0
        self.replay_finished = 0

    def to_json(self, connections_open: int) -> dict[str, Any]:
        return {
            "connections_opened": self.connections_opened,
            "connections_open": connections_open,
            "closed": dict(self.closed),
            "incoming": dict(self.incoming),
            "messages_sent": dict(self.messages_sent),
            "withheld": dict(self.withheld),
            "skipped_ids": self.skipped_ids,
            "repeated_ids": self.repeated_ids,
            "malformed": self.malformed,
            "pings_sent": self.pings_sent,
            "server_shutdown_sent": self.server_shutdown_sent,
            "replay_finished": self.replay_finished,
        }


def _ident(payload: str) -> int:
    """The id of a message read from its payload (see the module docstring)."""
    try:
        data = json.loads(payload)
    except ValueError:
        return -1
    for key in ("a", "t", "u", "lastUpdateId"):
        if isinstance(data.get(key), int):
            return int(data[key])
    kline = data.get("k")
    return int(kline["t"]) if isinstance(kline, dict) and isinstance(kline.get("t"), int) else -1


def malformed_payload(kind: str, payload: str) -> tuple[str, str]:
    """(kind actually used, bad payload) derived from a real payload (see the module docstring)."""
    if kind == "bad_json":
        return kind, payload[: len(payload) // 2]
    data = json.loads(payload)
    kline = data.get("k") if isinstance(data.get("k"), dict) else None
    target = kline if kline is not None else data
    price_key = "c" if kline is not None else next((k for k in ("p", "b", "c") if k in data), None)
    if kind == "missing_field" and price_key is not None:
        del target[price_key]
    elif kind == "wrong_type":
        key = next((k for k in ("a", "t", "u", "lastUpdateId") if isinstance(data.get(k), int)), None)
        if key is None and kline is not None:
            kline["t"] = str(kline["t"])
        elif key is not None:
            data[key] = str(data[key])
        else:
            return "bad_json", payload[: len(payload) // 2]
    elif kind == "negative_price" and price_key is not None:
        value = target[price_key]
        if isinstance(value, list) and value and isinstance(value[0], list):
            value[0][0] = "-" + str(value[0][0])
        else:
            target[price_key] = "-" + str(value)
    else:
        return "bad_json", payload[: len(payload) // 2]
    return kind, json.dumps(data, separators=(",", ":"))


class StreamFaults:
    """The armed per-stream switches; `apply` rewrites chunks on their way out."""

    def __init__(self, stats: WsStats) -> None:
        self.stats = stats
        self.armed: dict[str, dict[str, int]] = {name: {} for name in SWITCHES}
        self._malformed_turn = 0

    def arm(self, switch: str, counts: Any) -> None:
        if not isinstance(counts, dict):
            raise WsFaultError(f'{switch} must map stream names to counts, like {{"btcusdt@aggTrade": 3}}')
        for stream, count in counts.items():
            if split_stream(stream) is None:
                raise WsFaultError(
                    f"{switch}: {stream!r} is not a per-symbol stream name like btcusdt@aggTrade"
                )
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise WsFaultError(
                    f"{switch}: the count for {stream} must be a non-negative integer, got {count!r}"
                )
        for stream, count in counts.items():
            if count:
                self.armed[switch][stream] = count
            else:
                self.armed[switch].pop(stream, None)

    def reset(self) -> None:
        for table in self.armed.values():
            table.clear()
        self._malformed_turn = 0

    def pending(self) -> dict[str, dict[str, int]]:
        return {name: dict(table) for name, table in self.armed.items()}

    def apply(self, chunks: list[Chunk]) -> list[Chunk]:
        """The chunks as they go out: unchanged unless a switch is armed for their stream."""
        if not any(self.armed.values()):
            return chunks
        armed = set().union(*self.armed.values())
        return [c if c.stream not in armed else self._rewrite(c) for c in chunks]

    def _take(self, switch: str, stream: str) -> bool:
        table = self.armed[switch]
        left = table.get(stream, 0)
        if left <= 0:
            return False
        if left == 1:
            del table[stream]
        else:
            table[stream] = left - 1
        return True

    def _rewrite(self, chunk: Chunk) -> Chunk:
        stream = chunk.stream
        base = chunk.ms if chunk.ms is not None else chunk.us
        assert base is not None
        lists: dict[str, list[str] | None] = {
            "ms": [] if chunk.ms is not None else None,
            "us": [] if chunk.us is not None else None,
            "wrapped": [] if chunk.wrapped is not None else None,
        }
        idents: list[int] = []

        def emit(i: int | None, text: str | None, ident: int) -> None:
            for name, out in lists.items():
                if out is None:
                    continue
                if text is not None:
                    out.append(wrap(stream, text) if name == "wrapped" else text)
                else:
                    source = getattr(chunk, name)
                    out.append(source[i])
            idents.append(ident)

        for i, payload in enumerate(base):
            ident = chunk.idents[i] if chunk.idents is not None else _ident(payload)
            if self._take("malformed", stream):
                wanted = MALFORMED_KINDS[self._malformed_turn % len(MALFORMED_KINDS)]
                self._malformed_turn += 1
                kind, bad = malformed_payload(wanted, payload)
                self.stats.malformed.append(
                    {"stream": stream, "kind": kind, "payload": bad, "before_id": ident}
                )
                emit(None, bad, ident)
            if self._take("skip", stream):
                self.stats.skipped_ids.setdefault(stream, []).append(ident)
                continue
            emit(i, None, ident)
            if self._take("repeat", stream):
                self.stats.repeated_ids.setdefault(stream, []).append(ident)
                emit(i, None, ident)
        return Chunk(stream, lists["ms"], lists["us"], idents, lists["wrapped"], chunk.ascii_only)
