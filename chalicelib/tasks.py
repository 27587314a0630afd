"""A recording task as cloudrec sees it: the record the task store keeps, the Create
parameters decoded once into one frozen object (storage keys kept apart from them), and the
files Describe lists. Pure: `task_store` (DynamoDB) stores and loads these.

A task moves Idle → InProgress → Exited (stopping; still visible to Describe) → Ended
(gone for the API). `desired` is what the API wants ("run" | "stop"); the recorder polls
it with each heartbeat, so Delete and Modify reach it through the store.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from chalicelib.models import (
    CreateCloudRecordingRequest,
    MixLayoutParams,
    MixTranscodeParams,
    RecordParams,
    StorageParams,
    SubscribeStreamUserIds,
    TencentVod,
    mix_canvas,
)
from chalicelib.naming import TaskNaming

IDLE, IN_PROGRESS, EXITED, ENDED = "Idle", "InProgress", "Exited", "Ended"
RUN, STOP = "run", "stop"


@dataclass(frozen=True)
class StorageFile:
    """An index file as Describe lists it (spec §2.2 StorageFile)."""

    FileName: str
    UserId: str
    TrackType: str
    BeginTimeStamp: int


@dataclass(frozen=True)
class StorageTarget:
    """The customer's bucket (CloudStorage without its keys)."""

    vendor: int  # 0: Tencent COS, 1: AWS S3
    region: str
    bucket: str
    file_name_prefix: tuple[str, ...] = ()


@dataclass(frozen=True)
class StorageKeys:
    """The customer's storage credentials: secrets, never logged, returned or put in events."""

    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)


@dataclass(frozen=True)
class Wanted:
    """What a task's parameters ask for besides the HLS (spec §2.2 OutputFormat, MediaType)."""

    mp4: bool = False
    aac: bool = False
    keep_hls: bool = True  # OutputFormat 3 and 4: the HLS is deleted once the MP4/AAC is stored
    vod: bool = False
    vod_hls: bool = False  # MediaType 1, 3, 4: the playlists themselves go to VOD

    @property
    def anything(self) -> bool:
        return self.mp4 or self.aac or self.vod_hls


@dataclass(frozen=True)
class TaskParams:
    """What a task was created with: the validated Create request, without UserSig and storage
    keys. The subscription and layout, which Modify changes, live on the TaskRecord."""

    record: RecordParams
    storage: StorageTarget | None = None  # None: a VOD task (its HLS goes to the internal bucket)
    vod: TencentVod | None = None
    transcode: MixTranscodeParams | None = None

    @property
    def mixed(self) -> bool:
        return self.record.RecordMode == 2

    @property
    def file_name_prefix(self) -> tuple[str, ...]:
        return self.storage.file_name_prefix if self.storage is not None else ()

    def canvas(self) -> tuple[int, int]:
        """(width, height) of the mixed picture."""
        return mix_canvas(self.transcode)

    def wanted(self) -> Wanted:
        if self.vod is not None:  # OutputFormat is ignored for VOD (spec §2.2)
            media_type = self.vod.MediaType
            return Wanted(mp4=media_type in (0, 3), aac=media_type in (2, 4), keep_hls=False, vod=True,
                          vod_hls=media_type in (1, 3, 4))
        fmt = self.record.OutputFormat
        return Wanted(mp4=fmt in (1, 3), aac=fmt in (2, 4), keep_hls=fmt in (0, 1, 2))

    @classmethod
    def of_request(cls, req: CreateCloudRecordingRequest) -> tuple[TaskParams, StorageKeys | None]:
        return _split(req.RecordParams, req.StorageParams, req.MixTranscodeParams)


def _split(record: RecordParams, storage: StorageParams,
           transcode: MixTranscodeParams | None) -> tuple[TaskParams, StorageKeys | None]:
    cloud, keys, target = storage.CloudStorage, None, None
    if cloud is not None:
        target = StorageTarget(cloud.Vendor, cloud.Region, cloud.Bucket, tuple(cloud.FileNamePrefix or ()))
        keys = StorageKeys(cloud.AccessKey.get_secret_value(), cloud.SecretKey.get_secret_value())
    vod = storage.CloudVod.TencentVod if storage.CloudVod is not None else None
    return TaskParams(record, target, vod, transcode), keys


# -- the stored form: the parameters as one JSON document, keys included (the store's item only)

