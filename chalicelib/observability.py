"""Structured JSON logs (Powertools Logger) shared by the API, the handlers and the recorder."""

from __future__ import annotations

import logging
import threading
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

_loggers: dict[str, Logger] = {}


def get_logger(service: str, handler: logging.Handler | None = None) -> Logger:
    """A JSON logger for `service` (stdout unless `handler` says otherwise); cloudrec's own
    module loggers write through it too."""
    if service not in _loggers:
        logger = Logger(service=service, logger_handler=handler)
        copy_config_to_registered_loggers(source_logger=logger, include={"chalicelib", "recorder_container"})
        _loggers[service] = logger
    return _loggers[service]


class LockedMetrics:
    """Powertools Metrics, safe to share between threads. Its metric set is one dict, serialised
    and cleared by flush_metrics: a request adding a metric while another flushed it raised
    "dictionary changed size during iteration", which the local threaded API turned into a 500.
    In Lambda only one request runs at a time, so the lock is never contended there."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()

    def add_metric(self, **kwargs: Any) -> None:
        with self._lock:
            self._metrics.add_metric(**kwargs)

    def flush_metrics(self) -> None:
        with self._lock:
            self._metrics.flush_metrics()

    def set_default_dimensions(self, **dimensions: str) -> None:
        with self._lock:
            self._metrics.set_default_dimensions(**dimensions)


def get_metrics(service: str) -> LockedMetrics:
    return LockedMetrics(Metrics(namespace="cloudrec", service=service))
