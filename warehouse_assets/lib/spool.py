"""Durable on-disk spool between the stream ingester and the flusher.

The WebSocket client `append`s each batch of raw frames; a frame counts as received once `append`
returns (the batch is fsynced). The flusher takes the oldest unflushed records with `read_block`,
writes them to the warehouse with `Block.token` as the insert's deduplication token, then `commit`s.
After a crash (SIGKILL at any instant) everything not committed is replayed, each block issued
before the crash with its original boundaries and token, so a block the warehouse already has is
deduplicated there instead of written twice. One writer process per directory (`flock`).

On disk (integers little-endian):

    lock                  flock target; holds the writer's pid
    spool-id              16 hex digits, random at creation: tokens of two spools never collide
    checkpoint.json       {"format": 1, "segment", "offset", "record"}: everything before is flushed;
                          replaced atomically (write temp, fsync, rename, fsync directory)
    issued-blocks         end positions of the blocks handed to the flusher and not yet committed:
                          28-byte entries u32 crc32 | u64 segment | u64 offset | u64 record
    <seq, 20 digits>.seg  segment: 16-byte header b"WHSPOOL1" | u64 seq, then records:
                          u32 crc32 | u32 length and flags | i64 received_at_ns | payload
                          crc32 covers the 12 bytes after it and the payload. Flag bit 31 marks the
                          last record of an appended batch, bit 30 the seal record that closes a
                          full segment (payload u64 records | u64 its own offset).

A batch is all or nothing: at open, records after the last end-of-batch mark of the newest segment
(a batch torn by a crash, half a record, garbage, zeros) are truncated and counted, never returned.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import secrets
import struct
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from warehouse_assets.lib.errors import SpoolCorruptError, SpoolError, SpoolFullError, SpoolLockedError

log = logging.getLogger(__name__)

MiB = 1 << 20
GiB = 1 << 30

SEGMENT_MAGIC = b"WHSPOOL1"
_SEGMENT_HEADER = struct.Struct("<8sQ")
HEADER_BYTES = _SEGMENT_HEADER.size
_RECORD_HEAD = struct.Struct("<IIq")  # crc32, length | flags, received_at_ns
RECORD_HEAD_BYTES = _RECORD_HEAD.size
_LENGTH_TIME = struct.Struct("<Iq")
END_OF_BATCH = 1 << 31
SEAL = 1 << 30
_LENGTH_MASK = SEAL - 1
MAX_FRAME_BYTES = _LENGTH_MASK
_SEAL_BODY = struct.Struct("<QQ")  # records in the segment, offset of the seal record (= end of the data)
SEAL_BYTES = RECORD_HEAD_BYTES + _SEAL_BODY.size
_ISSUED = struct.Struct("<IQQQ")
_ISSUED_BODY = struct.Struct("<QQQ")
_SEGMENT_NAME = re.compile(r"^(\d{20})\.seg$")
_READ_CHUNK = 1 * MiB
_ISSUED_LOG_COMPACT_BYTES = 64 * 1024
_FORMAT = 1

_crc32 = zlib.crc32
_datasync = getattr(os, "fdatasync", os.fsync)  # the size change of an append is covered by fdatasync


class SpoolPosition(NamedTuple):
    """A place in the spool; ordered like the records. `record` counts the records before `offset`."""

    segment: int
    offset: int
    record: int


@dataclass(frozen=True, slots=True)
class Block:
    """Consecutive records of one segment, handed to the flusher; commit it once the warehouse has it.

    `token` ("<spool id>:<segment>:<first record offset>:<last record offset>") is the same whenever
    the same records are handed out, also after a crash and reopen: use it as the insert's
    deduplication token.
    """

    token: str
    start: SpoolPosition
    end: SpoolPosition
    frames: list[bytes]
    received_at_ns: list[int]


@dataclass(frozen=True, slots=True)
class SpoolStats:
    size_bytes: int  # segment files on disk, flushed or not, the number the cap applies to
    segments: int
    unflushed_records: int  # acknowledged and not committed (handed-out blocks included)
    unflushed_bytes: int  # their record bytes, framing included
    oldest_unflushed_received_at_ns: int | None  # for lag metrics; None when everything is flushed
    torn_records_truncated: int  # at open: records of an unfinished batch, a partial record counts as one
    torn_bytes_truncated: int


@dataclass(slots=True)
class _Segment:
    seq: int
    data_end: int  # end of the acknowledged records (the seal, if any, follows)
    records: int
    sealed: bool

    @property
    def file_bytes(self) -> int:
        return self.data_end + (SEAL_BYTES if self.sealed else 0)


@dataclass(frozen=True, slots=True)
class _Scan:
    data_end: int  # end of the last complete batch
    records: int  # records before data_end
    sealed: bool  # a valid seal record starts at data_end
    torn_records: int  # records after data_end, a partial record counted as one
    stop: int  # where scanning stopped (end of the seal when sealed)


def encode_batch(frames: Sequence[bytes], received_at_ns: Sequence[int]) -> bytes:
    """The bytes `append` writes for one batch: one record per frame, the last one flagged end-of-batch."""
    if len(frames) != len(received_at_ns):
        raise ValueError(f"{len(frames)} frames but {len(received_at_ns)} receive times")
    parts: list[bytes] = []
    add = parts.append
    pack_head = _RECORD_HEAD.pack
    pack_length_time = _LENGTH_TIME.pack
    for frame, at in zip(frames, received_at_ns, strict=True):
        n = len(frame)
        add(pack_head(_crc32(frame, _crc32(pack_length_time(n, at))), n, at))
        add(frame)
    last, at = frames[-1], received_at_ns[-1]
    flagged = len(last) | END_OF_BATCH
    parts[-2] = pack_head(_crc32(last, _crc32(pack_length_time(flagged, at))), flagged, at)
    data = b"".join(parts)
    # Only a batch this large can hold a frame whose length would spill into the flag bits.
    if len(data) > MAX_FRAME_BYTES and max(map(len, frames)) > MAX_FRAME_BYTES:
        raise ValueError(f"a frame is longer than {MAX_FRAME_BYTES} bytes, the most a spool record holds")
    return data


def _seal_record(records: int, offset: int) -> bytes:
    body = _SEAL_BODY.pack(records, offset)
    length = len(body) | SEAL | END_OF_BATCH
    return _RECORD_HEAD.pack(_crc32(body, _crc32(_LENGTH_TIME.pack(length, 0))), length, 0) + body


def _scan(data: bytes) -> _Scan:
    """Walks a segment (header already checked): where its last complete batch ends, and what follows."""
    view = memoryview(data)
    size = len(data)
    offset = data_end = HEADER_BYTES
    records = complete = 0
    while offset + RECORD_HEAD_BYTES <= size:
        crc, length_flags, _ = _RECORD_HEAD.unpack_from(data, offset)
        end = offset + RECORD_HEAD_BYTES + (length_flags & _LENGTH_MASK)
        if end > size or _crc32(view[offset + 4 : end]) != crc:
            break
        if length_flags & SEAL:
            count, at = _SEAL_BODY.unpack_from(data, offset + RECORD_HEAD_BYTES)
            if at == offset == data_end and count == complete:
                return _Scan(data_end, complete, True, 0, end)
            break
        records += 1
        offset = end
        if length_flags & END_OF_BATCH:
            data_end, complete = offset, records
    partial = 1 if offset < size else 0
    return _Scan(data_end, complete, False, records - complete + partial, offset)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _acquire_lock(directory: Path) -> int:
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        raise SpoolLockedError(str(directory), holder_pid=int(holder) if holder.isdigit() else None) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class Spool:
    """A directory of append-only segments with group commit, checkpointed reading and a size cap.

    Thread-safe: one thread may `append` while another runs the flusher (`read_block`, `commit`).
    """

    def __init__(self, directory: Path, *, segment_bytes: int = 64 * MiB, max_bytes: int = 2 * GiB) -> None:
        if segment_bytes < HEADER_BYTES + RECORD_HEAD_BYTES:
            raise ValueError(f"segment_bytes={segment_bytes} cannot hold a record")
        if max_bytes < segment_bytes:
            raise ValueError(f"max_bytes={max_bytes} is smaller than segment_bytes={segment_bytes}")
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        # Lock order: _append_lock or _flush_lock first, then _meta (never held across I/O it need not).
        self._append_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._meta = threading.Lock()
        self._closed = False
        self._broken: str | None = None
        self._fds: list[int] = []
        self._segments: dict[int, _Segment] = {}  # ascending seq; the last one is the active segment
        self._size_bytes = 0
        self._torn_records = 0
        self._torn_bytes = 0
        self._read_fd = -1
        self._read_seq = -1
        self._oldest_cache: tuple[SpoolPosition, int] | None = None
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _acquire_lock(self.directory)
        try:
            self._open()
        except BaseException:
            self._close_fds()
            raise

    # ---- opening -------------------------------------------------------------------------------

    def _open(self) -> None:
        self._dir_fd = os.open(self.directory, os.O_RDONLY)
        for leftover in ("checkpoint.json.tmp", "issued-blocks.tmp", "spool-id.tmp"):
            (self.directory / leftover).unlink(missing_ok=True)
        self._spool_id = self._load_spool_id()
        checkpoint = self._load_checkpoint()
        seqs = sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := _SEGMENT_NAME.match(p.name)))
        if checkpoint is not None:
            # Left by a crash between writing the checkpoint and deleting the segments it covers.
            for seq in [s for s in seqs if s < checkpoint.segment]:
                self._segment_path(seq).unlink()
            seqs = [s for s in seqs if s >= checkpoint.segment]
        for seq in seqs[:-1]:
            self._segments[seq] = self._read_sealed(seq)
        if seqs:
            self._recover_newest(seqs[-1])
        else:
            self._start_segment((checkpoint.segment if checkpoint else 0) + 1)
        self._size_bytes = sum(s.file_bytes for s in self._segments.values())
        self._committed = self._initial_position(checkpoint)
        self._issued = self._load_issued()
        self._replay_index = 0
        self._cursor = self._committed

    def _load_spool_id(self) -> str:
        path = self.directory / "spool-id"
        if path.exists():
            spool_id = path.read_text().strip()
            if not re.fullmatch(r"[0-9a-f]{16}", spool_id):
                raise SpoolCorruptError(str(path), 0, f"expected 16 hex digits, found {spool_id[:40]!r}")
            return spool_id
        spool_id = secrets.token_hex(8)
        self._replace_durably(path, f"{spool_id}\n".encode())
        return spool_id

    def _load_checkpoint(self) -> SpoolPosition | None:
        path = self.directory / "checkpoint.json"
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            fields = json.loads(text)
            position = SpoolPosition(int(fields["segment"]), int(fields["offset"]), int(fields["record"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise SpoolCorruptError(str(path), 0, f"unreadable checkpoint ({exc})") from exc
        if fields.get("format") != _FORMAT:
            raise SpoolCorruptError(
                str(path), 0, f"checkpoint format {fields.get('format')!r}, not {_FORMAT}"
            )
        return position

    def _read_sealed(self, seq: int) -> _Segment:
        """An older segment: its seal (the last 32 bytes) gives its record count without a scan."""
        path = self._segment_path(seq)
        with path.open("rb") as f:
            header = f.read(HEADER_BYTES)
            size = os.fstat(f.fileno()).st_size
            f.seek(max(size - SEAL_BYTES, 0))
            tail = f.read(SEAL_BYTES)
        if len(header) < HEADER_BYTES or _SEGMENT_HEADER.unpack(header) != (SEGMENT_MAGIC, seq):
            raise SpoolCorruptError(str(path), 0, f"the segment header is not that of segment {seq}")
        offset = size - SEAL_BYTES
        if offset >= HEADER_BYTES and len(tail) == SEAL_BYTES:
            crc, length_flags, _ = _RECORD_HEAD.unpack_from(tail)
            count, at = _SEAL_BODY.unpack_from(tail, RECORD_HEAD_BYTES)
            if length_flags & SEAL and _crc32(memoryview(tail)[4:]) == crc and at == offset:
                return _Segment(seq, offset, count, sealed=True)
        raise SpoolCorruptError(str(path), offset, "an older segment does not end with a valid seal record")

    def _recover_newest(self, seq: int) -> None:
        """Truncates a torn tail; appends continue in a fresh segment unless this one holds no record."""
        path = self._segment_path(seq)
        data = path.read_bytes()
        header_ok = len(data) >= HEADER_BYTES and _SEGMENT_HEADER.unpack_from(data) == (SEGMENT_MAGIC, seq)
        if header_ok:
            scan = _scan(data)
        elif len(data) <= HEADER_BYTES:  # crashed while creating it
            scan = _Scan(HEADER_BYTES, 0, False, 0, len(data))
        else:
            raise SpoolCorruptError(str(path), 0, f"the segment header is not that of segment {seq}")
        keep = scan.stop if scan.sealed else scan.data_end
        torn = len(data) - keep
        if torn > 0:
            self._torn_records += scan.torn_records
            self._torn_bytes += torn
            log.warning(
                "stream spool %s: truncated a torn tail of %d bytes (%d records) at byte %d of %s; "
                "they belong to a batch whose append never returned",
                self.directory,
                torn,
                scan.torn_records,
                keep,
                path.name,
            )
        fd = os.open(path, os.O_RDWR)
        try:
            if not header_ok:
                _pwrite_all(fd, _SEGMENT_HEADER.pack(SEGMENT_MAGIC, seq), 0)
            os.ftruncate(fd, max(keep, HEADER_BYTES))
            if scan.records == 0 and not scan.sealed:
                # No acknowledged record here, so no token names its offsets: keep appending to it.
                os.fsync(fd)
                self._active = self._segments[seq] = _Segment(seq, HEADER_BYTES, 0, sealed=False)
                self._active_fd = fd
                self._fds.append(fd)
                return
            # New appends go to a new segment: offsets of the truncated tail are never reused.
            if not scan.sealed:
                _pwrite_all(fd, _seal_record(scan.records, scan.data_end), scan.data_end)
            os.fsync(fd)
        finally:
            if fd not in self._fds:
                os.close(fd)
        self._segments[seq] = _Segment(seq, scan.data_end, scan.records, sealed=True)
        self._start_segment(seq + 1)

    def _start_segment(self, seq: int) -> None:
        """Creates segment `seq` (header fsynced, directory entry fsynced) and makes it the active one."""
        fd = os.open(self._segment_path(seq), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _pwrite_all(fd, _SEGMENT_HEADER.pack(SEGMENT_MAGIC, seq), 0)
            os.fsync(fd)
            os.fsync(self._dir_fd)
        except OSError:
            os.close(fd)
            raise
        self._fds.append(fd)
        self._active = _Segment(seq, HEADER_BYTES, 0, sealed=False)
        with self._meta:
            self._segments[seq] = self._active
        self._active_fd = fd

    def _initial_position(self, checkpoint: SpoolPosition | None) -> SpoolPosition:
        first = next(iter(self._segments.values()))
        if checkpoint is None or checkpoint.segment < first.seq:
            if checkpoint is not None:
                log.warning(
                    "stream spool %s: the checkpoint names segment %d, which is gone; reading from segment %d",
                    self.directory,
                    checkpoint.segment,
                    first.seq,
                )
            return SpoolPosition(first.seq, HEADER_BYTES, 0)
        if checkpoint.offset > first.data_end or checkpoint.record > first.records:
            raise SpoolCorruptError(
                str(self._segment_path(first.seq)),
                first.data_end,
                f"the checkpoint says byte {checkpoint.offset} (record {checkpoint.record}) was flushed, "
                f"but the acknowledged data ends at byte {first.data_end} (record {first.records})",
            )
        return self._advance(checkpoint)

    def _load_issued(self) -> list[SpoolPosition]:
        """Blocks handed out and not committed before the last close or crash, to be replayed as they were."""
        path = self.directory / "issued-blocks"
        self._issued_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._fds.append(self._issued_fd)
        data = os.pread(self._issued_fd, os.fstat(self._issued_fd).st_size, 0)
        issued: list[SpoolPosition] = []
        previous = self._committed
        for at in range(0, len(data) - _ISSUED.size + 1, _ISSUED.size):
            crc, *fields = _ISSUED.unpack_from(data, at)
            if _crc32(memoryview(data)[at + 4 : at + _ISSUED.size]) != crc:
                break  # torn by a crash inside read_block, which therefore never returned that block
            end = SpoolPosition(*fields)
            if end <= self._committed:
                continue
            segment = self._segments.get(end.segment)
            if end <= previous or segment is None or end.offset > segment.data_end:
                raise SpoolCorruptError(
                    str(path), at, f"handed-out block end {tuple(end)} is not in the acknowledged data"
                )
            issued.append(end)
            previous = end
        return issued

    # ---- appending -----------------------------------------------------------------------------

    def append(self, frames: Sequence[bytes], received_at_ns: int | Sequence[int]) -> None:
        """Writes the batch and fsyncs once; when this returns, every frame is received and durable."""
        times = [received_at_ns] * len(frames) if isinstance(received_at_ns, int) else received_at_ns
        if not frames:
            if len(times):
                raise ValueError(f"no frames but {len(times)} receive times")
            return
        data = encode_batch(frames, times)
        with self._append_lock:
            self._check_usable()
            if self._broken is not None:
                raise SpoolError(self._broken)
            with self._meta:
                size = self._size_bytes
            if size + len(data) > self.max_bytes:
                raise SpoolFullError(
                    str(self.directory), max_bytes=self.max_bytes, size_bytes=size, batch_bytes=len(data)
                )
            active = self._active
            if active.records and active.data_end + len(data) > self.segment_bytes:
                self._rotate(active)
                active = self._active
            self._write_durably(self._active_fd, data, active.data_end)
            with self._meta:
                active.data_end += len(data)
                active.records += len(frames)
                self._size_bytes += len(data)

    def _write_durably(self, fd: int, data: bytes, offset: int) -> None:
        try:
            _pwrite_all(fd, data, offset)
            _datasync(fd)
        except OSError as exc:
            # Cut the unacknowledged bytes off so the next batch does not land after them.
            try:
                os.ftruncate(fd, offset)
                os.fsync(fd)
            except OSError as undo_exc:
                self._broken = (
                    f"stream spool {self.directory}: a failed write ({exc}) could not be undone "
                    f"({undo_exc}); reopen the spool (it truncates the torn tail) before appending again"
                )
            raise

    def _rotate(self, full: _Segment) -> None:
        try:
            self._write_durably(self._active_fd, _seal_record(full.records, full.data_end), full.data_end)
            old_fd = self._active_fd
            self._start_segment(full.seq + 1)
        except OSError as exc:
            self._broken = (
                f"stream spool {self.directory}: starting segment {full.seq + 1} failed ({exc}); "
                "reopen the spool before appending again"
            )
            raise
        self._fds.remove(old_fd)
        os.close(old_fd)
        with self._meta:
            full.sealed = True
            self._size_bytes += SEAL_BYTES + HEADER_BYTES

    # ---- flushing ------------------------------------------------------------------------------

    def read_block(self, max_records: int) -> Block | None:
        """The next unflushed records of one segment (at most `max_records`), or None if none is waiting.

        Successive calls hand out successive blocks without waiting for `commit`. A block handed out
        before a crash or `rewind` is handed out again with the same records and token, whatever
        `max_records` is now (its end was recorded durably before it was first returned).
        """
        if max_records < 1:
            raise ValueError(f"max_records={max_records} must be at least 1")
        with self._flush_lock:
            self._check_usable()
            start = self._advance(self._cursor)
            if self._replay_index < len(self._issued):
                end = self._issued[self._replay_index]
                count = end.record - start.record
                broken = SpoolCorruptError(
                    str(self._segment_path(start.segment)),
                    start.offset,
                    f"a block handed out before as {tuple(start)}..{tuple(end)} cannot be read again",
                )
                if start.segment != end.segment or count <= 0:
                    raise broken
                frames, times, last_offset, stop = self._read_records(start, end.offset, count)
                if stop != end.offset or len(frames) != count:
                    raise broken
                self._replay_index += 1
            else:
                with self._meta:
                    limit = self._segments[start.segment].data_end
                if start.offset >= limit:
                    return None
                frames, times, last_offset, stop = self._read_records(start, limit, max_records)
                end = SpoolPosition(start.segment, stop, start.record + len(frames))
                self._record_issued(end)
                self._issued.append(end)
                self._replay_index += 1
            self._cursor = end
            token = f"{self._spool_id}:{start.segment}:{start.offset}:{last_offset}"
            return Block(token, start, end, frames, times)

    def _read_records(
        self, start: SpoolPosition, limit: int, max_records: int
    ) -> tuple[list[bytes], list[int], int, int]:
        """Records from `start` up to byte `limit`: frames, receive times, last record's offset, end."""
        if self._read_seq != start.segment:
            if self._read_fd >= 0:
                self._fds.remove(self._read_fd)
                os.close(self._read_fd)
                self._read_fd = -1
            self._read_fd = os.open(self._segment_path(start.segment), os.O_RDONLY)
            self._fds.append(self._read_fd)
            self._read_seq = start.segment
        frames: list[bytes] = []
        times: list[int] = []
        offset = last_offset = start.offset
        first_chunk = want = min(_READ_CHUNK, max(4096, 256 * max_records))  # a small block reads little
        while len(frames) < max_records and offset < limit:
            asked = min(want, limit - offset)
            data = os.pread(self._read_fd, asked, offset)
            if len(data) < asked:
                raise SpoolCorruptError(
                    str(self._segment_path(start.segment)),
                    offset + len(data),
                    f"the file ends before the acknowledged data does (byte {limit})",
                )
            view = memoryview(data)
            at = 0
            length = 0
            while len(frames) < max_records and at + RECORD_HEAD_BYTES <= len(data):
                crc, length_flags, received = _RECORD_HEAD.unpack_from(data, at)
                length = length_flags & _LENGTH_MASK
                end = at + RECORD_HEAD_BYTES + length
                if end > len(data):
                    break
                if _crc32(view[at + 4 : end]) != crc or length_flags & SEAL:
                    raise SpoolCorruptError(
                        str(self._segment_path(start.segment)), offset + at, "record checksum mismatch"
                    )
                frames.append(data[at + RECORD_HEAD_BYTES : end])
                times.append(received)
                last_offset = offset + at
                at = end
            if at == 0:  # one record longer than the chunk: read exactly that record
                if len(data) >= RECORD_HEAD_BYTES and offset + RECORD_HEAD_BYTES + length <= limit:
                    want = RECORD_HEAD_BYTES + length
                    continue
                raise SpoolCorruptError(
                    str(self._segment_path(start.segment)),
                    offset,
                    f"a record runs past the end of the acknowledged data (byte {limit})",
                )
            offset += at
            want = max(first_chunk, want)
        return frames, times, last_offset, offset

    def _record_issued(self, end: SpoolPosition) -> None:
        body = _ISSUED_BODY.pack(*end)
        os.write(self._issued_fd, _ISSUED.pack(_crc32(body), *end))
        _datasync(self._issued_fd)

    def commit(self, block: Block) -> None:
        """Durably records that everything up to the end of `block` is in the warehouse.

        Cumulative, like a consumer offset: committing a block also commits the blocks handed out
        before it. Committing a block again is a no-op. Segments wholly flushed are deleted.
        """
        with self._flush_lock:
            self._check_usable()
            if block.end <= self._committed:
                return
            try:
                index = self._issued.index(block.end)
            except ValueError:
                raise ValueError(
                    f"block {block.token} was not handed out by stream spool {self.directory}"
                ) from None
            committed = self._advance(block.end)
            self._replace_durably(
                self.directory / "checkpoint.json",
                json.dumps({"format": _FORMAT, **committed._asdict()}).encode(),
            )
            self._committed = committed
            del self._issued[: index + 1]
            self._replay_index = max(0, self._replay_index - (index + 1))
            self._cursor = max(self._cursor, committed)
            self._compact_issued()
            with self._meta:
                flushed = [s for s in self._segments.values() if s.seq < committed.segment]
            # Not fsyncing the directory after these: a segment that comes back is deleted at open.
            for segment in flushed:
                self._segment_path(segment.seq).unlink()
                with self._meta:
                    del self._segments[segment.seq]
                    self._size_bytes -= segment.file_bytes

    def rewind(self) -> None:
        """Hands out the uncommitted blocks again, from the last commit (after a failed flush, say)."""
        with self._flush_lock:
            self._check_usable()
            self._cursor = self._committed
            self._replay_index = 0

    def _compact_issued(self) -> None:
        if not self._issued:
            # Entries at or before the checkpoint are skipped at open, so this needs no fsync.
            os.ftruncate(self._issued_fd, 0)
        elif os.fstat(self._issued_fd).st_size > _ISSUED_LOG_COMPACT_BYTES:
            entries = b"".join(_ISSUED.pack(_crc32(_ISSUED_BODY.pack(*e)), *e) for e in self._issued)
            path = self.directory / "issued-blocks"
            self._replace_durably(path, entries)
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
            self._fds.remove(self._issued_fd)
            os.close(self._issued_fd)
            self._issued_fd = fd
            self._fds.append(fd)

    def _advance(self, position: SpoolPosition) -> SpoolPosition:
        """The same place, moved past the end of sealed segments to the start of the next one."""
        with self._meta:
            while True:
                segment = self._segments.get(position.segment)
                if segment is None or not segment.sealed or position.offset < segment.data_end:
                    return position
                later = [s for s in self._segments if s > position.segment]
                position = SpoolPosition(later[0], HEADER_BYTES, 0)

    # ---- introspection and lifecycle ------------------------------------------------------------

    def stats(self) -> SpoolStats:
        with self._flush_lock:
            self._check_usable()
            committed = self._committed
            with self._meta:
                segments = list(self._segments.values())
                size = self._size_bytes
            records = unflushed_bytes = 0
            oldest_at: SpoolPosition | None = None
            for segment in segments:
                if segment.seq < committed.segment:
                    continue
                offset, record = (
                    (committed.offset, committed.record)
                    if segment.seq == committed.segment
                    else (HEADER_BYTES, 0)
                )
                if segment.data_end > offset and oldest_at is None:
                    oldest_at = SpoolPosition(segment.seq, offset, record)
                records += segment.records - record
                unflushed_bytes += segment.data_end - offset
            return SpoolStats(
                size_bytes=size,
                segments=len(segments),
                unflushed_records=records,
                unflushed_bytes=unflushed_bytes,
                oldest_unflushed_received_at_ns=self._received_at(oldest_at) if oldest_at else None,
                torn_records_truncated=self._torn_records,
                torn_bytes_truncated=self._torn_bytes,
            )

    def _received_at(self, position: SpoolPosition) -> int:
        if self._oldest_cache is None or self._oldest_cache[0] != position:
            with self._segment_path(position.segment).open("rb") as f:
                f.seek(position.offset)
                head = f.read(RECORD_HEAD_BYTES)
            self._oldest_cache = (position, _RECORD_HEAD.unpack(head)[2])
        return self._oldest_cache[1]

    def _replace_durably(self, path: Path, data: bytes) -> None:
        temporary = path.with_name(path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _pwrite_all(fd, data, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        os.fsync(self._dir_fd)

    def _segment_path(self, seq: int) -> Path:
        return self.directory / f"{seq:020d}.seg"

    def _check_usable(self) -> None:
        if self._closed:
            raise SpoolError(f"stream spool {self.directory} is closed; open a new Spool on it")

    def close(self) -> None:
        """Releases the files and the directory lock. Appended data is already durable."""
        with self._append_lock, self._flush_lock:
            if not self._closed:
                self._closed = True
                self._close_fds()

    def _close_fds(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        if getattr(self, "_dir_fd", -1) >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1
        os.close(self._lock_fd)  # last: releases the flock

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
