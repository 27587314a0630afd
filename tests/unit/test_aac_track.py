"""A stream's sound on one sample clock (recorder_container/aac_track.py): a source placed a
little later or earlier than its own timestamps run (a sender report re-placed it) gets silence
put in or the overlap left out, and goes on being encoded."""

from __future__ import annotations

import fractions

import av
import numpy as np

from recorder_container.aac_track import AAC_FRAME, SLACK, AacTrack

RATE = 48000


def opus_like(index: int) -> av.AudioFrame:
    """20 ms of a tone as aiortc hands it out: s16 mono, pts counting its samples."""
    t = (np.arange(960) + index * 960) / RATE
    frame = av.AudioFrame.from_ndarray((np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1),
                                       format="s16", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = RATE, index * 960, fractions.Fraction(1, RATE)
    return frame


def samples_encoded(moves: dict[int, int]) -> tuple[int, int]:
    """Feed 100 frames, the place moving by `moves[i]` samples at frame i; (AAC frames out, silence in)."""
    track = AacTrack(RATE, 1, 64000)
    track.start(0)
    packets, shift = [], 0
    for i in range(100):
        shift += moves.get(i, 0)
        packets += track.add(opus_like(i), i * 960 + shift)
    packets += track.finish()
    return len(packets), track.silence_samples


def test_a_source_placed_later_gets_silence_and_goes_on() -> None:
    plain, _ = samples_encoded({})
    later, silence = samples_encoded({40: 629})  # 13 ms later from the 41st frame on
    assert silence == 629
    assert later >= plain  # nothing after the move was lost
    assert later * AAC_FRAME >= 100 * 960 + 629


def test_a_source_placed_earlier_loses_the_overlap_and_goes_on() -> None:
    earlier, silence = samples_encoded({40: -2 * SLACK})
    assert silence == 0
    assert earlier * AAC_FRAME >= 100 * 960 - 2 * SLACK
