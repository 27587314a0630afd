"""Real browsers as publishers and as players. Debian's Chromium (H.264 from OpenH264: one
participant with simulcast, one without) and Firefox ESR (VP8: it has no H.264 offline) publish
their fake camera and microphone with the official janus.js; a single-stream and a mixed task
record them at once. The files are judged with PyAV, then played in headless Chromium: HLS
with hls.js, MP4 in a plain <video>, screenshots kept as artifacts."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image
from tencentcloud.trtc.v20190722 import models

from chalicelib.layouts import simulcast_layer
from chalicelib.naming import b64_name
from tests.support.browsers import PageServer, chromium, firefox, sdp_video
from tests.support.janus_http import JanusHttp
from tests.support.media import SEGMENT_S
from tests.support.media_checks import Recording, probe
from tests.support.media_scenario import call, run, stop_and_wait
from tests.support.sdk import create_request
from tests.support.stack import ROOT, SDKAPPID, LocalStack

ROOM = "6801"
SECONDS = 8.0
W, H = 640, 360  # the mixed picture
SIM, PLAIN, FOX = "chrome_sim", "chrome_plain", "firefox"
CAPTURE = {SIM: (1280, 720), PLAIN: (640, 360), FOX: (640, 480)}
PAGES = {"chromium": (SIM, PLAIN), "firefox": (FOX,)}


@dataclass
class Recorded:
    server: PageServer
    single: str  # TaskIds
    mixed: str
    work: Path


def sent(server: PageServer, user: str) -> list[dict[str, Any]]:
    """Every video encoding `user`'s browser reported sending, one entry per encoding per second."""
    page = next(p for p, users in PAGES.items() if user in users)
    return [v for r in server.of(page, "stats", user=user) for v in r["video"]]


def sizes_sent(server: PageServer, user: str, rid: str = "") -> set[tuple[int, int]]:
    return {(v["width"], v["height"]) for v in sent(server, user) if v["rid"] == rid and v["frames"]}


def fps_sent(server: PageServer, user: str, rid: str = "") -> float:
    """Frames per second `user`'s browser encoded (of the encoding `rid`) while it published."""
    page = next(p for p, users in PAGES.items() if user in users)
    counts = [(r["at"] / 1000, v["frames"]) for r in server.of(page, "stats", user=user)
              for v in r["video"] if v["rid"] == rid and v["frames"]]
    return (counts[-1][1] - counts[0][1]) / (counts[-1][0] - counts[0][0])


def publishing(server: PageServer) -> bool:
    """Every publisher's browser encodes video (each simulcast layer) and sends audio."""
    for page, users in PAGES.items():
        for user in users:
            stats = server.of(page, "stats", user=user)
            if not stats or not stats[-1]["audio_packets"]:
                return False
            encodings = {v["rid"] for v in stats[-1]["video"] if v["frames"] > 0}
            if encodings != ({"h", "m", "l"} if user == SIM else {""}):
                return False
    return True


def mixed_request(user: str) -> models.CreateCloudRecordingRequest:
    request = create_request(user, room=ROOM, RecordMode=2, OutputFormat=1)  # mixed HLS and MP4
    request.MixTranscodeParams = models.MixTranscodeParams()
    request.MixTranscodeParams.from_json_string(json.dumps({
        "VideoParams": {"Width": W, "Height": H, "Fps": 15, "BitRate": 800000, "Gop": 2}}))
    return request  # the default layout: a grid, 2 × 2 for three people


