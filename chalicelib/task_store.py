"""Recording tasks in DynamoDB: the task item, its recorder lease, and the per-app counters
that admission updates in the same transaction (tasks + limits tables). The task itself is
`chalicelib.tasks.TaskRecord`; this adapter maps it to items and back.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chalicelib.errors import ConcurrencyLimitError, ServiceError
from chalicelib.events import LeaveCode
from chalicelib.models import MixLayoutParams, SubscribeStreamUserIds
from chalicelib.schema import HOST_INDEX, LIVE_INDEX
from chalicelib.sealing import NoSealer, Sealer
from chalicelib.tasks import (
    ENDED,
    EXITED,
    IDLE,
    IN_PROGRESS,
    RUN,
    STOP,
    StorageFile,
    StorageKeys,
    TaskRecord,
    TaskView,
    decode_layout,
    decode_params,
    decode_subscription,
    encode_model,
    encode_params,
    stores_to_vod,
)

_ser = TypeSerializer()
_de = TypeDeserializer()
# TaskRecord fields stored under another name, as JSON text
_ENCODED = {"params", "storage_keys", "subscription", "layout", "files", "event_key"}
_PLAIN = NoSealer()
SEALED_HERE = "sealed"  # what params_json holds for keys kept sealed in keys_sealed
# the index's "live" says which work a task has due by lease_expires_ms: its recorder's lease
# (a live task) or its output jobs (an ended one)
LIVE, OUTPUTS_DUE = "1", "outputs"
# the customer's storage keys stay no longer than the task needs them: its outputs and the
# delivery of its backup (Settings.backup_keep_s, 7 days) are over by then (DynamoDB's TTL)
RETAIN_ENDED_S = 8 * 86400.0
OUTPUTS_GRACE_S = 120.0  # an ended task's outputs are requested by its recorder at once; by the sweep after this

log = logging.getLogger(__name__)


class AdmissionRaceError(Exception):
    """Another Create for the same robot slot, or the kicked task, changed meanwhile: retry."""


@dataclass(frozen=True)
class RobotSlot:
    """Which task holds a robot UserId in a room, and with which parameters."""

    key: str
    task_id: str
    params_hash: str
    created_ms: int


def robot_key(task: TaskRecord) -> str:
    """The limits-table key of a task's robot: one robot UserId per room at a time."""
    return "robot#" + json.dumps([task.sdkappid, task.room_id_type, task.room_id, task.user_id])


