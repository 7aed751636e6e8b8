"""A zip archive's single member re-wrapped as a gzip stream, without inflating it.

A zip member compressed with DEFLATE is a raw deflate stream; a gzip file is the same stream between a
10-byte header and a trailer of the CRC-32 and size, which the zip's directory already holds. Re-wrapping
costs a copy of the compressed bytes, so ClickHouse (which reads gzip, not zip) inflates the CSV itself,
in C++ and beside its parser, instead of Python inflating it first.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import IO

from warehouse_assets.lib.errors import ArchiveFormatError

_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")  # PKZIP local file header, fixed part
_LOCAL_SIGNATURE = 0x04034B50
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no mtime, unknown OS


def single_member(path: Path) -> zipfile.ZipInfo:
    """The one CSV a data.binance.vision zip holds; `ArchiveFormatError` for anything else."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
    except zipfile.BadZipFile as exc:
        raise ArchiveFormatError(path.name, f"not a readable zip file ({exc})") from None
    if len(members) != 1 or not members[0].filename.endswith(".csv"):
        raise ArchiveFormatError(
            path.name, f"expected exactly one .csv member, found {[m.filename for m in members]}"
        )
    return members[0]


def zip_member_as_gzip(path: Path, dest_dir: Path) -> tuple[Path, str]:
    """(a file holding the member's CSV, ClickHouse's name for its compression: 'gzip' or 'none')."""
    info = single_member(path)
    with path.open("rb") as source:
        source.seek(info.header_offset)
        header = source.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or _LOCAL_HEADER.unpack(header)[0] != _LOCAL_SIGNATURE:
            raise ArchiveFormatError(path.name, "the zip's local file header is damaged")
        *_, name_length, extra_length = _LOCAL_HEADER.unpack(header)
        source.seek(name_length + extra_length, 1)
        if info.compress_type == zipfile.ZIP_DEFLATED:
            target, compression = dest_dir / (Path(info.filename).name + ".gz"), "gzip"
        elif info.compress_type == zipfile.ZIP_STORED:
            target, compression = dest_dir / Path(info.filename).name, "none"
        else:
            raise ArchiveFormatError(
                path.name, f"zip compression method {info.compress_type} is not supported"
            )
        with target.open("wb") as sink:
            if compression == "gzip":
                sink.write(_GZIP_HEADER)
            _copy(source, sink, info.compress_size, path.name)
            if compression == "gzip":
                sink.write(struct.pack("<II", info.CRC, info.file_size & 0xFFFFFFFF))
    return target, compression


def _copy(source: IO[bytes], sink: IO[bytes], size: int, file: str) -> None:
    remaining = size
    while remaining:
        chunk = source.read(min(remaining, 1 << 22))
        if not chunk:
            raise ArchiveFormatError(file, "the zip member is cut short")
        sink.write(chunk)
        remaining -= len(chunk)
