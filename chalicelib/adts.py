"""ADTS framing of raw AAC-LC frames: how MPEG-TS carries AAC (the recorder writes it, the
merge tool fills gaps with it)."""

from __future__ import annotations

SR_INDEX = {96000: 0, 88200: 1, 64000: 2, 48000: 3, 44100: 4, 32000: 5, 24000: 6, 22050: 7, 16000: 8,
            12000: 9, 11025: 10, 8000: 11}


def adts_header(payload_size: int, sample_rate: int, channels: int) -> bytes:
    """The 7-byte ADTS header (no CRC) for one raw AAC-LC frame of `payload_size` bytes."""
    n = payload_size + 7
    return bytes([
        0xFF, 0xF1,
        (1 << 6) | (SR_INDEX[sample_rate] << 2) | (channels >> 2),
        ((channels & 3) << 6) | (n >> 11),
        (n >> 3) & 0xFF,
        ((n & 7) << 5) | 0x1F,
        0xFC,
    ])
