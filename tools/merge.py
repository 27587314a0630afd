"""Merge single-stream recordings into one MP4 (or M4A) per user and segment — cloudrec's
answer to TRTC's `TRTC_Merge.py`, with the same options:

    python3 -m tools.merge -f DIR [-m 0|1] [-s] [-a 0|1|2] [-p FPS] [-r W H] [-b]   (from the checkout's root)

Outputs go into DIR as `<UserId>_<UTC17>_av.mp4` (or `<UserId>_<UTC17>.m4a` for users with
sound only). Needs PyAV and numpy (the recorder's media dependencies), not the AWS parts.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from tools import merge_media, merge_plan

FPS_MIN, FPS_MAX = 5, 120


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m tools.merge", description=__doc__.splitlines()[0])
    p.add_argument("-f", "--folder", required=True, type=Path, help="folder with the downloaded m3u8 and ts files")
    p.add_argument("-m", "--mode", type=int, choices=(0, 1), default=0,
                   help="0: one file per segment (default); 1: one file per user")
    p.add_argument("-s", "--saving", action="store_true", help="with -m 1: leave out the gaps between segments")
    p.add_argument("-a", "--aux", type=int, choices=(0, 1, 2), default=0,
                   help="0: main video (default); 1: main, else aux (screen share); 2: aux instead of main")
    p.add_argument("-p", "--fps", type=int, default=15,
                   help=f"fps of re-encoded video, {FPS_MIN}-{FPS_MAX} (default 15); remuxed video keeps its own")
    p.add_argument("-r", "--resolution", type=int, nargs=2, metavar=("W", "H"), default=(0, 0),
                   help="output size (default: the largest picture of the user)")
    p.add_argument("-b", "--black", action="store_true", help="black instead of the last picture where video is absent")
    return p


class Progress:
    """One bar per output on stderr (redrawn in place on a terminal, else one line per output)."""

    def __init__(self, label: str, stream: TextIO = sys.stderr) -> None:
        self.label, self.stream, self.shown = label, stream, -1
        self.tty = stream.isatty()

    def __call__(self, fraction: float) -> None:
        percent = int(fraction * 100)
        if percent == self.shown or (not self.tty and percent < 100):
            return
        self.shown = percent
        bar = "#" * (percent // 5) + "." * (20 - percent // 5)
        end = "\n" if percent >= 100 else ""
        print(f"\r{self.label} [{bar}] {percent:3d}%", end=end, file=self.stream, flush=True)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    fps = min(FPS_MAX, max(FPS_MIN, args.fps))
    try:
        users = merge_plan.scan(args.folder, warn)
        if not users:
            raise merge_plan.MergeError("no usable recording in the folder (see the warnings above)")
    except merge_plan.MergeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outputs = merge_plan.plan(users, merge_all=args.mode == 1, drop_gaps=args.saving, aux_use=args.aux)
    requested = (args.resolution[0], args.resolution[1]) if tuple(args.resolution) != (0, 0) else None
    failed = 0
    started = time.monotonic()
    for output in outputs:
        output = merge_media.with_sizes(output)
        size = merge_media.choose_size(output, requested)
        how = "audio" if not output.video else \
            "remux" if merge_media.can_remux(output, size, args.black) else f"encode {size[0]}x{size[1]}@{fps}"
        try:
            merge_media.write(output, args.folder, size, fps, args.black, Progress(f"{output.name} ({how})"), warn)
        except Exception as exc:  # one output's failure must not stop the others
            failed += 1
            print(f"\nerror: {output.name} could not be written: {exc}", file=sys.stderr)
    print(f"{len(outputs) - failed} file(s) written to {args.folder} in {time.monotonic() - started:.1f} s",
          file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
