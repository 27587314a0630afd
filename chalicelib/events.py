"""Cloud-recording events (spec §5.3): their bodies, and the SQS FIFO queue they travel on.

Every component puts events on one FIFO queue with the TaskId as message group, so a
task's events reach the customer in order; the callback handler signs and posts them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from chalicelib.task_store import TaskRecord

EVENT_GROUP_ID = 3
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

# LeaveCode of 302
LEAVE_API_STOP = 0
LEAVE_IDLE = 99
LEAVE_SAME_USER = 101


def build_event(event_type: int, task: TaskRecord, payload: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """The callback body without CallbackTs (the sender stamps it when it posts)."""
    room: int | str = int(task.room_id) if task.room_id_type == 1 else task.room_id
    return {
        "EventGroupId": EVENT_GROUP_ID,
        "EventType": event_type,
        "EventInfo": {
            "RoomId": room,
            "EventTs": now_ms // 1000,
            "EventMsTs": now_ms,
            "UserId": task.user_id,
            "TaskId": task.task_id,
            "Payload": payload,
        },
    }


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

    def publish(self, event: dict[str, Any], sdkappid: int, dedup_key: str) -> None:
        """Queue an event once: the same `dedup_key` within SQS's 5-minute window is dropped."""
        task_id = event["EventInfo"]["TaskId"]
        body = json.dumps({"SdkAppId": sdkappid, "Event": event}, separators=(",", ":"))
        self._sqs.send_message(
            QueueUrl=self.url,
            MessageBody=body,
            MessageGroupId=task_id,
            MessageDeduplicationId=hashlib.sha256(f"{task_id}|{dedup_key}".encode()).hexdigest(),
        )
