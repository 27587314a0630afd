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