def encode_params(params: TaskParams, keys: StorageKeys | None) -> str:
    """The JSON the task store keeps: the request's own field names, so a stored task reads as
    the Create that made it."""
    data: dict[str, Any] = {"RecordParams": params.record.model_dump(exclude_none=True)}
    if params.storage is not None and keys is not None:
        data["StorageParams"] = {"CloudStorage": {
            "Vendor": params.storage.vendor, "Region": params.storage.region, "Bucket": params.storage.bucket,
            "AccessKey": keys.access_key, "SecretKey": keys.secret_key,
            **({"FileNamePrefix": list(params.storage.file_name_prefix)} if params.storage.file_name_prefix else {}),
        }}
    elif params.vod is not None:
        data["StorageParams"] = {"CloudVod": {"TencentVod": params.vod.model_dump(exclude_none=True)}}
    if params.transcode is not None:
        data["MixTranscodeParams"] = params.transcode.model_dump(exclude_none=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=256)  # pure, and the recorder reads its task every second
def decode_params(text: str) -> tuple[TaskParams, StorageKeys | None]:
    """The inverse of encode_params (raises ValueError on a document that is not one)."""
    data = json.loads(text)
    transcode = data.get("MixTranscodeParams")
    return _split(RecordParams.model_validate(data["RecordParams"]),
                  StorageParams.model_validate(data["StorageParams"]),
                  MixTranscodeParams.model_validate(transcode) if transcode else None)


def encode_model(model: SubscribeStreamUserIds | MixLayoutParams | None) -> str:
    """A subscription or layout as the task store keeps it ("" for none)."""
    return model.model_dump_json(exclude_none=True) if model is not None else ""


def decode_subscription(text: str) -> SubscribeStreamUserIds | None:
    return SubscribeStreamUserIds.model_validate_json(text) if text else None


def decode_layout(text: str) -> MixLayoutParams | None:
    return MixLayoutParams.model_validate_json(text) if text else None


@dataclass(frozen=True)
class TaskRecord:
    """A recording task as stored: what the API admitted and how far its recorder got."""

    task_id: str
    sdkappid: int
    room_id: str
    room_id_type: int
    user_id: str
    params: TaskParams
    params_hash: str
    created_ms: int
    api_expires_ms: int
    usersig_expires_s: int
    storage_keys: StorageKeys | None = field(default=None, repr=False)
    subscription: SubscribeStreamUserIds | None = None  # the current rules (Create, then Modify)
    layout: MixLayoutParams | None = None  # the current mixed layout (Create, then Modify)
    config_version: int = 0
    status: str = IDLE
    desired: str = RUN
    leave_code: int | None = None
    stop_reported: bool = False  # its recorder sent the 302 before it drained its files
    ha_count: int = 0
    lease_owner: str | None = None
    lease_expires_ms: int = 0
    heartbeat_ms: int = 0
    launch_handle: str | None = None
    ended_ms: int | None = None
    output_jobs: int | None = None  # how many output jobs were requested (None: not yet)
    outputs_finished: AbstractSet[str] | None = None  # the stems of the output jobs that are over
    files: dict[str, StorageFile] = field(default_factory=dict)
    # signs the task's events (chalicelib/events.py): held by the service and the task's recorder only
    event_key: str = field(default="", repr=False)

    def naming(self, ha_index: int = 0) -> TaskNaming:
        """Where this task's files go, and their names (as the recorder with `ha_index` writes them)."""
        return TaskNaming(self.task_id, self.sdkappid, self.room_id, self.room_id_type,
                          self.params.file_name_prefix, ha_index)

    @property
    def directory(self) -> str:
        """`<Prefix>/<TaskId>/`: where the HLS is and the outputs go."""
        return self.naming().directory

    def storage_files(self) -> list[StorageFile]:
        return in_file_order(self.files)


def in_file_order(files: dict[str, StorageFile]) -> list[StorageFile]:
    return sorted(files.values(), key=lambda f: (f.BeginTimeStamp, f.FileName))


@dataclass(frozen=True)
class TaskView:
    """What Describe and Delete read of a task: no parameters to validate, no sealed keys to open."""

    task_id: str
    sdkappid: int
    status: str
    api_expires_ms: int
    to_vod: bool  # its files go to VOD (Describe lists none)
    files: dict[str, StorageFile]

    def storage_files(self) -> list[StorageFile]:
        return in_file_order(self.files)


def stores_to_vod(params_json: str) -> bool:
    """Whether the task kept as `params_json` (encode_params) stores to VOD."""
    return "CloudVod" in json.loads(params_json)["StorageParams"]

