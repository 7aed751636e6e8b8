"""The stream spool on a real directory: exact bytes back, stable tokens, rotation, the size cap, torn
tails, a writer SIGKILLed at random instants (appending, rotating, handing out blocks, committing),
and the one-writer lock across processes."""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from warehouse_assets.lib.errors import SpoolCorruptError, SpoolFullError, SpoolLockedError
from warehouse_assets.lib.spool import HEADER_BYTES, RECORD_HEAD_BYTES, Block, Spool, encode_batch


def frame(batch: int, k: int, n: int) -> bytes:
    """Record k of n in batch `batch`: says where it belongs, padded to a length that varies."""
    return b'{"b":%d,"k":%d,"n":%d,"pad":"%s"}' % (batch, k, n, b"x" * ((batch * 31 + k * 17) % 250))


def batch_size(batch: int) -> int:
    return 1 + batch * 7919 % 23


def _parse(f: bytes) -> tuple[int, int, int]:
    """(batch, k, n) back from a frame() payload."""
    head = f.split(b',"pad"')[0] + b"}"
    fields = dict(item.split(b":") for item in head.strip(b"{}").split(b","))
    return int(fields[b'"b"']), int(fields[b'"k"']), int(fields[b'"n"'])


def read_all(spool: Spool, max_records: int = 1000) -> list[Block]:
    blocks = []
    while (block := spool.read_block(max_records)) is not None:
        blocks.append(block)
    return blocks


def frames_of(blocks: list[Block]) -> list[bytes]:
    return [f for b in blocks for f in b.frames]


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def test_round_trip_gives_back_the_exact_bytes_and_times(tmp_path: Path) -> None:
    first = [b'{"e":"trade","p":"42000.10"}', b"", bytes(range(256)), "€ ü".encode()]
    second = [b'{"e":"depthUpdate"}'] * 3
    with Spool(tmp_path / "spool") as spool:
        spool.append(first, [11, 12, 13, 14])
        spool.append(second, 99)  # one receive time for the whole batch
        spool.append([], [])  # nothing to do
        a = spool.read_block(3)
        b = spool.read_block(3)
        c = spool.read_block(3)
        assert a is not None and b is not None and c is not None
        assert spool.read_block(3) is None
        assert a.frames == first[:3] and a.received_at_ns == [11, 12, 13]
        # A block ends where a segment's acknowledged data ends or at max_records, not at batch ends.
        assert b.frames == [first[3], *second[:2]] and b.received_at_ns == [14, 99, 99]
        assert c.frames == second[2:] and c.received_at_ns == [99]
        assert (a.end, b.end) == (b.start, c.start)
        assert all(isinstance(f, bytes) for f in a.frames)
        stats = spool.stats()
        assert stats.unflushed_records == 7
        assert stats.unflushed_bytes == sum(RECORD_HEAD_BYTES + len(f) for f in first + second)
        assert stats.oldest_unflushed_received_at_ns == 11
        spool.commit(a)
        assert spool.stats().oldest_unflushed_received_at_ns == 14
        assert spool.stats().unflushed_records == 4
        spool.commit(c)  # cumulative: b is flushed too
        spool.commit(b)  # already covered: no-op
        assert spool.stats().unflushed_records == 0
        assert spool.stats().oldest_unflushed_received_at_ns is None
    with Spool(tmp_path / "spool") as spool:
        assert spool.read_block(100) is None
        spool.append([b"after"], 1)
        block = spool.read_block(100)
        assert block is not None and block.frames == [b"after"]


def test_frames_larger_than_a_read_chunk_come_back_whole(tmp_path: Path) -> None:
    big = random.Random(3).randbytes(300_000)
    with Spool(tmp_path) as spool:
        spool.append([b"small", big, b"small again"], 5)
        blocks = [spool.read_block(1) for _ in range(3)]
        assert [b.frames for b in blocks if b is not None] == [[b"small"], [big], [b"small again"]]
        assert spool.read_block(1) is None


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        with pytest.raises(ValueError, match="2 frames but 1 receive times"):
            spool.append([b"a", b"b"], [1])
        with pytest.raises(ValueError, match="max_records=0"):
            spool.read_block(0)
        spool.append([b"a"], 1)
        block = spool.read_block(10)
        assert block is not None
    with Spool(tmp_path / "other") as other:
        other.append([b"a"], 1)
        with pytest.raises(ValueError, match="was not handed out by stream spool"):
            other.commit(block)


