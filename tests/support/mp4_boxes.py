"""The top-level boxes of an MP4 file (ISO/IEC 14496-12 §4.2), read from their headers alone:
enough to tell whether the index (moov) comes before the media (mdat)."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class Box:
    type: str  # four characters: ftyp, moov, mdat, free…
    offset: int  # of its header, from the start of the file
    size: int  # header included


def boxes(file: BinaryIO) -> list[Box]:
    """The file's top-level boxes in file order. A header is a 32-bit size and a type; size 1
    means a 64-bit size follows the type, size 0 that the box runs to the end of the file.
    Raises ValueError for a header cut short or a size that does not fit the file."""
    end = file.seek(0, os.SEEK_END)
    found: list[Box] = []
    offset = 0
    while offset < end:
        file.seek(offset)
        header = file.read(8)
        if len(header) < 8:
            raise ValueError(f"a box header at {offset} is cut short ({len(header)} of 8 bytes)")
        size, raw = struct.unpack(">I4s", header)
        kind = raw.decode("latin-1")
        header_size = 8
        if size == 1:
            large = file.read(8)
            if len(large) < 8:
                raise ValueError(f"the 64-bit size of {kind!r} at {offset} is cut short")
            (size,) = struct.unpack(">Q", large)
            header_size = 16
        elif size == 0:
            size = end - offset
        if size < header_size or offset + size > end:
            raise ValueError(f"{kind!r} at {offset} claims {size} bytes; the file has {end - offset} left")
        found.append(Box(kind, offset, size))
        offset += size
    return found


def box_types(path: Path) -> list[str]:
    """The types of a file's top-level boxes, in file order."""
    with path.open("rb") as file:
        return [box.type for box in boxes(file)]


def index_first(path: Path) -> bool:
    """Whether the file's index (moov) comes before its media (mdat): a player can start as soon
    as the first bytes arrive ("faststart")."""
    types = box_types(path)
    return "moov" in types and "mdat" in types and types.index("moov") < types.index("mdat")
