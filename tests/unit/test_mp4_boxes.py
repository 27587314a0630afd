"""The MP4 box walker the output tests judge layouts with (tests/support/mp4_boxes.py), on
hand-made headers: 32-bit sizes, 64-bit sizes, a box running to the end, damage."""

from __future__ import annotations

import io
import struct

import pytest

from tests.support.mp4_boxes import Box, boxes


def _box(kind: str, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind.encode()) + body


def _large_box(kind: str, body: bytes) -> bytes:
    return struct.pack(">I4sQ", 1, kind.encode(), 16 + len(body)) + body


def test_sizes_of_32_and_64_bits_and_a_box_to_the_end() -> None:
    data = (_box("ftyp", b"isom" + bytes(12)) + _large_box("mdat", bytes(40))
            + struct.pack(">I4s", 0, b"moov") + bytes(9))
    assert boxes(io.BytesIO(data)) == [Box("ftyp", 0, 24), Box("mdat", 24, 56), Box("moov", 80, 17)]


def test_a_64_bit_size_past_4_gb_is_read_whole() -> None:
    header = struct.pack(">I4sQ", 1, b"mdat", (1 << 32) + 16)
    with pytest.raises(ValueError, match=r"'mdat' at 0 claims 4294967312 bytes"):
        boxes(io.BytesIO(header))  # read as 64 bits: too big for this file, not 16 bytes


@pytest.mark.parametrize(("data", "message"), [
    (_box("ftyp", bytes(8)) + b"\x00\x00\x00", "a box header at 16 is cut short"),
    (struct.pack(">I4s", 1, b"mdat") + b"\x00\x00", "the 64-bit size of 'mdat' at 0 is cut short"),
    (struct.pack(">I4s", 4, b"free"), "'free' at 0 claims 4 bytes"),
    (_box("ftyp", bytes(8))[:-1], "'ftyp' at 0 claims 16 bytes; the file has 15 left"),
])
def test_damage_is_an_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        boxes(io.BytesIO(data))