@pytest.fixture(scope="module")
def recorded(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """The browsers publish in ROOM; a single-stream and a mixed task record them for SECONDS."""
    work = tmp_path_factory.mktemp("browsers")
    server = PageServer(work / "media", work / "shots")
    janus = JanusHttp(stack.janus_url)
    created = janus.sync(janus.attach(), {"request": "create", "room": ROOM, "publishers": 10,
                                          "videocodec": "h264,vp8", "audiocodec": "opus", "fir_freq": 10})
    assert created.get("videoroom") == "created", created

    def page(name: str, *specs: str) -> str:
        return server.url("publish.html", page=name, janus=stack.janus_url, room=ROOM, pub=",".join(specs))

    async def record() -> tuple[str, str]:
        single = str((await call(stack.client().CreateCloudRecording, create_request("rec_br_one", room=ROOM))).TaskId)
        mixed = str((await call(stack.client().CreateCloudRecording, mixed_request("rec_br_mix"))).TaskId)
        await asyncio.sleep(SECONDS)
        await asyncio.gather(stop_and_wait(stack, single), stop_and_wait(stack, mixed))
        return single, mixed

    size = {user: f"{w}x{h}" for user, (w, h) in CAPTURE.items()}
    chrome_page = page("chromium", f"{SIM}:h264:sim:{size[SIM]}", f"{PLAIN}:h264:plain:{size[PLAIN]}")
    firefox_page = page("firefox", f"{FOX}::plain:{size[FOX]}")  # no codec asked for: what Firefox offers
    try:
        with chromium(chrome_page, work / "chromium"), firefox(firefox_page, work / "firefox"):
            started = time.monotonic()
            server.wait(lambda: publishing(server), 45, "the browsers to publish", *PAGES)
            print(f"browsers publishing after {time.monotonic() - started:.1f} s")
            single, mixed = run(record)
            server.leaving.update(PAGES)
            server.wait(lambda: all(server.of(p, "left") for p in PAGES), 15, "the pages to leave the room")
        stack.callbacks.wait(mixed, 310, timeout=60)  # the mixed MP4 is stored
        yield Recorded(server, single, mixed, work)
    finally:
        (work / "reports.json").write_text(json.dumps(server.reports, indent=1))  # what the pages said
        server.close()
        janus.close()


def recorder_log(stack: LocalStack, task_id: str) -> str:
    return "".join(p.read_text() for p in stack.recorder_logs() if task_id[:8].replace("+", "_") in p.name)


def transcoded(stack: LocalStack, task_id: str, user: str) -> list[str]:
    """The codecs the recorder said it transcoded to H.264 for `user`'s video."""
    writer = re.escape(f"{SDKAPPID}_{ROOM}__UserId_s_{b64_name(user)}__UserId_e_main_video")
    return re.findall(rf"writer {writer}: the publisher sends (\w+), not H\.264: transcoding it",
                      recorder_log(stack, task_id))


def decode_all(rec: Recording, names: list[str]) -> dict[str, Any]:
    """Every segment decoded (PyAV raises on a broken one): codecs and sizes seen, frame counts."""
    seen: dict[str, Any] = {"video": set(), "audio": set(), "frames": {"video": 0, "audio": 0}}
    for name in names:
        info = probe(rec.download(name))
        if "video" in info:
            seen["video"].add((info["video"]["codec"], info["video"]["width"], info["video"]["height"]))
        if "audio" in info:
            seen["audio"].add((info["audio"]["codec"], info["audio"]["sample_rate"]))
        for kind in ("video", "audio"):
            seen["frames"][kind] += info["frames"][kind]
    return seen


def loudness(path: Path) -> float:
    """RMS of a file's decoded audio (0 … 1)."""
    with av.open(str(path)) as c:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    return float(np.sqrt(np.mean(np.square(samples.astype(np.float64)))))


def check_user(stack: LocalStack, recorded: Recorded, user: str, rid: str = "") -> set[tuple[str, int, int]]:
    """One browser publisher's single-stream video and audio: closed playlists as long as the
    recording, every segment decodable at the frame rate sent (of the simulcast encoding `rid`),
    AAC with sound. The video's (codec, width, height)."""
    rec = Recording(stack.boto("s3"), recorded.single)
    found: dict[str, Any] = {}
    for kind in ("video", "audio"):
        pl = rec.playlist(f"{SDKAPPID}_{ROOM}__UserId_s_{b64_name(user)}__UserId_e_main_{kind}.m3u8")
        assert pl.ended and pl.segments, pl.text
        assert abs(sum(pl.durations) - SECONDS) <= SEGMENT_S + 1.5, (kind, pl.durations)
        for duration in pl.durations[:-1]:
            assert SEGMENT_S - 0.6 <= duration <= SEGMENT_S + 1.6, (kind, pl.durations)
        found[kind] = decode_all(rec, pl.segments)
        assert found[kind]["frames"][kind] > 0, (kind, found[kind])
        if kind == "video":
            fps, sent_fps = found[kind]["frames"]["video"] / sum(pl.durations), fps_sent(recorded.server, user, rid)
            print(f"{user}: recorded {sorted(found[kind]['video'])} at {fps:.1f} fps, sent {sent_fps:.1f} fps")
            assert abs(fps - sent_fps) < 0.3 * sent_fps, (fps, sent_fps)  # loss under load drops some
            metadata = {tuple(int(n) for n in re.findall(r"\d+", m))
                        for m in re.findall(r"^#EXT-X-TRTC-VIDEO-METADATA:(.*)$", pl.text, re.M)}
            assert metadata == {(w, h) for _, w, h in found[kind]["video"]}, (metadata, found[kind])
        else:
            assert found[kind]["audio"] == {("aac", 48000)}
            level = loudness(rec.download(pl.segments[len(pl.segments) // 2]))
            print(f"{user}: audio RMS {level:.4f}")
            assert level > 0.003  # not silence
    return set(found["video"]["video"])


def test_chromium_publishes_h264_with_and_without_simulcast(stack: LocalStack, recorded: Recorded) -> None:
    server = recorded.server
    for user, simulcast in ((SIM, True), (PLAIN, False)):
        (answer,) = server.of("chromium", "answer", user=user)
        assert sdp_video(answer["sdp"]) == (["H264"], simulcast), answer["sdp"]
        assert all(v["codec"] == "video/H264" and "OpenH264" in v["encoder"] for v in sent(server, user))
        assert not transcoded(stack, recorded.single, user)  # the browser's own H.264, remuxed
    layers = {rid: sizes_sent(server, SIM, rid) for rid in "hml"}
    print(f"{SIM} sent {layers}; {PLAIN} sent {sizes_sent(server, PLAIN)}")
    assert layers["h"] == {CAPTURE[SIM]} and layers["m"] == {(640, 360)} and layers["l"] == {(320, 180)}
    # Janus forwards the top layer to a subscriber that asks for none (single-stream), or a
    # lower one while the top one pauses
    sim_sizes = {(w, h) for _, w, h in check_user(stack, recorded, SIM, "h")}
    assert CAPTURE[SIM] in sim_sizes and sim_sizes <= set().union(*layers.values()), sim_sizes
    assert {(w, h) for _, w, h in check_user(stack, recorded, PLAIN)} <= sizes_sent(server, PLAIN)


def test_firefox_publishes_vp8_recorded_as_h264(stack: LocalStack, recorded: Recorded) -> None:
    (answer,) = recorded.server.of("firefox", "answer", user=FOX)
    assert sdp_video(answer["sdp"]) == (["VP8"], False), answer["sdp"]
    videos = check_user(stack, recorded, FOX)
    assert {codec for codec, _, _ in videos} == {"h264"}
    assert {(w, h) for _, w, h in videos} <= sizes_sent(recorded.server, FOX)
    assert transcoded(stack, recorded.single, FOX) == ["VP8"]


def test_mixed_recording_takes_the_simulcast_layer_that_fits(stack: LocalStack, recorded: Recorded) -> None:
    rec = Recording(stack.boto("s3"), recorded.mixed)
    pl = rec.playlist(f"{SDKAPPID}_{ROOM}.m3u8")
    assert pl.ended and abs(sum(pl.durations) - SECONDS) <= SEGMENT_S + 1.5, pl.durations
    seen = decode_all(rec, pl.segments)
    assert seen["video"] == {("h264", W, H)} and seen["audio"] == {("aac", 48000)}
    assert abs(seen["frames"]["video"] / sum(pl.durations) - 15) < 1.5  # the requested frame rate
    assert loudness(rec.download(pl.segments[len(pl.segments) // 2])) > 0.003  # the three are heard
    with av.open(str(rec.download(f"{SDKAPPID}_{ROOM}.mp4"))) as mp4:
        streams = {st.type: (st.codec_context.name, float((st.duration or 0) * (st.time_base or 0)))
                   for st in mp4.streams}
    assert streams["video"][0] == "h264" and streams["audio"][0] == "aac", streams
    assert abs(streams["video"][1] - sum(pl.durations)) < 1, streams
    log = recorder_log(stack, recorded.mixed)
    taken = re.findall(r"receiving (\w+)/(\d+) at simulcast layer (\d)", log)
    # the grid gives each of the three a quarter of the picture, half its width: the middle layer
    # (640x360 of 1280x720), not the top one Janus sends by default; chrome_plain has no layers
    assert simulcast_layer(W // 2, W) == 1
    assert [(user, int(layer)) for user, _, layer in taken] == [(SIM, 1)], log[-3000:]


def test_recordings_play_in_chromium(stack: LocalStack, recorded: Recorded) -> None:
    """What users do with the files: the single-stream and mixed HLS in hls.js, the MP4 in a
    plain <video>; each plays on (currentTime grows, no fatal hls.js error, no media error)."""
    server = recorded.server
    s3 = stack.boto("s3")
    rec = {"single": Recording(s3, recorded.single), "mixed": Recording(s3, recorded.mixed)}
    sources = {  # label: (player, task, file)
        "single-hls": ("hls", "single", f"{SDKAPPID}_{ROOM}__UserId_s_{b64_name(SIM)}__UserId_e_main_video.m3u8"),
        "mixed-hls": ("hls", "mixed", f"{SDKAPPID}_{ROOM}.m3u8"),
        "mixed-mp4": ("mp4", "mixed", f"{SDKAPPID}_{ROOM}.mp4")}
    for kind, task, name in sources.values():  # the playlists' segments sit next to them, as in the bucket
        folder = server.media_dir / task
        folder.mkdir(exist_ok=True)
        for each in [name] + (rec[task].playlist(name).segments if kind == "hls" else []):
            shutil.copy(rec[task].download(each), folder / each)
    url = server.url("play.html", page="player", src=[f"{label}:{kind}:/media/{task}/{name}"
                                                      for label, (kind, task, name) in sources.items()])

    def played() -> bool:
        return all(server.of("player", "shot", name=label, n=2) for label in sources)

    try:
        with chromium(url, recorded.work / "player"):
            server.wait(played, 40, "the recordings to play", "player")
    finally:
        artifacts = ROOT / "build/artifacts/browsers"
        artifacts.mkdir(parents=True, exist_ok=True)
        for png in server.shot_dir.glob("*.png"):
            shutil.copy(png, artifacts / png.name)
        print(f"screenshots: {server.shot_dir} (copied to {artifacts})")
    sizes = {"single-hls": set().union(*(sizes_sent(server, SIM, rid) for rid in "hml")),
             "mixed-hls": {(W, H)}, "mixed-mp4": {(W, H)}}
    for label in sources:
        states = server.of("player", "state", name=label)
        assert all(s["error"] is None and not s["fatal"] for s in states), states[-3:]
        times = [s["time"] for s in states]
        assert times[-1] >= 3 and times == sorted(times), times
        assert (states[-1]["width"], states[-1]["height"]) in sizes[label], states[-1]
        first, second = (np.asarray(Image.open(server.shot_dir / f"{label}-{n}.png").convert("RGB"), np.int16)
                         for n in (1, 2))
        assert first.mean() > 10 and np.abs(first - second).mean() > 0.5, label  # a picture, and it moved
        if label.startswith("mixed"):
            assert states[-1]["audio_bytes"] > 0, states[-1]  # the sound was decoded too
