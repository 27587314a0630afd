"""The seam where the recorder takes encoded H.264 out of aiortc. If an aiortc upgrade moves
or changes it, these tests fail."""

from __future__ import annotations

import asyncio
import queue
import threading

import aiortc
import aiortc.rtcrtpreceiver as receiver_module
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from recorder_container import codec_seam
from tests.support.synthetic import h264_frames


def test_aiortc_decoder_worker_hands_out_encoded_access_units() -> None:
    codec_seam.install()
    assert aiortc.__version__ == "1.16.0"  # pinned: the seam below was checked against it
    unit = next(h264_frames(0.1)).data
    loop = asyncio.new_event_loop()
    try:
        out: asyncio.Queue[object] = asyncio.Queue()
        inq: queue.Queue[object] = queue.Queue()
        worker = threading.Thread(target=receiver_module.decoder_worker,
                                  args=(loop, inq, out, threading.Event()), daemon=True)
        worker.start()
        h264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102)
        inq.put((h264, JitterFrame(unit, 12345)))
        inq.put(None)
        worker.join(5)
        got = loop.run_until_complete(asyncio.wait_for(out.get(), 5))
    finally:
        loop.close()
    assert isinstance(got, codec_seam.EncodedVideo)
    assert got.data == unit and got.pts == 12345


def test_other_codecs_keep_aiortcs_decoders() -> None:
    opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    assert type(codec_seam.get_decoder(opus)).__name__ == "OpusDecoder"
    assert type(codec_seam.get_decoder(vp8)).__name__ == "Vp8Decoder"


def test_the_decoder_thread_hands_frames_to_the_loop_in_order_and_then_the_end() -> None:
    codec_seam.install()
    assert receiver_module.decoder_worker is codec_seam.decoder_worker  # what a receiver starts its thread with
    units = [f.data for f in h264_frames(0.3)]
    loop = asyncio.new_event_loop()
    try:
        out: asyncio.Queue[object] = asyncio.Queue()
        inq: queue.Queue[object] = queue.Queue()
        h264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102)
        for i, unit in enumerate(units):  # all waiting before the thread starts: one batch
            inq.put((h264, JitterFrame(unit, i * 6000)))
        inq.put(None)
        worker = threading.Thread(target=receiver_module.decoder_worker,
                                  args=(loop, inq, out, threading.Event()), daemon=True)
        worker.start()
        worker.join(5)
        got = [loop.run_until_complete(asyncio.wait_for(out.get(), 5)) for _ in range(len(units) + 1)]
    finally:
        loop.close()
    assert [g.pts for g in got[:-1]] == [i * 6000 for i in range(len(units))]  # type: ignore[attr-defined]
    assert got[-1] is None and not worker.is_alive()


def _opus_packets(n: int) -> list[bytes]:
    import fractions

    import av
    import numpy as np
    from aiortc.codecs.opus import OpusEncoder

    encoder, packets = OpusEncoder(), []
    for i in range(n):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1920), np.int16), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48000, i * 960, fractions.Fraction(1, 48000)
        packets += encoder.encode(frame)[0]
    return packets


def test_audio_is_decoded_as_the_receiver_queues_it_with_no_thread() -> None:
    """What aiortc's receiver does at receive() and for each packet, through the seam: its
    "decoder thread" for audio is an InlineDecoder, so each packet's PCM is on the track's queue
    when put() returns, and stop()'s None ends the track."""
    codec_seam.install(remux_h264=False)
    loop = asyncio.new_event_loop()
    try:
        out: asyncio.Queue[object] = asyncio.Queue()
        inq = receiver_module.queue.Queue()
        threads_before = threading.active_count()
        decoder = receiver_module.threading.Thread(target=receiver_module.decoder_worker, name="audio-decoder",
                                                   args=(loop, inq, out, receiver_module.threading.Event()))
        decoder.start()
        assert threading.active_count() == threads_before
        opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
        for i, packet in enumerate(_opus_packets(3)):
            inq.put((opus, JitterFrame(packet, i * 960)))
            assert out.qsize() == i + 1
        inq.put(None)
        decoder.join()
        got = [out.get_nowait() for _ in range(4)]
    finally:
        loop.close()
    assert [(f.pts, f.samples, f.sample_rate) for f in got[:3]] == [(i * 960, 960, 48000) for i in range(3)]
    assert got[3] is None and not decoder.is_alive()


