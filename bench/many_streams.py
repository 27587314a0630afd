"""25 streams in one task: 12 participants at 320x180@15 with audio and one audio-only, spread
over recorder processes (8 streams each), recorded with no lost frames — counted from RTP
sequence numbers (packets lost) and H.264 frame_num (frames lost) — and the CPU and RSS of
all recorder processes, Janus's CPU in the same run.

Runs inside a network namespace it creates (root): `sudo .venv/bin/python bench/many_streams.py`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.single_stream import (
    TICKS,
    cpu_ticks,
    encode,
    find_pid,
    local_stack,
    namespace_main,
    recorder_pids,
    rss_mb,
    stop_recording,
    stream_stats,
)

PARTICIPANTS = 12
STREAMS_PER_PROCESS = 8


async def bench(seconds: float) -> None:
    from aiortc.contrib.media import MediaPlayer

    from tests.support.publisher import Participant
    from tests.support.sdk import create_request

    clip = encode(Path(tempfile.mkdtemp()), "320x180@15", 320, 180, 15, "250k")
    run_dir = Path(tempfile.mkdtemp(prefix="cloudrec-bench-"))
    with local_stack(run_dir, CLOUDREC_STREAMS_PER_PROCESS=str(STREAMS_PER_PROCESS),
                     CLOUDREC_SEGMENT_S="12") as stack:
        people = []
        for i in range(PARTICIPANTS + 1):
            p = Participant(stack.janus_url, "8025", f"p{i:02d}")
            await p.join(create_room=i == 0)
            player = MediaPlayer(str(clip), decode=False)
            await p.publish_tracks(player.audio, player.video if i < PARTICIPANTS else None)
            people.append(p)
        await asyncio.sleep(2)
        task_id = (await asyncio.to_thread(stack.client().CreateCloudRecording,
                                           create_request("rec_many", room="8025"))).TaskId
        await asyncio.sleep(10)  # every process subscribed and writing
        pids = recorder_pids(task_id)
        janus = find_pid(b"janus")
        assert janus and pids
        start = {p: cpu_ticks(p) for p in pids + [janus]}
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - t0
        cpu = {p: 100.0 * (cpu_ticks(p) - start[p]) / TICKS / elapsed for p in start}
        rss = sum(rss_mb(p) for p in pids)
        log = await stop_recording(stack, task_id, people)
        assert log is not None
        stats = stream_stats(log)
        streams = log.read_text().count('"stream stats"')
        recorder_cpu = sum(cpu[p] for p in pids)
        print(f"{streams} streams ({PARTICIPANTS} x 320x180@15 + audio, 1 audio only) in {len(pids)} recorder "
              f"processes ({STREAMS_PER_PROCESS} streams each), {os.cpu_count()} cores, {seconds:.0f} s:")
        print(f"  recorder CPU {recorder_cpu:.1f} % ({recorder_cpu / (PARTICIPANTS + 1):.1f} %/participant), "
              f"RSS {rss:.0f} MB in all, Janus {cpu[janus]:.1f} %")
        print(f"  RTP packets lost {stats['rtp_lost']} of {stats['rtp_received']}; video frames lost "
              f"{stats['video_dropped']} of {stats['video_frames']} ({stats['video_waiting']} before the first "
              f"keyframe)")
        if streams != 25 or stats["video_dropped"]:
            raise SystemExit("not every stream was recorded whole")


if __name__ == "__main__":
    sys.exit(namespace_main(__file__, bench, 30.0, __doc__.splitlines()[0]))
