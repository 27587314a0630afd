"""Recordings per vCPU, by mode, participants and resolution: the capacity table.

Cases: single-stream with 1, 4 and 9 A/V participants at 640x360@15 and at 1280x720@30;
mixed 4-up (4 × 1280x720 in) and 9-up (9 × 320x180 in), both out at 1280x720@15. Each is
measured as bench/single_stream.py and bench/mix.py measure it: the CPU and RSS of every
process of the recording (keeper and recorders) over --seconds, with the publishers in the
same Janus room. A recording's cost is its measured cores, taking one core here as one vCPU;
"per vCPU" is how many such recordings one vCPU holds with nothing spare.

Beside each case stands what LiveKit Egress reserves for the same job by its documented
admission costs (RoomComposite 4 cores, Participant 2, TrackComposite 1, Track 0.5): a
single-stream task of N participants is N Participant egresses there, a mix one
RoomComposite.

Prints the table (Markdown), writes docs/capacity.json (bench/cost.py reads it) and draws
docs/capacity.png. Runs inside a network namespace it creates (root):
`sudo .venv/bin/python bench/capacity.py [--seconds 20]`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import mix
from bench.single_stream import encode, local_stack, measure_recorder, namespace_main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LIVEKIT_CORES = {"room composite": 4.0, "participant": 2.0, "track composite": 1.0, "track": 0.5}
SINGLE = (("640x360@15", 640, 360, 15, "800k", 0.832), ("1280x720@30", 1280, 720, 30, "2500k", 2.532))
COUNTS = (1, 4, 9)
MIX_OUT = (1280, 720, 1_500_000)
MIX_MBPS = 1.564  # the mix's video and its AAC


def _gb_per_hour(mbps: float) -> float:
    return mbps * 3600 / 8 / 1000


async def measure(seconds: float) -> list[dict[str, Any]]:
    media = Path(tempfile.mkdtemp(prefix="cloudrec-capacity-media-"))
    rows: list[dict[str, Any]] = []
    with local_stack(Path(tempfile.mkdtemp(prefix="cloudrec-capacity-")), CLOUDREC_SEGMENT_S="12") as stack:
        room = 7500
        for label, w, h, fps, bitrate, mbps in SINGLE:
            clip = encode(media, label, w, h, fps, bitrate)
            for count in COUNTS:
                room += 1
                r = await measure_recorder(stack, clip, count, str(room), seconds)
                if not r.get("video_frames"):
                    raise SystemExit(f"{label} x{count}: no video reached the recorder; the figures would be wrong")
                rows.append({"name": f"single-stream, {count} x {label}", "mode": "single", "participants": count,
                             "cores": r["cpu"] / 100, "rss_mb": r["rss"], "processes": r["processes"],
                             "streams": 2 * count, "hls_gb_per_hour": count * _gb_per_hour(mbps),
                             "livekit_cores": count * LIVEKIT_CORES["participant"],
                             "lost": f"{r.get('video_dropped')} of {r.get('video_frames')} frames"})
                print(f"  {rows[-1]['name']}: {rows[-1]['cores']:.3f} core, RSS {r['rss']:.0f} MB", flush=True)
        big = encode(media, "1280x720@15", 1280, 720, 15, "1500k")
        small = encode(media, "320x180@15", 320, 180, 15, "250k")
        for count, clip, inputs in ((4, big, "1280x720"), (9, small, "320x180")):
            room += 1
            r = await mix.measure_recorder(stack, [clip] * count, *MIX_OUT, str(room), seconds)
            rows.append({"name": f"mixed {count}-up ({count} x {inputs} in), 1280x720@15", "mode": "mixed",
                         "participants": count, "cores": r["cpu"] / 100, "rss_mb": r["rss"], "processes": 1,
                         "streams": 2, "hls_gb_per_hour": _gb_per_hour(MIX_MBPS),
                         "livekit_cores": LIVEKIT_CORES["room composite"], "lost": ""})
            print(f"  {rows[-1]['name']}: {rows[-1]['cores']:.3f} core, RSS {r['rss']:.0f} MB", flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| recording | cores measured | RSS | recordings per vCPU | LiveKit reserves | LiveKit per vCPU |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['cores']:.3f} | {r['rss_mb']:.0f} MB | {1 / r['cores']:.1f} | "
                     f"{r['livekit_cores']:g} cores | {1 / r['livekit_cores']:.2f} |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["name"] for r in rows]
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 1.5))
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [r["cores"] for r in rows], height=0.4, label="cloudrec, measured")
    ax.barh([i - 0.2 for i in y], [r["livekit_cores"] for r in rows], height=0.4,
            label="LiveKit Egress, reserved (documented)")
    ax.set_yticks(list(y), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("cores per recording (log scale)")
    ax.set_title(f"CPU per recording, {os.cpu_count()}-core x86 machine")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


async def bench(seconds: float) -> None:
    print(f"capacity, {os.cpu_count()} cores, CPU over {seconds:.0f} s", flush=True)
    rows = await measure(seconds)
    DOCS.mkdir(exist_ok=True)
    (DOCS / "capacity.json").write_text(json.dumps({"seconds": seconds, "cores": os.cpu_count(), "rows": rows},
                                                   indent=1) + "\n")
    plot(rows, DOCS / "capacity.png")
    print(table(rows))
    print(f"wrote {DOCS / 'capacity.json'} and {DOCS / 'capacity.png'}")


if __name__ == "__main__":
    sys.exit(namespace_main(__file__, bench, 20.0, __doc__.splitlines()[0]))
