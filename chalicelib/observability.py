"""Structured JSON logs and EMF metrics (Powertools), built on first use.

Importing Powertools costs tens of milliseconds, so nothing here is built at import time: a cold
start pays only for what the invoked function uses.
"""

from __future__ import annotations

import logging
import os
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics

SERVICE = "ecr-steward"
NAMESPACE = "EcrSteward"


class _CurrentStdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stdout is at the time of the call, not at creation: the Lambda
    runtime's stream in AWS, a test's capture under pytest."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


@lru_cache(maxsize=1)
def logger() -> Logger:
    from aws_lambda_powertools import Logger

    return Logger(
        service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE),
        logger_handler=_CurrentStdoutHandler(),
    )


@lru_cache(maxsize=1)
def metrics() -> Metrics:
    from aws_lambda_powertools import Metrics

    return Metrics(
        namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE),
        service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE),
    )


def count(name: str, value: float = 1) -> None:
    """Add to a Count metric; flushed as one EMF line at the end of the invocation."""
    from aws_lambda_powertools.metrics import MetricUnit

    metrics().add_metric(name=name, unit=MetricUnit.Count, value=value)


def flush_metrics() -> None:
    """Write the buffered metrics as one EMF log line (no warning when there are none)."""
    m = metrics()
    if m.metric_set:
        m.flush_metrics()
