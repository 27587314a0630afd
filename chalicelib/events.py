"""Cloud-recording events (spec §5.3): one constructor per event type, which fixes its payload
and the key that makes it once-only, and the SQS FIFO queue they travel on.

Every component puts events on one FIFO queue with the TaskId as message group, so a
task's events reach the customer in order; the callback handler signs and posts them. Each
message carries an HMAC made with its task's event key, which only the service and that
task's recorder hold: a recorder may send on the queue, but not in another task's name
(`sent_by_its_task`). The
dedup key of an event says how often it may happen: once per task (302, 305, 312), once per
recorder (301, 303, 306: the key holds the HA index), once per file (304, 307, 310, 311).
SQS drops a repeated key within its 5-minute window.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from chalicelib.tasks import StorageFile, TaskRecord

EVENT_GROUP_ID = 3


class EventType(enum.IntEnum):
    RECORDER_START = 301
    RECORDER_STOP = 302
    UPLOAD_START = 303
    FILE_INFO = 304
    UPLOAD_STOP = 305
    FAILOVER = 306
    FILE_SLICE = 307
    UPLOAD_ERROR = 308
    DOWNLOAD_IMAGE_ERROR = 309
    MP4_STOP = 310
    VOD_COMMIT = 311
    VOD_STOP = 312


class LeaveCode(enum.IntEnum):
    """Why the robot left the room (302 LeaveCode)."""

    API_STOP = 0  # DeleteCloudRecording
    KICKED_BY_CUSTOMER = 1
    ROOM_DISMISSED = 2
    SERVER_KICK = 3  # the service removed the robot (it could not record, or was told to stop)
    SERVER_DISMISSED_ROOM = 4
    IDLE = 99  # no anchor in the room for MaxIdleTime
    ROOM_TIMEOUT = 100
    SAME_USER = 101  # a new task took the robot's UserId in the room


class UploadStatus(enum.IntEnum):
    """305 Status."""

    ALL_STORED = 0
    FILES_LEFT = 1  # some files are still on the server or in backup storage
    LEFT_FILES_STORED = 2


class FileStatus(enum.IntEnum):
    """310 / 311 Status of one output file."""

    STORED = 0
    NOT_STORED = 1  # made, but still on the server or in backup storage
    FAILED = 2


@dataclass(frozen=True)
class OutputFile:
    """An MP4/M4A (or committed HLS) file made after the recording, as 310/311 describe it."""

    name: str
    user_id: str  # "" for a mixed recording
    track_type: str
    media_id: str  # main | aux | mix
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Event:
    """One event of a task, ready to queue."""

    type: EventType
    payload: dict[str, Any]
    dedup_key: str

    def body(self, task: TaskRecord, now_ms: int) -> dict[str, Any]:
        """The callback body without CallbackTs (the sender stamps it when it posts)."""
        room: int | str = int(task.room_id) if task.room_id_type == 1 else task.room_id
        return {
            "EventGroupId": EVENT_GROUP_ID,
            "EventType": int(self.type),
            "EventInfo": {
                "RoomId": room,
                "EventTs": now_ms // 1000,
                "EventMsTs": now_ms,
                "UserId": task.user_id,
                "TaskId": task.task_id,
                "Payload": self.payload,
            },
        }


def recorder_start(ha_index: int, started: bool = True) -> Event:
    """301 Status 0 once the robot is in the room; Status 1 while it cannot get in (its id is
    held by someone it cannot remove), before a Status 0 if it gets in later."""
    status = 0 if started else 1
    return Event(EventType.RECORDER_START, {"Status": status}, f"301-{status}-ha{ha_index}")


def recorder_stop(code: LeaveCode) -> Event:
    return Event(EventType.RECORDER_STOP, {"LeaveCode": int(code)}, "302")


def upload_start(ha_index: int) -> Event:
    return Event(EventType.UPLOAD_START, {"Status": 0}, f"303-ha{ha_index}")


def file_info(playlist: str) -> Event:
    """304: a playlist's first version is stored."""
    return Event(EventType.FILE_INFO, {"FileList": playlist}, f"304-{playlist}")


def upload_stop(status: UploadStatus) -> Event:
    """305: once when the recorder is done (Status 0 or 1), and once more (Status 2) when the
    files it left in backup have reached the customer's storage."""
    return Event(EventType.UPLOAD_STOP, {"Status": int(status)},
                 "305-2" if status == UploadStatus.LEFT_FILES_STORED else "305")


def failover(ha_index: int) -> Event:
    return Event(EventType.FAILOVER, {"Status": 0}, f"306-ha{ha_index}")


def file_slice(file: StorageFile) -> Event:
    """307: a new index file (playlist) exists."""
    return Event(EventType.FILE_SLICE, {"FileName": file.FileName, "UserId": file.UserId,
                                        "TrackType": file.TrackType, "BeginTimeStamp": file.BeginTimeStamp},
                 f"307-{file.FileName}")


