"""Audio mixing on the wall clock, and composing the picture on YUV planes."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from chalicelib.layouts import Window
from recorder_container.audio_mixer import RECEIVE_LATENCY_S, AudioMixer, mix
from recorder_container.compositor import Canvas, overlay_from_rgba, rgb_to_yuv

T0 = 1_795_000_000.0


def tone(hz: float, seconds: float, amplitude: int = 8000, start: int = 0) -> list[av.AudioFrame]:
    frames = []
    for i in range(int(seconds * 50)):
        t = (np.arange(960) + (start + i) * 960) / 48000
        s = (np.sin(2 * np.pi * hz * t) * amplitude).astype(np.int16)
        f = av.AudioFrame.from_ndarray(np.stack([s, s]).T.reshape(1, -1).copy(), format="s16", layout="stereo")
        f.sample_rate, f.pts, f.time_base = 48000, (start + i) * 960, fractions.Fraction(1, 48000)
        frames.append(f)
    return frames


def peaks(samples: np.ndarray, rate: int) -> list[int]:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    top = np.argsort(spectrum)[-2:]
    return sorted(int(round(freqs[i])) for i in top)


def test_mix_sums_in_int32_and_clips() -> None:
    loud = np.full((1, 4), 30000, np.int16)
    assert mix([loud, loud]).tolist() == [[32767] * 4]
    assert mix([loud, -loud]).tolist() == [[0] * 4]


def test_two_voices_mix_at_the_output_rate_on_the_clock() -> None:
    mixer = AudioMixer(rate=16000, channels=1, origin=T0)
    for f in tone(440, 2):
        mixer.push("a", f, T0 + RECEIVE_LATENCY_S + f.pts / 48000)
    for f in tone(660, 1, start=50):  # the second voice starts 1 s later
        mixer.push("b", f, T0 + RECEIVE_LATENCY_S + f.pts / 48000)
    first = mixer.take(0, 16000)
    second = mixer.take(16000, 16000)
    assert peaks(first[0], 16000)[-1] == 440 and abs(np.abs(first[0, 8000:]).max() - 8000) < 400
    assert peaks(second[0], 16000) == [440, 660]


def test_gaps_are_silence_and_a_late_frame_is_trimmed() -> None:
    mixer = AudioMixer(rate=48000, channels=2, origin=T0)
    frames = tone(440, 1)
    for f in frames[:10] + frames[20:]:  # 200 ms missing (DTX)
        mixer.push("a", f, T0 + RECEIVE_LATENCY_S + f.pts / 48000)
    out = mixer.take(0, 48000)
    assert out.shape == (2, 48000)
    assert np.abs(out[:, 9600 + 100:19200 - 100]).max() == 0 and np.abs(out[:, 20000:]).max() > 7000
    mixer.push("a", frames[5], T0 + 5)  # far behind what was mixed: starts afresh, no crash
    assert mixer.take(48000, 960).shape == (2, 960)


def test_canvas_paints_windows_with_render_modes_and_alpha() -> None:
    canvas = Canvas(320, 180, (0, 0, 0))
    red = av.VideoFrame.from_ndarray(np.full((90, 160, 3), (255, 0, 0), np.uint8), format="rgb24")
    blue = av.VideoFrame.from_ndarray(np.full((180, 80, 3), (0, 0, 255), np.uint8), format="rgb24")
    canvas.begin()
    canvas.draw(red.reformat(format="yuv420p"), Window(0, 0, 160, 180, render_mode=1))  # crop fills
    canvas.draw(blue.reformat(format="yuv420p"), Window(160, 0, 160, 180, render_mode=2))  # letterbox
    y = canvas.y
    ry, _, _ = rgb_to_yuv(255, 0, 0)
    by, _, _ = rgb_to_yuv(0, 0, 255)
    assert abs(int(y[90, 80]) - ry) <= 2 and abs(int(y[0, 0]) - ry) <= 2  # red fills its whole window
    assert abs(int(y[90, 240]) - by) <= 2  # blue, centred …
    assert int(y[90, 170]) == rgb_to_yuv(0, 0, 0)[0]  # … with the background beside it
    canvas.draw(red.reformat(format="yuv420p"), Window(160, 0, 160, 180, alpha=128))  # half transparent
    mixed = int(y[90, 240])
    assert min(ry, by) < mixed < max(ry, by)
    out = canvas.frame()
    assert (out.width, out.height, out.format.name) == (320, 180, "yuv420p")


def test_overlay_blends_with_its_alpha() -> None:
    canvas = Canvas(64, 64, (0, 0, 0))
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[:8, :, 3] = 255  # top half opaque white, bottom half invisible
    canvas.begin()
    canvas.blend(overlay_from_rgba(rgba), 10, 10)
    assert canvas.y[12, 12] == rgb_to_yuv(255, 255, 255)[0] and canvas.y[22, 12] == rgb_to_yuv(0, 0, 0)[0]


def test_windows_whose_half_height_is_odd() -> None:
    canvas = Canvas(322, 362, (0, 0, 0))  # 362 / 2 = 181: chroma planes do not start on a row
    green = av.VideoFrame.from_ndarray(np.full((180, 320, 3), (0, 255, 0), np.uint8), format="rgb24")
    canvas.begin()
    canvas.draw(green.reformat(format="yuv420p"), Window(10, 8, 150, 150))
    out = canvas.frame().to_ndarray(format="rgb24")
    assert tuple(int(v) for v in out[80, 80]) == pytest.approx((0, 255, 0), abs=12)
    assert tuple(int(v) for v in out[300, 300]) == (0, 0, 0)


def test_background_image_fills_the_canvas_under_the_windows() -> None:
    canvas = Canvas(320, 180, (255, 255, 255))
    half = np.zeros((90, 160, 3), np.uint8)
    half[:, :80] = (255, 0, 0)
    half[:, 80:] = (0, 0, 255)
    canvas.set_background_image(av.VideoFrame.from_ndarray(half, format="rgb24").reformat(format="yuv420p"), 0)
    canvas.begin()
    out = canvas.frame().to_ndarray(format="rgb24")
    assert tuple(int(v) for v in out[90, 40]) == pytest.approx((255, 0, 0), abs=12)
    assert tuple(int(v) for v in out[90, 280]) == pytest.approx((0, 0, 255), abs=12)
