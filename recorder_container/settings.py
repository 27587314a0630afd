"""What a recorder process is told, read once from its environment by its entry point and
passed down: which task (and HA index, and shard of a big task) it records, its timing, and
the deployment settings it shares with the Lambda side (`chalicelib.config.Settings`).

Its variables (CLOUDREC_TASK_ID, CLOUDREC_HA_INDEX, CLOUDREC_SHARD, CLOUDREC_SEGMENT_S,
CLOUDREC_DRAIN_S, CLOUDREC_STREAMS_PER_PROCESS, CLOUDREC_MAX_PROCESSES, CLOUDREC_MIX_PRESET,
CLOUDREC_RECORDER_USER) are declared with the others in chalicelib/config.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chalicelib import config
from chalicelib.config import ConfigError, Settings
from chalicelib.launcher import HA_INDEX_ENV as HA_INDEX
from chalicelib.launcher import TASK_ID_ENV as TASK_ID
from chalicelib.naming import file_safe

SHARD = config.CLOUDREC_SHARD.name
SEGMENT_S = config.CLOUDREC_SEGMENT_S.get({})
DRAIN_S = config.CLOUDREC_DRAIN_S.get({})
MIX_PRESET_ENV, MIX_PRESET = config.CLOUDREC_MIX_PRESET.name, config.CLOUDREC_MIX_PRESET.get({})


class SettingsError(ValueError):
    """The recorder's environment does not say what to record, or says it wrongly."""


@dataclass(frozen=True)
class RecorderSettings:
    """Everything a recorder process reads from its environment, read once."""

    task_id: str
    service: Settings
    ha_index: int = 0
    shard: int = 0
    segment_s: float = SEGMENT_S
    drain_s: float = DRAIN_S
    streams_per_process: int = config.CLOUDREC_STREAMS_PER_PROCESS.get({})
    max_processes: int = config.CLOUDREC_MAX_PROCESSES.get({})
    mix_preset: str = MIX_PRESET
    poll_s: float = 1.0  # the control loop's pass (tests make it shorter)
    recorder_user: int | None = None  # the uid the keeper runs the recorder as (None: its own)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RecorderSettings:
        e = os.environ if env is None else env
        try:
            task_id = config.CLOUDREC_TASK_ID.get(e)
            if not task_id:
                raise SettingsError(f"{TASK_ID} is not set")
            return cls(
                task_id=task_id,
                service=Settings.from_env(e),
                ha_index=config.CLOUDREC_HA_INDEX.get(e),
                shard=config.CLOUDREC_SHARD.get(e),
                segment_s=config.CLOUDREC_SEGMENT_S.get(e),
                drain_s=config.CLOUDREC_DRAIN_S.get(e),
                streams_per_process=config.CLOUDREC_STREAMS_PER_PROCESS.get(e),
                max_processes=config.CLOUDREC_MAX_PROCESSES.get(e),
                mix_preset=config.CLOUDREC_MIX_PRESET.get(e),
                recorder_user=config.CLOUDREC_RECORDER_USER.get(e),
            )
        except ConfigError as exc:
            raise SettingsError(str(exc)) from None

    def env_of_shard(self, shard: int) -> dict[str, str]:
        """What a shard process of this task is told (on top of this process's environment)."""
        return {TASK_ID: self.task_id, HA_INDEX: str(self.ha_index), SHARD: str(shard)}

    @property
    def work_dir(self) -> Path:
        """Where this process keeps its segments until they are stored."""
        task_dir = self.service.run_dir / "work" / file_safe(self.task_id)
        return task_dir / f"w{self.shard}" if self.shard else task_dir
