"""Binance spot WebSocket stream wire format: stream names, payload texts, and pre-framed message batches.

Written from web-socket-streams.md: stream names are `<lowercase symbol>@<kind>`; payloads are
compact JSON with prices and quantities as 8-decimal strings; combined streams wrap each payload as
{"stream":"<name>","data":<payload>}. A `Chunk` holds consecutive messages of one stream, rendered
once per time unit and framed once per (combined, time unit) form however many connections get it:
server frames are unmasked, so a text frame is a 2- or 4-byte header plus the payload, and a whole
batch becomes one bytes object for one transport write.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

E8 = 100_000_000
MAX_STREAMS = 1024  # streams one connection may listen to

INTERVALS = "1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M"
# Every stream kind the spot documentation lists; only aggTrade, trade and kline_1m carry synthetic data.
_KINDS = (
    r"aggTrade|trade|kline_(?:" + INTERVALS + r")(?:@\+08:00)?|miniTicker|ticker|ticker_(?:1h|4h|1d)"
    r"|bookTicker|avgPrice|depth(?:5|10|20)?(?:@100ms|@1000ms)?"
)
STREAM_RE = re.compile(r"^(?P<symbol>[a-z0-9]{1,20})@(?P<kind>" + _KINDS + r")$")
MARKET_WIDE_RE = re.compile(r"^!(?:miniTicker|ticker|ticker_(?:1h|4h|1d))@arr$")
LIVE_KINDS = ("aggTrade", "trade", "kline_1m")

AGG_TRADE = '{"e":"aggTrade","E":%d,"s":"%s","a":%d,"p":"%s","q":"%s","f":%d,"l":%d,"T":%d,"m":%s,"M":true}'
TRADE = '{"e":"trade","E":%d,"s":"%s","t":%d,"p":"%s","q":"%s","T":%d,"m":%s,"M":true}'
KLINE = (
    '{"e":"kline","E":%d,"s":"%s","k":{"t":%d,"T":%d,"s":"%s","i":"1m","f":%d,"L":%d,"o":"%s","c":"%s",'
    '"h":"%s","l":"%s","v":"%s","n":%d,"x":%s,"q":"%s","V":"%s","Q":"%s","B":"0"}}'
)
SERVER_SHUTDOWN = '{"e":"serverShutdown","E":%d}'
SERVER_SHUTDOWN_STREAM = "!serverShutdown"


def valid_stream(name: str) -> bool:
    """A stream name Binance documents (lowercase symbol; the kind spelled exactly)."""
    return bool(STREAM_RE.match(name) or MARKET_WIDE_RE.match(name))


def split_stream(name: str) -> tuple[str, str] | None:
    """(SYMBOL, kind) of a per-symbol stream name, or None for market-wide or invalid names."""
    match = STREAM_RE.match(name)
    return (match["symbol"].upper(), match["kind"]) if match else None


def decimal(e8: int) -> str:
    """An amount in 1e-8 units as Binance writes it: "64123.45000000"."""
    whole, fraction = divmod(e8, E8)
    return f"{whole}.{fraction:08d}"


def js_bool(flag: bool) -> str:
    return "true" if flag else "false"


def split_quantity(qty_e8: int, lot_e8: int, count: int) -> list[int]:
    """Split an aggregate trade's quantity over its `count` trades, exactly.

    On the symbol's lot grid when the quantity has at least `count` lots: each trade gets
    floor(lots / count) lots and the first (lots mod count) trades one lot more. With fewer lots
    than trades (about 0.1 % of synthetic aggregate trades) the same split is made in 1e-8 units.
    """
    unit = lot_e8 if qty_e8 // lot_e8 >= count else 1
    base, extra = divmod(qty_e8 // unit, count)
    return [(base + 1) * unit] * extra + [base * unit] * (count - extra)


def wrap(stream: str, payload: str) -> str:
    """The combined-stream form of a payload."""
    return '{"stream":"' + stream + '","data":' + payload + "}"


def _heads() -> list[str]:
    short = [chr(0x81) + chr(n) for n in range(126)]
    return short + ["\x81\x7e" + chr(n >> 8) + chr(n & 0xFF) for n in range(126, 65536)]


_HEADS = _heads()  # text-frame headers by payload length, as latin-1 characters


def frame_texts(texts: Sequence[str], ascii_only: bool = True) -> bytes:
    """Unmasked, unfragmented text frames for `texts`, concatenated.

    With ascii_only (every payload the simulator renders) the headers are joined in as latin-1
    characters and the batch is encoded once; otherwise each message is encoded on its own.
    """
    if ascii_only and texts and max(map(len, texts)) < 65536:
        parts: list[str] = [""] * (2 * len(texts))
        parts[0::2] = [_HEADS[len(t)] for t in texts]
        parts[1::2] = texts
        return "".join(parts).encode("latin-1")
    out = []
    for text in texts:
        data = text.encode()
        n = len(data)
        if n < 126:
            out.append(bytes((0x81, n)))
        elif n < 65536:
            out.append(bytes((0x81, 126)) + n.to_bytes(2, "big"))
        else:
            out.append(bytes((0x81, 127)) + n.to_bytes(8, "big"))
        out.append(data)
    return b"".join(out)


class Chunk:
    """Consecutive messages of one stream: payloads in ms and/or us, their ids, framed on demand.

    `wrapped` holds ready combined-form texts (a replayed capture line is sent verbatim); without
    it the combined form is built from the payloads. `idents` are the messages' ids (a, t, kline
    open time); None means they are read from the payload when a fault needs them.
    """

    __slots__ = ("_framed", "ascii_only", "idents", "ms", "stream", "us", "wrapped")

    def __init__(
        self,
        stream: str,
        ms: list[str] | None,
        us: list[str] | None = None,
        idents: Sequence[int] | None = None,
        wrapped: list[str] | None = None,
        ascii_only: bool = True,
    ) -> None:
        if ms is None and us is None:
            raise ValueError(f"a chunk of {stream} needs payloads in ms or us")
        self.stream = stream
        self.ms = ms
        self.us = us
        self.idents = idents
        self.wrapped = wrapped
        self.ascii_only = ascii_only
        self._framed: dict[tuple[bool, bool], bytes] = {}

    def __len__(self) -> int:
        payloads = self.ms if self.ms is not None else self.us
        assert payloads is not None
        return len(payloads)

    def payloads(self, micro: bool) -> list[str]:
        chosen = self.us if micro and self.us is not None else self.ms
        result = chosen if chosen is not None else self.us
        assert result is not None
        return result

    def framed(self, combined: bool, micro: bool) -> bytes:
        """The frames of this chunk for one connection form, built once and shared."""
        key = (combined, micro)
        data = self._framed.get(key)
        if data is None:
            if combined and self.wrapped is not None:
                texts = self.wrapped
            elif combined:
                prefix = '{"stream":"' + self.stream + '","data":'
                texts = [prefix + p + "}" for p in self.payloads(micro)]
            else:
                texts = self.payloads(micro)
            data = self._framed[key] = frame_texts(texts, self.ascii_only)
        return data