def upload_error(code: str, message: str, ha_index: int, at_s: int) -> Event:
    """308: the storage refused an upload (at most one a second per recorder)."""
    return Event(EventType.UPLOAD_ERROR, {"Code": code, "Message": message}, f"308-{at_s}-ha{ha_index}")


def download_image_error(url: str, ha_index: int) -> Event:
    return Event(EventType.DOWNLOAD_IMAGE_ERROR, {"Url": url}, f"309-{url}-ha{ha_index}")


def mp4_stop(file: OutputFile, status: FileStatus) -> Event:
    """310 for one MP4/M4A file: stored (its name and times listed) or not."""
    stored = status is FileStatus.STORED
    message = {"FileName": file.name, "UserId": file.user_id, "TrackType": file.track_type,
               "MediaId": file.media_id, "StartTimeStamp": file.start_ms, "EndTimeStamp": file.end_ms}
    return Event(EventType.MP4_STOP, {"Status": int(status), "FileList": [file.name] if stored else [],
                                      "FileMessage": [message] if stored else []}, f"310-{int(status)}-{file.name}")


def mp4_failed(stem: str) -> Event:
    """310 Status 2: an output job failed (its recording could not be read back, or it stopped)."""
    return Event(EventType.MP4_STOP, {"Status": int(FileStatus.FAILED), "FileList": [], "FileMessage": []},
                 f"310-{int(FileStatus.FAILED)}-{stem}")


def vod_commit(file: OutputFile, file_id: str, video_url: str, error: str) -> Event:
    """311 for one file sent to VOD: committed (a FileId) or failed (`error`)."""
    status = FileStatus.STORED if file_id else FileStatus.FAILED
    info = {"UserId": file.user_id, "TrackType": file.track_type, "MediaId": file.media_id, "FileId": file_id,
            "VideoUrl": video_url, "CacheFile": file.name, "StartTimeStamp": file.start_ms,
            "EndTimeStamp": file.end_ms}
    payload: dict[str, Any] = {"Status": int(status), "TencentVod": info}
    if status is not FileStatus.STORED:
        payload["Errmsg"] = error
    return Event(EventType.VOD_COMMIT, payload, f"311-{int(status)}-{file.name}")


def vod_stop(failed: bool) -> Event:
    return Event(EventType.VOD_STOP, {"Status": 1 if failed else 0}, "312")


def _mac(key: str, message: dict[str, Any]) -> str:
    signed = {"SdkAppId": message.get("SdkAppId"), "Event": message.get("Event")}
    text = json.dumps(signed, separators=(",", ":"), sort_keys=True, ensure_ascii=True)
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def message_body(event: Event, task: TaskRecord, now_ms: int) -> str:
    """The queued message of a task's event: the app to post to, the callback body, its HMAC."""
    message: dict[str, Any] = {"SdkAppId": task.sdkappid, "Event": event.body(task, now_ms)}
    if task.event_key:
        message["Mac"] = _mac(task.event_key, message)
    return json.dumps(message, separators=(",", ":"))


def task_of(message: dict[str, Any]) -> str:
    """The TaskId a queued message names ("" if none)."""
    info = message.get("Event", {}).get("EventInfo", {}) if isinstance(message.get("Event"), dict) else {}
    task_id = info.get("TaskId", "") if isinstance(info, dict) else ""
    return task_id if isinstance(task_id, str) else ""


def sent_by_its_task(message: dict[str, Any], task: TaskRecord | None) -> bool:
    """Whether a queued message comes from whoever may speak for the task it names: the task
    exists, belongs to the app the message posts to, and the message bears its event key's
    HMAC (tasks created before events were signed have no key, and their events no HMAC)."""
    if task is None or message.get("SdkAppId") != task.sdkappid:
        return False
    if not task.event_key:
        return True
    mac = message.get("Mac")
    return isinstance(mac, str) and hmac.compare_digest(mac, _mac(task.event_key, message))


class EventQueue:
    """Publishes events to the SQS FIFO events queue (message group = TaskId)."""

    def __init__(self, sqs: Any, queue_name: str) -> None:
        self._sqs = sqs
        self._name = queue_name
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = self._sqs.get_queue_url(QueueName=self._name)["QueueUrl"]
        return self._url

    def publish(self, event: Event, task: TaskRecord, now_ms: int) -> None:
        """Queue an event of `task` once: its dedup key within SQS's 5-minute window is dropped."""
        self._sqs.send_message(
            QueueUrl=self.url,
            MessageBody=message_body(event, task, now_ms),
            MessageGroupId=task.task_id,
            MessageDeduplicationId=hashlib.sha256(f"{task.task_id}|{event.dedup_key}".encode()).hexdigest(),
        )

    def hold(self, holds: list[tuple[str, int]]) -> None:
        """Keep received messages (receipt handle, seconds) invisible: a failed callback's retry later."""
        if holds:
            self._sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": receipt, "VisibilityTimeout": delay}
                for i, (receipt, delay) in enumerate(holds)])