def active_key(sdkappid: int) -> str:
    return f"active#{sdkappid}"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _plain_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain Python values (numbers as int)."""
    return {k: _plain(_de.deserialize(v)) for k, v in item.items()}


def _files(raw: dict[str, Any]) -> dict[str, StorageFile]:
    return {name: StorageFile(**f) for name, f in raw.get("files", {}).items()}


def from_item(item: dict[str, Any], sealer: Sealer = _PLAIN) -> TaskRecord:
    """A task from its DynamoDB item (the inverse of to_item)."""
    raw = _plain_item(item)
    names = {f.name for f in fields(TaskRecord)} - _ENCODED
    data = {k: v for k, v in raw.items() if k in names}
    params, keys = decode_params(raw["params_json"])
    event_key = raw.get("event_key", "")  # kept plain only where nothing is sealed (no key configured)
    if "keys_sealed" in raw:  # the keys in params_json hold their places
        secrets = json.loads(sealer.open(raw["keys_sealed"], raw["task_id"]))
        if isinstance(secrets, list):  # stored before events were signed
            secrets = {"keys": secrets}
        keys = StorageKeys(*secrets["keys"]) if secrets.get("keys") else keys
        event_key = secrets.get("event_key", "")
    return TaskRecord(**data, params=params, storage_keys=keys, event_key=event_key,
                      subscription=decode_subscription(raw.get("subscribe_json", "")),
                      layout=decode_layout(raw.get("layout_json", "")),
                      files=_files(raw))


def to_item(task: TaskRecord, sealer: Sealer = _PLAIN) -> dict[str, Any]:
    """The DynamoDB item of a task: its parameters, subscription and layout as JSON text, the
    storage keys and the event key sealed apart (when there is a sealing key)."""
    data = {f.name: getattr(task, f.name) for f in fields(TaskRecord) if f.name not in _ENCODED}
    keys = task.storage_keys
    if isinstance(sealer, NoSealer):
        data["event_key"] = task.event_key or None
    else:
        data["keys_sealed"] = sealer.seal(json.dumps({
            "keys": [keys.access_key, keys.secret_key] if keys is not None else None,
            "event_key": task.event_key}), task.task_id)
        keys = StorageKeys(SEALED_HERE, SEALED_HERE) if keys is not None else None
    data.update(params_json=encode_params(task.params, keys),
                subscribe_json=encode_model(task.subscription), layout_json=encode_model(task.layout),
                files={n: vars(f) for n, f in task.files.items()}, live=LIVE)
    return {k: _ser.serialize(v) for k, v in data.items() if v is not None}


def _values(**kwargs: Any) -> dict[str, Any]:
    return {f":{k}": _ser.serialize(v) for k, v in kwargs.items()}


def _cancel_codes(err: ClientError) -> list[str]:
    return [r.get("Code", "None") for r in err.response.get("CancellationReasons", [])]


def _is_condition_failure(err: ClientError) -> bool:
    return err.response["Error"]["Code"] == "ConditionalCheckFailedException"


class TaskStore:
    """Tasks and their admission counters, over a DynamoDB client."""

    def __init__(self, client: Any, tasks_table: str, limits_table: str, retain_s: float = RETAIN_ENDED_S,
                 sealer: Sealer = _PLAIN) -> None:
        self._db = client
        self._sealer = sealer
        self._tasks = tasks_table
        self._limits = limits_table
        self._retain_s = retain_s  # an ended task (with its storage keys) is deleted this long after its end

    # -- reads ---------------------------------------------------------------------------

    def get(self, task_id: str) -> TaskRecord | None:
        item = self._db.get_item(TableName=self._tasks, Key={"task_id": {"S": task_id}},
                                 ConsistentRead=True).get("Item")
        return from_item(item, self._sealer) if item else None

    def get_view(self, task_id: str) -> TaskView | None:
        """What the API shows of a task (TaskView), read as a projection: a fraction of the item,
        and nothing sealed (no KMS call)."""
        item = self._db.get_item(TableName=self._tasks, Key={"task_id": {"S": task_id}}, ConsistentRead=True,
                                 ProjectionExpression="task_id, sdkappid, #status, api_expires_ms, files, params_json",
                                 ExpressionAttributeNames={"#status": "status"}).get("Item")
        if not item:
            return None
        raw = _plain_item(item)
        return TaskView(raw["task_id"], raw["sdkappid"], raw.get("status", IDLE), raw["api_expires_ms"],
                        stores_to_vod(raw["params_json"]),
                        _files(raw))

    def robot_slot(self, key: str) -> RobotSlot | None:
        item = self._db.get_item(TableName=self._limits, Key={"pk": {"S": key}},
                                 ConsistentRead=True).get("Item")
        if not item:
            return None
        raw = _plain_item(item)
        return RobotSlot(key, raw["task_id"], raw["params_hash"], raw["created_ms"])

    def active_count(self, sdkappid: int) -> int:
        item = self._db.get_item(TableName=self._limits, Key={"pk": {"S": active_key(sdkappid)}},
                                 ConsistentRead=True).get("Item")
        return int(item["n"]["N"]) if item else 0

    def expired_live(self, now_ms: int) -> list[str]:
        """Ids of tasks not yet ended whose recorder lease (or launch grace) has run out."""
        return self._due(LIVE, now_ms)

    def hosted_by(self, host: str) -> dict[str, str]:
        """The live tasks a warm worker claimed: their launch handles (as the index has them,
        which may lag a moment) by task id."""
        items = self._query({"IndexName": HOST_INDEX, "KeyConditionExpression": "host = :host",
                             "FilterExpression": "live = :live",
                             "ExpressionAttributeValues": _values(host=host, live=LIVE)})
        return {i["task_id"]["S"]: i["launch_handle"]["S"] for i in items if "launch_handle" in i}

    def outputs_due(self, now_ms: int) -> list[str]:
        """Ids of ended tasks whose output jobs were never requested, or made no progress, in time."""
        return self._due(OUTPUTS_DUE, now_ms)

    def _due(self, kind: str, now_ms: int) -> list[str]:
        """The index holds every task with work due by a time: a live task when its recorder's
        lease runs out, an ended one when its outputs should have progressed."""
        items = self._query({"IndexName": LIVE_INDEX,
                             "KeyConditionExpression": "live = :kind AND lease_expires_ms < :now",
                             "ExpressionAttributeValues": _values(kind=kind, now=now_ms)})
        return [i["task_id"]["S"] for i in items]

    def _query(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """The items an index query finds, every page of them."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self._tasks, **query}
        while True:
            page = self._db.query(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- admission -----------------------------------------------------------------------

    def admit(self, task: TaskRecord, seen: RobotSlot | None, kick: TaskRecord | None,
              max_concurrent: int) -> None:
        """Store a new task, count it against the app's limit and take its robot slot,
        stopping `kick` (the earlier task of this robot) with LeaveCode SAME_USER — all or nothing."""
        slot_item = {
            "pk": {"S": robot_key(task)},
            "task_id": {"S": task.task_id},
            "params_hash": {"S": task.params_hash},
            "created_ms": {"N": str(task.created_ms)},
        }
        if seen is None:
            slot_put = {"Put": {"TableName": self._limits, "Item": slot_item,
                                "ConditionExpression": "attribute_not_exists(pk)"}}
        else:
            slot_put = {"Put": {"TableName": self._limits, "Item": slot_item,
                                "ConditionExpression": "task_id = :seen",
                                "ExpressionAttributeValues": _values(seen=seen.task_id)}}
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": self._tasks, "Item": to_item(task, self._sealer),
                     "ConditionExpression": "attribute_not_exists(task_id)"}},
            {"Update": {
                "TableName": self._limits,
                "Key": {"pk": {"S": active_key(task.sdkappid)}},
                "UpdateExpression": "ADD n :one",
                "ConditionExpression": "attribute_not_exists(n) OR n < :max",
                "ExpressionAttributeValues": _values(one=1, max=max_concurrent),
            }},
            slot_put,
        ]
        if kick is not None:
            items.append({"Update": {
                "TableName": self._tasks,
                "Key": {"task_id": {"S": kick.task_id}},
                "UpdateExpression": "SET desired = :stop, leave_code = :code, #s = :exited",
                "ConditionExpression": "#s <> :ended",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": _values(stop=STOP, code=int(LeaveCode.SAME_USER), exited=EXITED,
                                                     ended=ENDED),
            }})
        try:
            self._db.transact_write_items(TransactItems=items)
        except ClientError as err:
            if err.response["Error"]["Code"] != "TransactionCanceledException":
                log.error("the task store refused a new task: %s: %s", err.response["Error"]["Code"],
                          err.response["Error"].get("Message", ""))
                raise ServiceError("The task store refused the new task.") from err
            codes = _cancel_codes(err)
            if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                raise ConcurrencyLimitError(
                    f"The application already runs {max_concurrent} recording tasks, its limit."
                ) from None
            raise AdmissionRaceError(",".join(codes)) from None

    def set_launch(self, task_id: str, handle: str) -> None:
        self._db.update_item(
            TableName=self._tasks, Key={"task_id": {"S": task_id}},
            UpdateExpression="SET launch_handle = :h", ExpressionAttributeValues=_values(h=handle),
        )

    def claim(self, task_id: str, expected: str, handle: str, host: str | None = None) -> int | None:
        """Move a live task's launch handle from `expected` to `handle` (a worker, `host`, or the
        fallback claims a dispatch); the task's SdkAppId, or None if its handle has moved on or
        it ended. Nothing sealed is read: a worker holds no key that opens it."""
        update = "SET launch_handle = :h" + (", host = :host" if host else "")
        try:
            out = self._db.update_item(
                TableName=self._tasks, Key={"task_id": {"S": task_id}}, UpdateExpression=update,
                ConditionExpression="launch_handle = :seen AND #s <> :ended",
                ExpressionAttributeNames={"#s": "status"}, ReturnValues="ALL_NEW",
                ExpressionAttributeValues=_values(h=handle, seen=expected, ended=ENDED,
                                                  **({"host": host} if host else {})))
        except ClientError as err:
            if _is_condition_failure(err):
                return None
            raise
        return int(out["Attributes"]["sdkappid"]["N"])

    def _conditional(self, task_id: str, **kwargs: Any) -> bool:
        """An update that holds only under its condition; False when the condition failed."""
        try:
            self._db.update_item(TableName=self._tasks, Key={"task_id": {"S": task_id}}, **kwargs)
            return True
        except ClientError as err:
            if _is_condition_failure(err):
                return False
            raise

    # -- control (API) -------------------------------------------------------------------

    def request_stop(self, task_id: str, leave_code: LeaveCode) -> bool:
        """Ask the recorder to stop; False when the task has ended already."""
        return self._conditional(
            task_id,
            UpdateExpression="SET desired = :stop, #s = :exited, leave_code = if_not_exists(leave_code, :code)",
            ConditionExpression="attribute_exists(task_id) AND #s <> :ended",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=_values(stop=STOP, exited=EXITED, ended=ENDED, code=int(leave_code)),
        )

    def leaving(self, task_id: str, owner: str, leave_code: LeaveCode) -> bool:
        """The recorder leaves the room for good and says so (302) before it drains its files:
        the task is stopping whatever happens to that recorder now. False if `owner` no longer
        holds the lease."""
        return self._conditional(
            task_id,
            UpdateExpression="SET desired = :stop, #s = :exited, leave_code = if_not_exists(leave_code, :code), "
                             "stop_reported = :yes",
            ConditionExpression="lease_owner = :me AND #s <> :ended",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=_values(stop=STOP, exited=EXITED, ended=ENDED, code=int(leave_code), yes=True,
                                              me=owner),
        )

    def update_config(self, task_id: str, subscription: SubscribeStreamUserIds | None,
                      layout: MixLayoutParams | None) -> bool:
        """Overwrite the subscription and/or layout (None: keep it) of a running task; False if it is stopping."""
        sets = ["config_version = config_version + :one"]
        values: dict[str, Any] = {"one": 1}
        if subscription is not None:
            sets.append("subscribe_json = :sub")
            values["sub"] = encode_model(subscription)
        if layout is not None:
            sets.append("layout_json = :lay")
            values["lay"] = encode_model(layout)
        return self._conditional(task_id, UpdateExpression="SET " + ", ".join(sets),
                                 ConditionExpression="attribute_exists(task_id) AND desired = :run",
                                 ExpressionAttributeValues=_values(run=RUN, **values))

    # -- recorder side -------------------------------------------------------------------

    def _update_returning(self, task_id: str, **kwargs: Any) -> TaskRecord | None:
        try:
            out = self._db.update_item(TableName=self._tasks, Key={"task_id": {"S": task_id}},
                                       ReturnValues="ALL_NEW", **kwargs)
            return from_item(out["Attributes"], self._sealer)
        except ClientError as err:
            if _is_condition_failure(err):
                return None
            raise

    def acquire_lease(self, task_id: str, owner: str, now_ms: int, lease_ms: int) -> TaskRecord | None:
        """Take the recorder lease of a task; None if another live recorder holds it or it ended."""
        return self._update_returning(
            task_id,
            UpdateExpression="SET lease_owner = :me, lease_expires_ms = :exp, heartbeat_ms = :now",
            ConditionExpression="attribute_exists(task_id) AND #s <> :ended AND "
                                "(attribute_not_exists(lease_owner) OR lease_owner = :me OR "
                                "lease_expires_ms < :now)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=_values(me=owner, exp=now_ms + lease_ms, now=now_ms, ended=ENDED),
        )

    def heartbeat(self, task_id: str, owner: str, now_ms: int, lease_ms: int) -> TaskRecord | None:
        """Extend the lease and return the task as the API left it; None once the lease is lost."""
        return self._update_returning(
            task_id,
            UpdateExpression="SET lease_expires_ms = :exp, heartbeat_ms = :now",
            ConditionExpression="lease_owner = :me AND #s <> :ended",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=_values(me=owner, exp=now_ms + lease_ms, now=now_ms, ended=ENDED),
        )

    def mark_recording(self, task_id: str) -> bool:
        """Idle → InProgress when the first media arrives (a stopping task stays Exited)."""
        return self._conditional(task_id, UpdateExpression="SET #s = :busy",
                                 ConditionExpression="#s = :idle AND desired = :run",
                                 ExpressionAttributeNames={"#s": "status"},
                                 ExpressionAttributeValues=_values(busy=IN_PROGRESS, idle=IDLE, run=RUN))

    def put_file(self, task_id: str, file: StorageFile) -> None:
        """Record an index file for Describe (idempotent per FileName)."""
        self._db.update_item(
            TableName=self._tasks, Key={"task_id": {"S": task_id}},
            UpdateExpression="SET files.#f = :file",
            ExpressionAttributeNames={"#f": file.FileName},
            ExpressionAttributeValues=_values(file=vars(file)),
        )

    def start_outputs(self, task_id: str, jobs: int, due_ms: int) -> bool:
        """Note how many output jobs (MP4/AAC/VOD) the ended task has, and by when they should
        have made progress; False if already noted."""
        try:
            self._db.update_item(
                TableName=self._tasks, Key={"task_id": {"S": task_id}},
                UpdateExpression="SET output_jobs = :n, output_done = :zero, lease_expires_ms = :due",
                ConditionExpression="attribute_exists(task_id) AND attribute_not_exists(output_jobs)",
                ExpressionAttributeValues=_values(n=jobs, zero=0, due=due_ms),
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def outputs_progress(self, task_id: str, due_ms: int) -> None:
        """An output job made progress: the next is due by `due_ms`."""
        self._conditional(task_id, UpdateExpression="SET lease_expires_ms = :due",
                          ConditionExpression="live = :outputs", ExpressionAttributeValues=_values(
                              due=due_ms, outputs=OUTPUTS_DUE))

    def settle_outputs(self, task_id: str) -> None:
        """The task owes no more outputs."""
        self._conditional(task_id, UpdateExpression="REMOVE live", ConditionExpression="live = :outputs",
                          ExpressionAttributeValues=_values(outputs=OUTPUTS_DUE))

    def output_job_done(self, task_id: str, stem: str, failed: bool) -> tuple[int, int, int] | None:
        """Count one output job (by its stem) as finished; (done, total, failed) after counting,
        None when it had been counted already. The last one settles the task's outputs."""
        try:
            item = self._db.update_item(
                TableName=self._tasks, Key={"task_id": {"S": task_id}},
                UpdateExpression="ADD output_done :one, output_failed :failed, outputs_finished :stem",
                ConditionExpression="attribute_exists(output_jobs) AND NOT contains(outputs_finished, :name)",
                ExpressionAttributeValues={**_values(one=1, failed=int(failed), name=stem), ":stem": {"SS": [stem]}},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as err:
            if _is_condition_failure(err):
                return None
            raise
        done, total = int(item["output_done"]["N"]), int(item["output_jobs"]["N"])
        if done >= total:
            self.settle_outputs(task_id)
        return done, total, int(item["output_failed"]["N"])

    def finish(self, task_id: str, now_ms: int, leave_code: LeaveCode | None = None,
               owner: str | None = None, outputs_grace_s: float = OUTPUTS_GRACE_S) -> bool:
        """End a task and free its slot in the app's concurrency count, exactly once.
        A recorder passes `owner`: it may only end a task whose lease it still holds. A task that
        wants outputs owes them from now: they are due within `outputs_grace_s`."""
        task = self.get(task_id)
        if task is None or task.status == ENDED:
            return False
        sets = "SET #s = :ended, ended_ms = :now, desired = :stop, expires_at = :gone"
        condition = "#s <> :ended"
        values: dict[str, Any] = {"ended": ENDED, "now": now_ms, "stop": STOP,
                                  "gone": int(now_ms / 1000 + self._retain_s)}
        removes = ""
        if task.params.wanted().anything:  # owed with the end itself: a sweep finds them if nobody asks
            sets += ", live = :outputs, lease_expires_ms = :due"
            values.update(outputs=OUTPUTS_DUE, due=now_ms + int(outputs_grace_s * 1000))
        else:
            removes = " REMOVE live"
        if leave_code is not None:
            sets += ", leave_code = if_not_exists(leave_code, :code)"
            values["code"] = int(leave_code)
        if owner is not None:
            condition += " AND lease_owner = :owner"
            values["owner"] = owner
        try:
            self._db.transact_write_items(TransactItems=[
                {"Update": {
                    "TableName": self._tasks, "Key": {"task_id": {"S": task_id}},
                    "UpdateExpression": sets + removes,
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": _values(**values),
                }},
                {"Update": {
                    "TableName": self._limits, "Key": {"pk": {"S": active_key(task.sdkappid)}},
                    # no condition: ending a task must never fail on the counter
                    "UpdateExpression": "ADD n :minus",
                    "ExpressionAttributeValues": _values(minus=-1),
                }},
            ])
            return True
        except ClientError as err:
            if err.response["Error"]["Code"] == "TransactionCanceledException":
                return False
            raise

    def relaunch(self, task: TaskRecord, now_ms: int, grace_ms: int, step: int = 1) -> bool:
        """Hand a task whose recorder died to a new one (ha_count + `step`); False if it changed.
        A step of -1 undoes a relaunch whose recorder could not be started, to try again later."""
        return self._conditional(
            task.task_id,
            UpdateExpression="SET ha_count = ha_count + :step, lease_expires_ms = :exp REMOVE lease_owner",
            ConditionExpression="lease_expires_ms = :seen AND #s <> :ended",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=_values(step=step, exp=now_ms + grace_ms, seen=task.lease_expires_ms,
                                              ended=ENDED),
        )

    def release(self, task_id: str, owner: str, now_ms: int) -> bool:
        """Give a running task up for a successor (the platform is stopping its recorder): the
        lease ends now, and the next sweep relaunches the task. False if `owner` no longer holds it."""
        return self._conditional(
            task_id,
            UpdateExpression="SET lease_expires_ms = :now REMOVE lease_owner",
            ConditionExpression="lease_owner = :me AND #s <> :ended",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=_values(now=now_ms, me=owner, ended=ENDED),
        )
