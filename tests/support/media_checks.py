"""Reading a recording back from the customer's bucket and judging it with PyAV."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from chalicelib import naming
from tests.support.media import BUCKET

EXTINF = re.compile(r"#EXTINF:(\d+\.\d+),")


@dataclass
class Playlist:
    key: str
    text: str

    @property
    def segments(self) -> list[str]:
        return [line for line in self.text.splitlines() if line and not line.startswith("#")]

    @property
    def durations(self) -> list[float]:
        return [float(d) for d in EXTINF.findall(self.text)]

    def tag(self, name: str) -> str | None:
        m = re.search(rf"^#{name}:(.*)$", self.text, re.M)
        return m.group(1) if m else None

    @property
    def ended(self) -> bool:
        return self.text.rstrip().endswith("#EXT-X-ENDLIST")


def utc17_ms(name: str) -> int:
    """Unix ms of the 17-digit UTC time in a TS file name."""
    stamp = re.search(r"_(\d{17})\.ts$", name)
    assert stamp, name
    return naming.utc17_ms(stamp.group(1))


class Recording:
    """The objects one task left in the bucket."""

    def __init__(self, s3: Any, task_id: str, prefix: str = "rec/", bucket: str = BUCKET) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.dir = f"{prefix}{task_id}/"
        objects = s3.list_objects_v2(Bucket=bucket, Prefix=self.dir).get("Contents", [])
        self.keys = [o["Key"] for o in objects]

    def names(self) -> list[str]:
        return [k[len(self.dir):] for k in self.keys]

    def playlist(self, name: str) -> Playlist:
        body = self.s3.get_object(Bucket=self.bucket, Key=self.dir + name)["Body"].read().decode()
        return Playlist(self.dir + name, body)

    def playlists(self) -> dict[str, Playlist]:
        return {n: self.playlist(n) for n in self.names() if n.endswith(".m3u8")}

    def download(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp()) / name
        path.write_bytes(self.s3.get_object(Bucket=self.bucket, Key=self.dir + name)["Body"].read())
        return path


def probe(path: Path) -> dict[str, Any]:
    """Codecs, sizes and decoded frame counts of a TS file."""
    out: dict[str, Any] = {}
    with av.open(str(path)) as c:
        for stream in c.streams:
            cc = stream.codec_context
            out[stream.type] = {"codec": cc.name, "width": getattr(cc, "width", 0),
                                "height": getattr(cc, "height", 0), "sample_rate": getattr(cc, "sample_rate", 0)}
        frames = {"video": 0, "audio": 0}
        for frame in c.decode(*c.streams):
            frames["video" if isinstance(frame, av.VideoFrame) else "audio"] += 1
        out["frames"] = frames
    return out


def middle_color(path: Path) -> tuple[int, int, int]:
    """Mean RGB of the left half of a frame from the middle of the file (the bar moves)."""
    with av.open(str(path)) as c:
        frames = [f for f in c.decode(video=0)]
    image = frames[len(frames) // 2].to_ndarray(format="rgb24")
    left = image[:, : image.shape[1] // 4]
    return tuple(int(v) for v in np.median(left.reshape(-1, 3), axis=0))  # type: ignore[return-value]


def tone_hz(path: Path) -> float:
    """The dominant frequency of a TS file's audio."""
    with av.open(str(path)) as c:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    spectrum = np.abs(np.fft.rfft(samples[: 48000]))
    return float(np.argmax(spectrum[1:]) + 1) * 48000 / min(len(samples), 48000)
