"""What a recorder process is told, read once from its environment by its entry point and
passed down: which task (and HA index, and shard of a big task) it records, its timing, and
the deployment settings it shares with the Lambda side (`chalicelib.config.Settings`).

  CLOUDREC_TASK_ID, CLOUDREC_HA_INDEX   which task, as which recorder (set by the launcher)
  CLOUDREC_SHARD                        0: the task's recorder; 1…: a shard process of a big task
  CLOUDREC_SEGMENT_S                    HLS segment length (12 s, as TRTC)
  CLOUDREC_DRAIN_S                      how long a stopping recorder keeps uploading (120 s)
  CLOUDREC_STREAMS_PER_PROCESS          streams one process records before the next shard (16)
  CLOUDREC_MAX_PROCESSES                processes a task spreads over at most (4)
  CLOUDREC_MIX_PRESET                   the x264 preset of mixed recordings (veryfast)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chalicelib.config import Settings
from chalicelib.launcher import HA_INDEX_ENV as HA_INDEX
from chalicelib.launcher import TASK_ID_ENV as TASK_ID
from chalicelib.naming import file_safe

SHARD = "CLOUDREC_SHARD"
SEGMENT_S = 12.0
DRAIN_S = 120.0
MIX_PRESET_ENV, MIX_PRESET = "CLOUDREC_MIX_PRESET", "veryfast"


class SettingsError(ValueError):
    """The recorder's environment does not say what to record."""


@dataclass(frozen=True)
class RecorderSettings:
    """Everything a recorder process reads from its environment, read once."""

    task_id: str
    service: Settings
    ha_index: int = 0
    shard: int = 0
    segment_s: float = SEGMENT_S
    drain_s: float = DRAIN_S
    streams_per_process: int = 16
    max_processes: int = 4
    mix_preset: str = MIX_PRESET
    poll_s: float = 1.0  # the control loop's pass (tests make it shorter)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RecorderSettings:
        e = dict(os.environ if env is None else env)
        task_id = e.get(TASK_ID, "")
        if not task_id:
            raise SettingsError(f"{TASK_ID} is not set")
        try:
            return cls(
                task_id=task_id,
                service=Settings.from_env(e),
                ha_index=int(e.get(HA_INDEX, "0")),
                shard=int(e.get(SHARD, "0")),
                segment_s=float(e.get("CLOUDREC_SEGMENT_S", str(SEGMENT_S))),
                drain_s=float(e.get("CLOUDREC_DRAIN_S", str(DRAIN_S))),
                streams_per_process=int(e.get("CLOUDREC_STREAMS_PER_PROCESS", "16")),
                max_processes=int(e.get("CLOUDREC_MAX_PROCESSES", "4")),
                mix_preset=e.get(MIX_PRESET_ENV, MIX_PRESET),
            )
        except ValueError as exc:
            raise SettingsError(f"a recorder setting is not a number: {exc}") from None

    def env_of_shard(self, shard: int) -> dict[str, str]:
        """What a shard process of this task is told (on top of this process's environment)."""
        return {TASK_ID: self.task_id, HA_INDEX: str(self.ha_index), SHARD: str(shard)}

    @property
    def work_dir(self) -> Path:
        """Where this process keeps its segments until they are stored."""
        task_dir = self.service.run_dir / "work" / file_safe(self.task_id)
        return task_dir / f"w{self.shard}" if self.shard else task_dir
