"""The AWS resources cloudrec needs, as data: created by the local stack and the tests,
and written into the CloudFormation template of a deployment (infra/aws)."""

from __future__ import annotations

from typing import Any

from chalicelib.config import Settings

LIVE_INDEX = "live-by-lease"
HOST_INDEX = "by-host"  # the tasks a warm worker claimed (chalicelib/dispatch.py)
EVENTS_DLQ_SUFFIX = "-dlq.fifo"
S3_EVENTS_QUEUE = "cloudrec-s3-events"  # local stack only: S3 notifications reach the pump through it
PLATFORM_EVENTS_QUEUE = "cloudrec-platform-events"  # local stack only: EventBridge's events, likewise
# the callback function runs up to 20 s for its one message (batch size 1): a message in flight
# stays invisible six times that, as AWS advises, so a slow receiver never gets it twice at once
CALLBACK_FUNCTION_TIMEOUT_S = 20
EVENTS_VISIBILITY_S = 6 * CALLBACK_FUNCTION_TIMEOUT_S
EVENTS_MAX_RECEIVES = 40  # with the backoff of the callback sender: well over 10 minutes
# a dispatch nobody claimed in five minutes has gone cold long since; one a worker holds and
# cannot take comes back at once (the worker makes it visible again)
DISPATCH_QUEUE_ATTRIBUTES = {"MessageRetentionPeriod": "300", "VisibilityTimeout": "30"}


def tables(s: Settings) -> list[dict[str, Any]]:
    """CreateTable arguments (PAY_PER_REQUEST) for the tasks, apps and limits tables."""
    return [
        {
            "TableName": s.tasks_table,
            "KeySchema": [{"AttributeName": "task_id", "KeyType": "HASH"}],
            "AttributeDefinitions": [
                {"AttributeName": "task_id", "AttributeType": "S"},
                {"AttributeName": "live", "AttributeType": "S"},
                {"AttributeName": "lease_expires_ms", "AttributeType": "N"},
                {"AttributeName": "host", "AttributeType": "S"},
            ],
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": LIVE_INDEX,
                    "KeySchema": [
                        {"AttributeName": "live", "KeyType": "HASH"},
                        {"AttributeName": "lease_expires_ms", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
                {
                    "IndexName": HOST_INDEX,
                    "KeySchema": [{"AttributeName": "host", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["live", "launch_handle"]},
                },
            ],
            "BillingMode": "PAY_PER_REQUEST",
        },
        {
            "TableName": s.apps_table,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
        {  # Powertools idempotency records (chalicelib.once)
            "TableName": s.idempotency_table,
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
        {
            "TableName": s.limits_table,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    ]


TTL_ATTRIBUTE = {"limits": "expires_at", "idempotency": "expiration", "tasks": "expires_at"}


def events_dlq_name(s: Settings) -> str:
    return s.events_queue.removesuffix(".fifo") + EVENTS_DLQ_SUFFIX


def create_resources(s: Settings, dynamodb: Any, sqs: Any, s3: Any) -> None:
    """Create every table, queue and bucket that does not exist yet (local stack, tests)."""
    existing = set(dynamodb.list_tables()["TableNames"])
    for spec in tables(s):
        if spec["TableName"] not in existing:
            dynamodb.create_table(**spec)
    dynamodb.update_time_to_live(
        TableName=s.limits_table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE["limits"]},
    )
    dynamodb.update_time_to_live(
        TableName=s.tasks_table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE["tasks"]},
    )
    dynamodb.update_time_to_live(
        TableName=s.idempotency_table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE["idempotency"]},
    )
    dlq_url = sqs.create_queue(
        QueueName=events_dlq_name(s), Attributes={"FifoQueue": "true"}
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.create_queue(
        QueueName=s.events_queue,
        Attributes={
            "FifoQueue": "true",
            "VisibilityTimeout": str(EVENTS_VISIBILITY_S),
            "RedrivePolicy": f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{EVENTS_MAX_RECEIVES}"}}',
        },
    )
    sqs.create_queue(QueueName=PLATFORM_EVENTS_QUEUE)
    sqs.create_queue(QueueName=s.dispatch_queue, Attributes=DISPATCH_QUEUE_ATTRIBUTES)
    sqs.create_queue(QueueName=s.fallback_queue)
    sqs.create_queue(QueueName=s.outputs_dlq, Attributes={"MessageRetentionPeriod": "1209600"})
    s3_queue_url = sqs.create_queue(QueueName=S3_EVENTS_QUEUE)["QueueUrl"]
    s3_queue_arn = sqs.get_queue_attributes(QueueUrl=s3_queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    buckets = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if s.internal_bucket not in buckets:
        s3.create_bucket(Bucket=s.internal_bucket)
    s3.put_bucket_notification_configuration(
        Bucket=s.internal_bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": s3_queue_arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
