"""Events the embedded ECR emits, onto moto's EventBridge default bus as ECR puts them on AWS's."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from moto.events.models import events_backends

logger = logging.getLogger(__name__)


def emit_event(
    account: str,
    region: str,
    source: str,
    detail_type: str,
    detail: dict[str, Any],
    resources: Iterable[str] = (),
) -> str | None:
    """Put one event on the default bus of moto's EventBridge; returns its id.

    `Time` is epoch seconds: moto's SQS target converts it with ``float()`` into the envelope's
    ISO-8601 ``...Z`` form, and an ISO string there breaks delivery. Like ECR's own events this
    is best effort: a failure is logged, never raised into the ECR call that caused it.
    """
    entry = {
        "Source": source,
        "DetailType": detail_type,
        "Detail": json.dumps(detail),
        "Resources": list(resources),
        "Time": int(time.time()),
    }
    try:
        result = events_backends[account][region].put_events([entry])
    except Exception:
        logger.exception("could not emit %s event %s", source, detail_type)
        return None
    if result and "EventId" in result[0]:
        return str(result[0]["EventId"])
    logger.warning("event %s rejected: %s", detail_type, result)
    return None
