"""Replay of recorded Binance combined-stream captures (--replay FILE[,FILE...], --replay-speed X).

A capture is text, gzip or plain, one message per line: `<local receive time ns> <raw JSON>` where
the JSON is a combined-stream message {"stream":...,"data":...} (the hftbacktest recordings in
shared/data/ws_captures). Other lines (the REST depth snapshot the recorder wrote first, blank or
unparsable lines) are skipped and counted. Files play one after another, each in its own order.

Each connection gets its own playback, which starts when the connection first has a subscription
and runs through all files: a message goes out when (its receive time - the first message's) /
speed has passed, so the gaps between messages are kept, scaled (a gap that runs backwards counts
as 0); speed 0 sends as fast as the connection takes them. Only messages of streams the connection
subscribes to at that moment are sent; combined connections get the recorded line verbatim, raw
ones its "data" part. The recorded payloads are not rewritten: timeUnit=MICROSECOND is ignored and
times stay as captured. After the last message nothing more is sent (keepalive and lifetime go on).
In replay mode only the captured streams carry data: any other valid stream name is accepted and
stays silent (there is no synthetic data in replay mode).
"""

from __future__ import annotations

import asyncio
import bisect
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warehouse_assets.simulator.ws_wire import Chunk

if TYPE_CHECKING:
    from warehouse_assets.simulator.ws_faults import StreamFaults, WsStats
    from warehouse_assets.simulator.ws_session import Session

BATCH = 2048  # messages per write at speed 0
PREFIX = '{"stream":"'
DATA_KEY = '","data":'


@dataclass
class Capture:
    """All messages of the replay files, in play order."""

    offsets: list[float] = field(default_factory=list)  # seconds after the first message, at speed 1
    streams: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # the combined JSON, verbatim
    data_starts: list[int] = field(default_factory=list)  # where "data"'s value starts in the line
    ascii_only: bool = True
    files: list[dict[str, Any]] = field(default_factory=list)
    stream_counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"messages": len(self.lines), "files": self.files, "streams": self.stream_counts}


def _open(path: Path) -> Any:
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gzipped else path.open(encoding="utf-8")


def _parse(text: str) -> tuple[str, str, int] | None:
    """(stream, combined line, start of the data value) of a combined-stream message, else None."""
    if text.startswith(PREFIX):
        end = text.find('"', len(PREFIX))
        if end > 0 and text.startswith(DATA_KEY, end) and text.endswith("}"):
            return text[len(PREFIX) : end], text, end + len(DATA_KEY)
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if (
        not isinstance(message, dict)
        or set(message) != {"stream", "data"}
        or not isinstance(message["stream"], str)
    ):
        return None
    line = json.dumps(message, separators=(",", ":"))
    return message["stream"], line, len(PREFIX) + len(message["stream"]) + len(DATA_KEY)


def load_capture(paths: list[Path]) -> Capture:
    """Read the capture files (see the module docstring); raises OSError/ValueError naming the file."""
    capture = Capture()
    elapsed, previous = 0.0, None
    for path in paths:
        kept = skipped = 0
        with _open(path) as lines:
            for raw in lines:
                stamp, _, text = raw.rstrip("\n").partition(" ")
                parsed = _parse(text.strip()) if stamp.isdigit() else None
                if parsed is None:
                    skipped += 1
                    continue
                ns = int(stamp)
                if previous is not None:
                    elapsed += max(0, ns - previous) / 1e9
                previous = ns
                stream, line, start = parsed
                capture.offsets.append(elapsed)
                capture.streams.append(stream)
                capture.lines.append(line)
                capture.data_starts.append(start)
                capture.ascii_only = capture.ascii_only and line.isascii()
                capture.stream_counts[stream] = capture.stream_counts.get(stream, 0) + 1
                kept += 1
        if kept == 0:
            raise ValueError(f"replay file {path} holds no combined-stream lines '<ns> {{\"stream\":...}}'")
        capture.files.append({"path": str(path), "messages": kept, "skipped_lines": skipped})
    return capture


class Player:
    """Plays a capture to one session (see the module docstring)."""

    def __init__(self, capture: Capture, speed: float, faults: StreamFaults, stats: WsStats) -> None:
        self.capture = capture
        self.speed = speed
        self.faults = faults
        self.stats = stats

    def _chunks(self, session: Session, lo: int, hi: int) -> list[Chunk]:
        """Chunks of the subscribed messages in [lo, hi), one per run of the same stream."""
        cap = self.capture
        subscribed = session.streams
        chunks: list[Chunk] = []
        run_stream: str | None = None
        lines: list[str] = []
        data: list[str] = []
        for i in range(lo, hi):
            stream = cap.streams[i]
            if stream not in subscribed:
                continue
            if stream != run_stream and lines:
                chunks.append(Chunk(run_stream or "", data, None, None, lines, cap.ascii_only))
                lines, data = [], []
            run_stream = stream
            line = cap.lines[i]
            lines.append(line)
            data.append(line[cap.data_starts[i] : -1])
        if lines:
            chunks.append(Chunk(run_stream or "", data, None, None, lines, cap.ascii_only))
        return chunks

    async def play(self, session: Session) -> None:
        cap, loop = self.capture, asyncio.get_running_loop()
        start, i, n = loop.time(), 0, len(cap.lines)
        while i < n and session.link.open:
            if self.speed > 0:
                played = (loop.time() - start) * self.speed
                j = bisect.bisect_right(cap.offsets, played, lo=i)
                if j == i:
                    await asyncio.sleep(min((cap.offsets[i] - played) / self.speed, 0.5))
                    continue
            else:
                j = min(n, i + BATCH)
            session.write_chunks(self.faults.apply(self._chunks(session, i, j)))
            i = j
            await session.link.drained()
            if self.speed == 0:
                await asyncio.sleep(0)
        if i >= n:
            self.stats.replay_finished += 1
