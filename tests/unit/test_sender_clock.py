"""Placing received frames by their sender reports (recorder_container/sender_clock.py), and the
two places it reaches into aiortc (a receiver's timestamp origin, its RTCP handler): if an
aiortc upgrade moves them, these tests fail."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket

from recorder_container.mixed_recording import nearest
from recorder_container.sender_clock import CODEC_DELAY_S, DRIFT_S, HOLD_S, NTP_TO_UNIX, FeedClock, ntp_seconds
from recorder_container.subscriber import rtp_origin, watch_sender_reports

T0 = 1_764_000_000.0  # the sender's clock when the first samples were taken
AUDIO_ORIGIN, VIDEO_ORIGIN = 1_000_000, 4_294_000_000  # RTP timestamps of pts 0 (the video's about to wrap)


def ntp(unix: float) -> int:
    seconds = unix + NTP_TO_UNIX
    return (int(seconds) << 32) | round((seconds % 1) * (1 << 32))


def feed() -> FeedClock:
    clock = FeedClock("alice")
    clock.add("0", "audio", lambda: AUDIO_ORIGIN)
    clock.add("1", "video", lambda: VIDEO_ORIGIN)
    return clock


def report(clock: FeedClock, mid: str, taken: float, origin: int, rate: int, pts: int) -> None:
    """The sender says the sample at `pts` was taken at `taken`."""
    clock.sender_report(mid, ntp(taken), (origin + pts) % (1 << 32))


def test_ntp_timestamps_read_as_unix_seconds() -> None:
    assert ntp_seconds(ntp(T0 + 0.25)) == pytest.approx(T0 + 0.25, abs=1e-6)


def test_before_any_report_a_stream_is_placed_by_arrival_less_its_kinds_hold() -> None:
    clock = feed()
    assert clock.place("0", 0, 100.0) == pytest.approx(100.0 - HOLD_S["audio"] - CODEC_DELAY_S["audio"])
    assert clock.place("0", 960, 100.5) == pytest.approx(100.02 - HOLD_S["audio"] - CODEC_DELAY_S["audio"])
    assert clock.place("1", 0, 100.0) == pytest.approx(100.0 - HOLD_S["video"])
    # the second picture tells the frame interval (15 fps): that is how long each picture was held
    assert clock.place("1", 6000, 100.2) == pytest.approx(100.2 - 6000 / 90000)
    assert clock.place("1", 12000, 100.3) == pytest.approx(100.2)


def test_sound_and_picture_taken_together_land_together_whatever_each_waited_on_the_way() -> None:
    clock = feed()
    arrival = 500.0  # the recorder's clock: far from the sender's
    # every 2 s a flash and a beep taken at the same instant; the picture waits a frame longer
    for k in range(5):
        audio_pts, video_pts = k * 96000, k * 180000
        report(clock, "0", T0 + 2 * k, AUDIO_ORIGIN, 48000, audio_pts)
        report(clock, "1", T0 + 2 * k, VIDEO_ORIGIN, 90000, video_pts)
        beep = clock.place("0", audio_pts, arrival + 2 * k + 0.08)
        flash = clock.place("1", video_pts, arrival + 2 * k + 0.067 + 0.01 * (k % 2))  # and jitters
        assert flash - beep == pytest.approx(CODEC_DELAY_S["audio"], abs=1e-6)
    assert clock.offset_ms() == pytest.approx((T0 - arrival) * 1000, abs=1)


def test_the_sound_does_not_move_when_the_first_report_comes() -> None:
    clock = feed()
    first = clock.place("0", 0, 100.0)
    report(clock, "0", T0 + 0.5, AUDIO_ORIGIN, 48000, 24000)  # says something else of the arrival
    assert clock.place("0", 48000, 101.3) == pytest.approx(first + 1.0)


def test_a_report_moves_a_stream_only_past_the_drift_allowance() -> None:
    clock = feed()
    report(clock, "0", T0, AUDIO_ORIGIN, 48000, 0)
    start = clock.place("0", 0, 100.0)
    report(clock, "0", T0 + 1 + DRIFT_S / 2, AUDIO_ORIGIN, 48000, 48000)  # the sender's jitter
    assert clock.place("0", 96000, 102.0) == pytest.approx(start + 2.0)
    report(clock, "0", T0 + 3 + 2 * DRIFT_S, AUDIO_ORIGIN, 48000, 144000)  # its clock drifted
    assert clock.place("0", 192000, 104.0) == pytest.approx(start + 4.0 + 2 * DRIFT_S)


def test_a_report_from_the_other_side_of_a_timestamp_wrap() -> None:
    clock = FeedClock("bob")
    clock.add("1", "video", lambda: VIDEO_ORIGIN)
    report(clock, "1", T0 + 20, VIDEO_ORIGIN, 90000, 20 * 90000)  # its RTP timestamp wrapped past 0
    assert (20 * 90000 + VIDEO_ORIGIN) >= 1 << 32
    first = clock.place("1", 0, 100.0)  # the video alone sets the clock
    assert first == pytest.approx(100.0 - HOLD_S["video"])
    assert clock.place("1", 30 * 90000, 130.05) == pytest.approx(first + 30)


def test_timestamps_that_leap_are_placed_by_arrival_again() -> None:
    clock = feed()
    report(clock, "0", T0, AUDIO_ORIGIN, 48000, 0)
    clock.place("0", 0, 100.0)
    leapt = 48000 * 3600  # an hour ahead of what the report says, arriving a second later
    assert clock.place("0", leapt, 101.0) == pytest.approx(101.0 - HOLD_S["audio"] - CODEC_DELAY_S["audio"])


def fake_receiver(kind: str) -> RTCRtpReceiver:
    return RTCRtpReceiver(kind, SimpleNamespace(state="new", _stats_id="transport", _get_stats=dict))  # type: ignore[arg-type]


def test_a_receivers_timestamp_origin_is_where_aiortc_keeps_it() -> None:
    receiver = fake_receiver("video")
    origin = rtp_origin(receiver)
    assert origin() is None
    receiver._RTCRtpReceiver__timestamp_mapper.map(123456)  # type: ignore[attr-defined]
    assert origin() == 123456


def test_sender_reports_reach_the_clock_and_aiortc_but_not_those_of_retransmissions() -> None:
    receiver = fake_receiver("video")
    receiver._RTCRtpReceiver__rtx_ssrc = {2222: 1111}  # type: ignore[attr-defined]
    seen: list[tuple[int, int]] = []
    watch_sender_reports(receiver, lambda n, r: seen.append((n, r)))

    def sr(ssrc: int, rtp: int) -> RtcpSrPacket:
        return RtcpSrPacket(ssrc=ssrc, sender_info=RtcpSenderInfo(ntp_timestamp=ntp(T0), rtp_timestamp=rtp,
                                                                   packet_count=1, octet_count=100))

    asyncio.run(receiver._handle_rtcp_packet(sr(1111, 5)))
    asyncio.run(receiver._handle_rtcp_packet(sr(2222, 6)))
    assert seen == [(ntp(T0), 5)]
    stats = asyncio.run(receiver.getStats())
    assert any(s.type == "remote-outbound-rtp" for s in stats.values())  # aiortc still had it


def test_a_mixed_picture_shows_each_windows_picture_taken_nearest_its_time() -> None:
    pictures = [(10.0, "a"), (10.066, "b"), (10.133, "c")]
    assert nearest(pictures, 10.05) == "a"  # "b" arrived, but was taken after the picture's time
    assert nearest(pictures, 10.07) == "b"
    assert nearest(pictures, 11.0) == "c"
    assert nearest(pictures, 9.0) == "a"  # the window's first picture: shown rather than nothing
    assert nearest([], 10.0) is None
