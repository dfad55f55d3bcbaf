"""Structured JSON logs and EMF metrics (Powertools), built on first use.

Importing Powertools costs tens of milliseconds, so nothing here is built at import time: a cold
start pays only for what the invoked function uses.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics

P = ParamSpec("P")
R = TypeVar("R")

SERVICE = "ecr-steward"
NAMESPACE = "EcrSteward"


# An operator's command (steward) keeps stdout for its own output, JSON above all: logs and
# metrics go to stderr there. Functions log to stdout, which is what Lambda collects.
_to_stderr = False


@contextlib.contextmanager
def logs_to_stderr() -> Iterator[None]:
    """Log lines and EMF metric lines go to stderr meanwhile (the CLI's choice)."""
    global _to_stderr
    previous, _to_stderr = _to_stderr, True
    try:
        yield
    finally:
        _to_stderr = previous


def _log_stream() -> Any:
    return sys.stderr if _to_stderr else sys.stdout


class _CurrentStdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time of the call, not at creation: the Lambda
    runtime's stream in AWS, a test's capture under pytest."""

    @property
    def stream(self) -> Any:
        return _log_stream()

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


@lru_cache(maxsize=1)
def logger() -> Logger:

    return Logger(
        service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE),
        logger_handler=_CurrentStdoutHandler(),
    )


@lru_cache(maxsize=1)
def metrics() -> Metrics:

    return Metrics(
        namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE),
        service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE),
    )


def count(name: str, value: float = 1) -> None:
    """Add to a Count metric; flushed as one EMF line at the end of the invocation."""

    metrics().add_metric(name=name, unit=MetricUnit.Count, value=value)


# Metrics per operation (ECR throttling, pacing): one EMF line per metric and operation at flush,
# under the dimensions (service, Operation) and (service) alone, which an alarm watches.
_per_operation: dict[tuple[str, str, str], float] = {}
_per_operation_lock = threading.Lock()


def add_per_operation(name: str, operation: str, value: float = 1, unit: str = "Count") -> None:
    """Add to a metric kept per operation (`Operation` dimension), flushed with the others."""
    with _per_operation_lock:
        key = (name, operation, unit)
        _per_operation[key] = _per_operation.get(key, 0.0) + value


def _flush_per_operation() -> None:
    with _per_operation_lock:
        taken = sorted(_per_operation.items())
        _per_operation.clear()
    for (name, operation, unit), value in taken:
        service = os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE)
        emf = AmazonCloudWatchEMFProvider(
            namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE), service=service
        )
        emf.add_metric(name=name, unit=unit, value=value)
        emf.add_dimension(name="Operation", value=operation)
        emf.add_dimensions(service=service)
        # Powertools prints the EMF line to stdout, unless POWERTOOLS_METRICS_DISABLED.
        with contextlib.redirect_stdout(_log_stream()):
            emf.flush_metrics()


def flushes_metrics(entry_point: Callable[P, R]) -> Callable[P, R]:
    """For a function's entry point: the metrics it counted are written as one EMF line when it
    returns or raises (Powertools' `log_metrics`, without its cold-start metric)."""

    @functools.wraps(entry_point)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return entry_point(*args, **kwargs)
        finally:
            flush_metrics()

    return run


def flush_metrics() -> None:
    """Write the buffered metrics as one EMF log line (no warning when there are none)."""
    _flush_per_operation()
    m = metrics()
    if m.metric_set:
        # Powertools prints the EMF line to stdout.
        with contextlib.redirect_stdout(_log_stream()):
            m.flush_metrics()
