"""What a recording hour costs on AWS, from the recorder's measured CPU and memory.

`.venv/bin/python bench/cost.py` prints, per recording mode, the Fargate task that fits it
(the smallest size with twice the measured CPU and 1.5 times the measured memory), and what
an hour of such a recording costs in Fargate, DynamoDB (the lease heartbeat), Lambda (the
MP4 output) and S3 requests; and what it costs as one of the recordings a warm worker
(2 vCPU, 4 GB) holds, with the fleet at its scaling target. The measured figures are bench/capacity.py's
(docs/capacity.json, one x86 core here taken as one Fargate vCPU); pass `--cpu-scale` to see
what a slower vCPU would cost.

Prices: AWS list prices for us-east-1, Linux/x86, on demand, from the services' pricing
pages (aws.amazon.com/fargate/pricing, /lambda/pricing, /dynamodb/pricing/on-demand,
/s3/pricing). Check them for your region.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

CAPACITY = Path(__file__).resolve().parents[1] / "docs" / "capacity.json"
FARGATE_VCPU_HOUR = 0.04048
FARGATE_GB_HOUR = 0.004445
LAMBDA_GB_SECOND = 0.0000166667
DYNAMODB_WRITE = 0.625 / 1e6  # per write request unit
S3_PUT = 0.005 / 1000

HEARTBEAT_S = 5  # CLOUDREC_HEARTBEAT_S: one UpdateItem each
SEGMENT_S = 12  # CLOUDREC_SEGMENT_S: a segment and its playlist per stream
REMUX_S_PER_GB = 3.7  # bench/remux.py, faststart, slowest run (a 3008 MB function)
OUTPUT_MEMORY_GB = 3008 / 1024
# Fargate's task sizes: vCPU -> the memory sizes (GB) it allows
SIZES = {0.25: (0.5, 1, 2), 0.5: (1, 2, 3, 4), 1: tuple(range(2, 9)), 2: tuple(range(4, 17)),
         4: tuple(range(8, 31))}
CPU_HEADROOM, MEMORY_HEADROOM = 2.0, 1.5
# a warm worker (WorkerCpu / WorkerMemory defaults) fills its CPUs less CLOUDREC_WORKER_HEADROOM,
# and the fleet scales to keep FleetTargetPercent of that in use
WORKER_VCPU, WORKER_GB = 2, 4
WORKER_HEADROOM, FLEET_TARGET = 0.2, 0.7


@dataclass(frozen=True)
class Mode:
    name: str
    cpu: float  # cores, measured (keeper and recorders)
    rss_mb: float  # measured
    streams: int  # HLS streams written (audio + video per participant in single-stream)
    hls_gb_per_hour: float  # what the MP4 output remuxes, at the bench publishers' bitrates


def modes(path: Path = CAPACITY) -> list[Mode]:
    """The recordings bench/capacity.py measured (docs/capacity.json)."""
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `sudo .venv/bin/python bench/capacity.py` first")
    return [Mode(r["name"], r["cores"], r["rss_mb"], r["streams"], r["hls_gb_per_hour"])
            for r in json.loads(path.read_text())["rows"]]


def task_size(cpu: float, rss_mb: float) -> tuple[float, float]:
    for vcpu, memories in SIZES.items():
        if vcpu >= cpu * CPU_HEADROOM:
            for gb in memories:
                if gb * 1024 >= rss_mb * MEMORY_HEADROOM:
                    return vcpu, gb
    raise ValueError(f"no Fargate size fits {cpu} cores and {rss_mb} MB")


def hourly(mode: Mode, cpu_scale: float) -> dict[str, float]:
    vcpu, gb = task_size(mode.cpu * cpu_scale, mode.rss_mb)
    return {
        "vcpu": vcpu, "gb": gb,
        "fargate": vcpu * FARGATE_VCPU_HOUR + gb * FARGATE_GB_HOUR,
        "dynamodb": 3600 / HEARTBEAT_S * DYNAMODB_WRITE,
        "lambda": mode.hls_gb_per_hour * REMUX_S_PER_GB * OUTPUT_MEMORY_GB * LAMBDA_GB_SECOND,
        "s3": mode.streams * 2 * 3600 / SEGMENT_S * S3_PUT,  # the customer's bucket: their bill
    }


def on_worker(mode: Mode, cpu_scale: float) -> dict[str, float]:
    """A recording's share of a warm worker: how many such recordings a worker holds on average
    (by CPU, or by memory if that runs out first) and what an hour of one costs."""
    cpus = WORKER_VCPU * (1 - WORKER_HEADROOM) * FLEET_TARGET
    memory_mb = WORKER_GB * 1024 * (1 - WORKER_HEADROOM)
    per_worker = min(cpus / (mode.cpu * cpu_scale), memory_mb / mode.rss_mb)
    return {"per_worker": per_worker,
            "fargate": (WORKER_VCPU * FARGATE_VCPU_HOUR + WORKER_GB * FARGATE_GB_HOUR) / per_worker}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-scale", type=float, default=1.0, help="Fargate vCPU slower than this machine's core")
    args = parser.parse_args()
    print("| recording | measured CPU / RSS | dedicated Fargate task | Fargate | DynamoDB | Lambda (MP4) | "
          "ours in all | on a warm worker: per worker | ours in all | S3 PUTs (customer's) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode in modes():
        c = hourly(mode, args.cpu_scale)
        w = on_worker(mode, args.cpu_scale)
        ours = c["fargate"] + c["dynamodb"] + c["lambda"]
        warm = w["fargate"] + c["dynamodb"] + c["lambda"]
        print(f"| {mode.name} | {mode.cpu:.2f} core / {mode.rss_mb:.0f} MB | {c['vcpu']:g} vCPU, {c['gb']:g} GB | "
              f"${c['fargate']:.4f} | ${c['dynamodb']:.4f} | ${c['lambda']:.4f} | **${ours:.4f}** | "
              f"{w['per_worker']:.1f} | **${warm:.4f}** | ${c['s3']:.4f} |")


if __name__ == "__main__":
    main()
