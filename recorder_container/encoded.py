"""Video as the publisher encoded it, before any decoding: what a subscription hands the
recording for H.264 (see codec_seam) and what the mixed recording's encoder makes."""

from __future__ import annotations

import fractions
from dataclasses import dataclass

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)


@dataclass(frozen=True)
class EncodedVideo:
    """One H.264 access unit (Annex-B) as it arrived, before any decoding."""

    data: bytes
    pts: int  # 90 kHz, aiortc's mapped RTP timestamp
    time_base: fractions.Fraction = VIDEO_TIME_BASE