def test_a_frame_that_fails_to_decode_is_reported_not_raised_into_the_receive_path() -> None:
    codec_seam.install(remux_h264=False)
    loop = asyncio.new_event_loop()
    try:
        out: asyncio.Queue[object] = asyncio.Queue()
        inq, failed = receiver_module.queue.Queue(), threading.Event()
        receiver_module.threading.Thread(target=receiver_module.decoder_worker, name="audio-decoder",
                                         args=(loop, inq, out, failed)).start()
        opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
        inq.put((opus, JitterFrame(b"\xff" * 3, 0)))  # not Opus
        inq.put((opus, JitterFrame(_opus_packets(1)[0], 960)))
    finally:
        loop.close()
    assert failed.is_set()
    assert [out.get_nowait().pts] == [960]  # type: ignore[attr-defined]


def test_video_that_must_be_decoded_keeps_its_thread() -> None:
    """The mix decodes H.264 and VP8 (milliseconds a frame): off the event loop, in a thread."""
    codec_seam.install(remux_h264=False)
    loop = asyncio.new_event_loop()
    try:
        thread = receiver_module.threading.Thread(target=receiver_module.decoder_worker, name="video-decoder",
                                                  args=(loop, receiver_module.queue.Queue(), asyncio.Queue(),
                                                        threading.Event()))
    finally:
        loop.close()
    assert isinstance(thread, threading.Thread)
    codec_seam.install(remux_h264=True)
    assert isinstance(receiver_module.threading.Thread(target=receiver_module.decoder_worker, name="video-decoder",
                                                       args=(None, receiver_module.queue.Queue(), None, None)),
                      codec_seam.InlineDecoder)


def test_the_mix_gets_decoded_h264_from_its_decoder_threads() -> None:
    codec_seam.install(remux_h264=False)
    units = [f.data for f in h264_frames(0.2)]
    loop = asyncio.new_event_loop()
    try:
        out: asyncio.Queue[object] = asyncio.Queue()
        inq = receiver_module.queue.Queue()
        worker = receiver_module.threading.Thread(target=receiver_module.decoder_worker, name="video-decoder",
                                                  args=(loop, inq, out, threading.Event()))
        worker.start()
        h264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102)
        for i, unit in enumerate(units):
            inq.put((h264, JitterFrame(unit, i * 6000)))
        inq.put(None)
        worker.join(5)
        got = [loop.run_until_complete(asyncio.wait_for(out.get(), 5)) for _ in range(len(units) + 1)]
    finally:
        loop.close()
        codec_seam.install()
    assert all(type(g).__name__ == "VideoFrame" for g in got[:-1]) and got[-1] is None


def test_any_failure_of_an_inline_decode_stays_off_the_receive_path() -> None:
    """Not only libav's errors: whatever a decoder raises on the event loop would reach aiortc's
    transport, so it is reported like a bad frame (a TypeError from the passthrough here)."""
    codec_seam.install(remux_h264=True)
    out: asyncio.Queue[object] = asyncio.Queue()
    inq, failed = receiver_module.queue.Queue(), threading.Event()
    receiver_module.threading.Thread(target=receiver_module.decoder_worker, name="video-decoder",
                                     args=(None, inq, out, failed)).start()
    h264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102)
    inq.put((h264, JitterFrame(None, 0)))  # type: ignore[arg-type]
    unit = next(h264_frames(0.1)).data
    inq.put((h264, JitterFrame(unit, 3000)))
    assert failed.is_set()
    assert [out.get_nowait().pts] == [3000]  # type: ignore[attr-defined]
