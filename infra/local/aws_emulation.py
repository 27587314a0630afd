"""The local stack's AWS emulation: moto's server, with the services cloudrec uses loaded and
frozen out of the garbage collector before the first request.

Python's full collections walk every object the process holds, moto's service models
included; frozen, they are no longer walked, and a request that meets a full collection
waits a few milliseconds instead of 50–100 (bench/api.py's tail).
"""

from __future__ import annotations

import gc
import importlib
import sys

from moto import server

SERVICES = ("dynamodb", "s3", "sqs", "sts", "iam", "kms", "ecs", "events")


def main() -> None:
    for name in SERVICES:
        importlib.import_module(f"moto.{name}.responses")  # and through them, the service's models
    gc.collect()
    gc.freeze()
    server.main(sys.argv[1:])


if __name__ == "__main__":
    main()
