"""Just enough H.264 bitstream reading for remuxing: NAL units of an Annex-B access unit,
keyframes, the picture size from the SPS, and frame_num from slice headers (a gap in
frame_num is a lost frame)."""

from __future__ import annotations

import re
from dataclasses import dataclass

IDR, SPS, PPS = 5, 7, 8
_START = re.compile(b"\x00\x00\x01")


def nal_units(access_unit: bytes) -> list[bytes]:
    """The NAL units of an Annex-B access unit, without start codes."""
    starts = [m.end() for m in _START.finditer(access_unit)]
    units = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(access_unit)
        unit = access_unit[start:end].rstrip(b"\x00") if i + 1 < len(starts) else access_unit[start:end]
        if unit:
            units.append(unit)
    return units


def nal_type(unit: bytes) -> int:
    return unit[0] & 0x1F


def _rbsp(unit: bytes) -> bytes:
    """Payload with emulation-prevention bytes (00 00 03) removed."""
    return re.sub(b"\x00\x00\x03", b"\x00\x00", unit[1:])


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3] if (self.pos >> 3) < len(self.data) else 0
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)


@dataclass(frozen=True)
class Sps:
    width: int
    height: int
    log2_max_frame_num: int
    chroma_format_idc: int


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + bits.se() + 256) % 256
        last = nxt or last


def parse_sps(unit: bytes) -> Sps:
    """Picture size and frame_num width of a sequence parameter set NAL unit."""
    bits = _Bits(_rbsp(unit))
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma = bits.ue()
        if chroma == 3:
            bits.u(1)
        bits.ue()
        bits.ue()
        bits.u(1)
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    log2_max_frame_num = bits.ue() + 4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.u(1)
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.u(1)
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)
    bits.u(1)  # direct_8x8_inference
    crop = (0, 0, 0, 0)
    if bits.u(1):
        crop = (bits.ue(), bits.ue(), bits.ue(), bits.ue())
    crop_x = 1 if chroma in (0, 3) else 2
    crop_y = (1 if chroma in (0, 3) else (2 if chroma == 1 else 1)) * (2 - frame_mbs_only)
    width = width_mbs * 16 - crop_x * (crop[0] + crop[1])
    height = height_units * 16 * (2 - frame_mbs_only) - crop_y * (crop[2] + crop[3])
    return Sps(width, height, log2_max_frame_num, chroma)


def frame_num(unit: bytes, sps: Sps) -> int:
    """frame_num of a coded slice (NAL types 1 and 5)."""
    bits = _Bits(_rbsp(unit))
    bits.ue()  # first_mb_in_slice
    bits.ue()  # slice_type
    bits.ue()  # pic_parameter_set_id
    if sps.chroma_format_idc == 3:
        bits.u(2)  # colour_plane_id (separate_colour_plane_flag assumed with 4:4:4)
    return bits.u(sps.log2_max_frame_num)


@dataclass(frozen=True)
class AccessUnit:
    """What the recorder needs to know about one encoded video frame."""

    keyframe: bool
    sps: Sps | None  # present when the access unit carries an SPS
    frame_num: int | None  # of its first slice, when an SPS is known


SLICE_HEADER_BYTES = 48  # frame_num sits within the first bytes of a slice header


def _nal_starts(access_unit: bytes) -> list[int]:
    """Offsets of the first byte after each start code."""
    starts, i = [], access_unit.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = access_unit.find(b"\x00\x00\x01", i + 3)
    return starts


def inspect(access_unit: bytes, known_sps: Sps | None) -> AccessUnit:
    """Keyframe, SPS and frame_num of an access unit, reading only the bytes that hold them
    (an access unit can be hundreds of KB; its slice data is never copied)."""
    sps = None
    keyframe = False
    num = None
    starts = _nal_starts(access_unit)
    for i, start in enumerate(starts):
        if start >= len(access_unit):
            continue
        kind = access_unit[start] & 0x1F
        if kind == SPS:
            end = starts[i + 1] - 3 if i + 1 < len(starts) else len(access_unit)
            try:
                sps = parse_sps(access_unit[start:end])
            except (ValueError, IndexError):
                sps = None
        elif kind == IDR:
            keyframe = True
        if kind in (1, IDR) and num is None and (sps or known_sps) is not None:
            num = frame_num(access_unit[start:start + SLICE_HEADER_BYTES], sps or known_sps)  # type: ignore[arg-type]
    return AccessUnit(keyframe, sps, num)