def test_tokens_and_block_boundaries_survive_reopen(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    with Spool(directory) as spool:
        for batch in range(5):
            spool.append([frame(batch, k, 10) for k in range(10)], batch)
        first, second, third = (spool.read_block(n) for n in (7, 7, 1000))
        assert first is not None and second is not None and third is not None
        assert len(third.frames) == 50 - 14
        spool.commit(first)
        spool.append([b"appended after the blocks were handed out"], 5)
    spool_id, segment, first_offset, last_offset = second.token.split(":")
    assert (int(segment), int(first_offset)) == (second.start.segment, second.start.offset)
    assert int(last_offset) == second.end.offset - RECORD_HEAD_BYTES - len(second.frames[-1])

    for _ in range(2):  # reopening twice without a commit changes nothing
        with Spool(directory) as spool:
            # Handed out again as they were, although max_records differs and more data is waiting.
            again = spool.read_block(3)
            assert again == second
            assert spool.read_block(3) == third
            fresh = spool.read_block(1000)
            assert fresh is not None and fresh.frames == [b"appended after the blocks were handed out"]
            assert fresh.token not in (first.token, second.token, third.token)
            spool.rewind()
            assert spool.read_block(1) == second

    # Another spool never produces the same tokens (its id differs), even for the same bytes.
    with Spool(tmp_path / "another") as other:
        for batch in range(5):
            other.append([frame(batch, k, 10) for k in range(10)], batch)
        other_first = other.read_block(7)
        assert other_first is not None and other_first.frames == first.frames
        assert other_first.token.split(":")[1:] == first.token.split(":")[1:]
        assert other_first.token.split(":")[0] != spool_id


def test_segments_rotate_blocks_stay_inside_one_and_flushed_ones_are_deleted(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    with Spool(directory, segment_bytes=4096, max_bytes=1 << 20) as spool:
        expected = []
        for batch in range(60):  # at most about 1 KiB a batch
            frames = [frame(batch, k, 3) for k in range(3)]
            spool.append(frames, batch)
            expected += frames
        big = [b"y" * 3000, b"z" * 3000]  # larger than a segment: written whole into its own
        spool.append(big, 60)
        expected += big
        files = segment_files(directory)
        assert len(files) >= 8
        assert [int(p.stem) for p in files] == list(range(1, len(files) + 1))
        sizes = [p.stat().st_size for p in files]
        assert max(sizes[:-1]) <= 4096 + 32 < sizes[-1]  # + 32: the seal record closing a full segment
        assert spool.stats().segments == len(files)
        assert spool.stats().size_bytes == sum(p.stat().st_size for p in files)

        blocks = read_all(spool, max_records=10_000)
        assert frames_of(blocks) == expected
        assert all(b.start.segment == b.end.segment for b in blocks)
        assert [b.start.segment for b in blocks] == [int(p.stem) for p in files]
        spool.commit(blocks[4])
        # Segments 1..5 are wholly flushed; the checkpoint moved to the start of segment 6.
        assert [int(p.stem) for p in segment_files(directory)] == list(range(6, len(files) + 1))
        spool.commit(blocks[-1])
        assert segment_files(directory) == [files[-1]]
        assert spool.stats().unflushed_records == 0
    with Spool(directory, segment_bytes=4096, max_bytes=1 << 20) as spool:
        assert spool.read_block(10) is None
        # The newest segment held records, so appends continue in a new one; the flushed one goes.
        assert [int(p.stem) for p in segment_files(directory)] == [len(files), len(files) + 1]


def test_the_size_cap_refuses_appends_with_a_message_that_says_what_to_do(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    with Spool(directory, segment_bytes=4096, max_bytes=16384) as spool:
        appended = 0
        with pytest.raises(SpoolFullError) as info:
            while True:
                spool.append([b"m" * 200] * 5, appended)
                appended += 1
        error = info.value
        assert spool.stats().size_bytes == error.size_bytes <= 16384 < error.size_bytes + error.batch_bytes
        message = str(error)
        assert str(directory) in message
        assert "cap of 16384 bytes" in message and f"{error.size_bytes} bytes" in message
        assert "warehouse is probably down or locked" in message and "STREAM_SPOOL_MAX_BYTES" in message
        assert str(pickle.loads(pickle.dumps(error))) == message
        # The refused batch was not written; once the flusher drains the spool, appends work again.
        blocks = read_all(spool)
        assert len(frames_of(blocks)) == appended * 5
        spool.commit(blocks[-1])
        spool.append([b"m" * 200] * 5, appended)


TAILS: dict[str, Callable[[], tuple[bytes, int]]] = {
    # name: (bytes appended to the newest segment, torn records expected)
    "garbage": lambda: (random.Random(7).randbytes(100), 1),
    "half a record": lambda: (encode_batch([b'{"e":"trade"}'], [1])[: RECORD_HEAD_BYTES + 5], 1),
    "a batch without its last record": lambda: (
        encode_batch([b"r1", b"r2", b"r3"], [1, 2, 3])[: 2 * (RECORD_HEAD_BYTES + 2)],
        2,
    ),
    "zeros": lambda: (bytes(4096), 1),
    "a record with a flipped bit": lambda: (
        bytes([*encode_batch([b'{"e":"trade"}'], [1])[:-1], ord("}") ^ 1]),
        1,
    ),
}


@pytest.mark.parametrize("tail_name", TAILS)
def test_a_torn_tail_is_truncated_and_everything_before_it_kept(tmp_path: Path, tail_name: str) -> None:
    directory = tmp_path / "spool"
    batches = [[frame(b, k, 4) for k in range(4)] for b in range(3)]
    with Spool(directory) as spool:
        for number, batch in enumerate(batches):
            spool.append(batch, number)
    newest = segment_files(directory)[-1]
    intact_size = newest.stat().st_size
    tail, torn_records = TAILS[tail_name]()
    with newest.open("ab") as f:
        f.write(tail)

    with Spool(directory) as spool:
        stats = spool.stats()
        assert (stats.torn_records_truncated, stats.torn_bytes_truncated) == (torn_records, len(tail))
        assert stats.unflushed_records == 12
        # Truncated to the end of the last complete batch, then sealed (a 32-byte seal record).
        assert newest.stat().st_size == intact_size + 32
        spool.append([b"next"], 3)
        blocks = read_all(spool)
        assert frames_of(blocks) == [f for batch in batches for f in batch] + [b"next"]
        assert [t for b in blocks for t in b.received_at_ns] == [0] * 4 + [1] * 4 + [2] * 4 + [3]
    with Spool(directory) as spool:
        assert spool.stats().torn_bytes_truncated == 0


def test_a_torn_segment_creation_is_repaired(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    with Spool(directory) as spool:
        spool.append([b"kept"], 1)
    with Spool(directory):  # seals segment 1 and starts segment 2
        pass
    newest = directory / f"{2:020d}.seg"
    newest.write_bytes(newest.read_bytes()[:4])  # as if the crash came while writing its header
    with Spool(directory) as spool:
        spool.append([b"also kept"], 2)
        assert frames_of(read_all(spool)) == [b"kept", b"also kept"]
        assert [p.name for p in segment_files(directory)] == [f"{1:020d}.seg", f"{2:020d}.seg"]


def test_corruption_of_acknowledged_data_is_an_error_naming_the_file(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    with Spool(directory, segment_bytes=4096, max_bytes=1 << 20) as spool:
        for batch in range(10):
            spool.append([frame(batch, k, 5) for k in range(5)], batch)
    first = segment_files(directory)[0]
    data = bytearray(first.read_bytes())
    data[HEADER_BYTES + RECORD_HEAD_BYTES + 3] ^= 0x40  # inside the first payload
    first.write_bytes(bytes(data))
    with Spool(directory, segment_bytes=4096, max_bytes=1 << 20) as spool:
        with pytest.raises(SpoolCorruptError) as info:
            spool.read_block(100)
        assert str(first) in str(info.value) and f"byte {HEADER_BYTES}:" in str(info.value)
        assert "move the spool directory aside" in str(info.value)
    first.write_bytes(bytes(data[:-10]))  # an older segment that lost its seal
    with pytest.raises(SpoolCorruptError, match="does not end with a valid seal record"):
        Spool(directory, segment_bytes=4096, max_bytes=1 << 20)


def test_appends_and_flushes_from_two_threads(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool", segment_bytes=16384, max_bytes=1 << 24) as spool:
        expected = [frame(b, k, batch_size(b)) for b in range(400) for k in range(batch_size(b))]
        done = threading.Event()

        def ingest() -> None:
            for b in range(400):
                spool.append([frame(b, k, batch_size(b)) for k in range(batch_size(b))], b)
            done.set()

        seen: list[bytes] = []
        writer = threading.Thread(target=ingest)
        writer.start()
        while not (done.is_set() and spool.stats().unflushed_records == 0):
            block = spool.read_block(37)
            if block is not None:
                seen += block.frames
                spool.commit(block)
        writer.join()
        assert seen == expected
        assert len(segment_files(tmp_path / "spool")) == 1


# The child appends batches (batch b holds batch_size(b) records made by frame()), hands out blocks
# and commits, and reports each step on stdout only after it returned: "A b", "R token count",
# "c token" just before a commit, "C token" after it.
CHILD = r"""
import random, sys
from pathlib import Path
from warehouse_assets.lib.spool import Spool

def frame(batch, k, n):
    return b'{"b":%d,"k":%d,"n":%d,"pad":"%s"}' % (batch, k, n, b"x" * ((batch * 31 + k * 17) % 250))

directory, batch, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
spool = Spool(directory, segment_bytes=8192, max_bytes=1 << 26)
out = sys.stdout
out.write("open\n")
out.flush()
handed_out = []
while True:
    n = 1 + batch * 7919 % 23
    spool.append([frame(batch, k, n) for k in range(n)], [batch * 1000 + k for k in range(n)])
    out.write(f"A {batch}\n")
    out.flush()
    batch += 1
    if rng.random() < 0.5:
        block = spool.read_block(rng.randint(1, 60))
        if block is not None:
            handed_out.append(block)
            out.write(f"R {block.token} {len(block.frames)}\n")
            out.flush()
    if handed_out and rng.random() < 0.3:
        upto = rng.randrange(len(handed_out))
        block = handed_out[upto]
        del handed_out[: upto + 1]
        out.write(f"c {block.token}\n")
        out.flush()
        spool.commit(block)
        out.write(f"C {block.token}\n")
        out.flush()
"""


def _run_child_until_killed(directory: Path, first_batch: int, seed: int, after: float) -> list[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), str(first_batch), str(seed)],
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    lines: list[str] = []
    opened = threading.Event()

    def drain() -> None:  # keep the pipe empty so the child never blocks on a report
        assert child.stdout is not None
        for raw in child.stdout:
            if raw.endswith(b"\n"):
                lines.append(raw.decode().strip())
                opened.set()

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        assert opened.wait(15), "the child never opened the spool"
        time.sleep(after)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        reader.join()
    assert lines[0] == "open"
    assert child.returncode == -signal.SIGKILL
    return lines[1:]


def test_sigkill_at_random_instants_loses_nothing_acknowledged_and_replays_the_rest_once(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "spool"
    rng = random.Random(20260509)
    records: list[tuple[int, int, int]] = []  # (batch, k, n) of every acknowledged record, in order
    committed = 0  # records before the last commit known to be durable
    pending: list[tuple[str, int, int]] = []  # handed-out blocks not committed: token, start, count
    next_batch = 0
    inflight_seen = {"append": 0, "commit": 0, "torn tail": 0}

    def batch_records(b: int) -> list[tuple[int, int, int]]:
        return [(b, k, batch_size(b)) for k in range(batch_size(b))]

    for iteration in range(10):
        lines = _run_child_until_killed(directory, next_batch, iteration, rng.uniform(0.05, 0.35))
        handed = 0  # how many of `pending` the child has handed out (again) so far
        inflight_commit: tuple[str, int, int] | None = None
        for line in lines:
            kind, *rest = line.split()
            if kind == "A":
                assert int(rest[0]) == next_batch
                records += batch_records(next_batch)
                next_batch += 1
            elif kind == "R":
                token, count = rest[0], int(rest[1])
                if handed < len(pending):  # a block from before the crash: same records, same token
                    assert (token, count) == (pending[handed][0], pending[handed][2])
                else:
                    start = pending[-1][1] + pending[-1][2] if pending else committed
                    pending.append((token, start, count))
                handed += 1
            elif kind == "c":
                inflight_commit = next(p for p in pending if p[0] == rest[0])
            elif kind == "C":
                index = [p[0] for p in pending].index(rest[0])
                committed = pending[index][1] + pending[index][2]
                del pending[: index + 1]
                handed -= index + 1
                inflight_commit = None
        assert handed >= 0 and next_batch > 0

        with Spool(directory, segment_bytes=8192, max_bytes=1 << 26) as spool:
            inflight_seen["torn tail"] += spool.stats().torn_records_truncated
            blocks = read_all(spool, max_records=rng.randint(1, 80))
            got = [_parse(f) for f in frames_of(blocks)]
            for block in blocks:
                for f, at in zip(block.frames, block.received_at_ns, strict=True):
                    b, k, n = _parse(f)
                    assert f == frame(b, k, n) and at == b * 1000 + k
            # Which of the in-flight operations (if any) reached the disk decides what is replayed;
            # exactly one reading must fit, and no batch may be partial.
            starts = {committed}
            if inflight_commit is not None:
                starts.add(inflight_commit[1] + inflight_commit[2])
            fits = [
                (start, extra)
                for start in starts
                for extra in (False, True)
                if got == records[start:] + (batch_records(next_batch) if extra else [])
            ]
            assert len(fits) == 1, (iteration, len(got), committed, starts, len(records))
            start, extra = fits[0]
            if start != committed:
                inflight_seen["commit"] += 1
                assert inflight_commit is not None
                index = pending.index(inflight_commit)
                del pending[: index + 1]
                committed = start
            if extra:
                inflight_seen["append"] += 1
                records += batch_records(next_batch)
                next_batch += 1
            # Blocks handed out before the crash come back first, with their boundaries and tokens.
            assert [(b.token, len(b.frames)) for b in blocks[: len(pending)]] == [
                (token, count) for token, _, count in pending
            ]
            # An in-flight read_block may have been recorded: the blocks after are new, any boundaries.
            pending = []
            position = committed
            for block in blocks:
                pending.append((block.token, position, len(block.frames)))
                position += len(block.frames)
            if blocks and rng.random() < 0.7:
                index = rng.randrange(len(blocks))
                spool.commit(blocks[index])
                committed = pending[index][1] + pending[index][2]
                del pending[: index + 1]
            assert spool.stats().unflushed_records == len(records) - committed

    assert next_batch > 100, "the children appended too little to exercise anything"
    with Spool(directory, segment_bytes=8192, max_bytes=1 << 26) as spool:
        remainder = read_all(spool, max_records=1000)
        assert [_parse(f) for f in frames_of(remainder)] == records[committed:]
        if remainder:
            spool.commit(remainder[-1])
        assert spool.stats().unflushed_records == 0
    with Spool(directory, segment_bytes=8192, max_bytes=1 << 26) as spool:
        assert spool.read_block(1000) is None
        assert len(segment_files(directory)) == 1
    print(f"after SIGKILL, found durable: {inflight_seen}")


OPENER = """
import sys
from pathlib import Path
from warehouse_assets.lib.errors import SpoolLockedError
from warehouse_assets.lib.spool import Spool
try:
    Spool(Path(sys.argv[1])).close()
    print("opened")
except SpoolLockedError as exc:
    print(exc)
"""


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    directory = tmp_path / "spool"

    def open_elsewhere() -> str:
        run = subprocess.run(
            [sys.executable, "-c", OPENER, str(directory)], capture_output=True, text=True, check=True
        )
        return run.stdout.strip()

    with Spool(directory):
        message = open_elsewhere()
        assert message.startswith(f"stream spool {directory} is in use by process {os.getpid()}")
        assert "stop that process" in message
        with pytest.raises(SpoolLockedError) as info:  # a second Spool object in this process too
            Spool(directory)
        assert info.value.holder_pid == os.getpid()
        assert pickle.loads(pickle.dumps(info.value)).holder_pid == os.getpid()
    assert open_elsewhere() == "opened"
