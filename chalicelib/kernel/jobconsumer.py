"""The consumer side of an SQS fan-out: one Lambda batch, each record handled on its own, the
failures reported per record (`ReportBatchItemFailures`) so one bad record never blocks the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)

from chalicelib.kernel.observability import count, flushes_metrics


@flushes_metrics
def process_jobs(
    event: dict[str, Any],
    context: Any,
    handle: Callable[[Any], dict[str, Any]],
    failed_metric: str,
) -> dict[str, Any]:
    """One SQS batch as Lambda delivers it: `handle` each record; a record that raises is
    reported in `batchItemFailures` (and counted under `failed_metric`) and comes back alone."""

    processor = BatchProcessor(event_type=EventType.SQS)
    response: dict[str, Any] = dict(
        process_partial_response(
            event=event, record_handler=handle, processor=processor, context=context
        )
    )
    failed = len(response.get("batchItemFailures", []))
    if failed:
        count(failed_metric, failed)
    return response
