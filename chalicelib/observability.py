"""Structured JSON logs (Powertools Logger) shared by the API, the handlers and the recorder."""

from __future__ import annotations

import logging

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


def get_metrics(service: str) -> Metrics:
    return Metrics(namespace="cloudrec", service=service)
