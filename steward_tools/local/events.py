"""Events the embedded ECR emits, onto moto's EventBridge default bus as ECR puts them on AWS's."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from moto.events.models import events_backends

logger = logging.getLogger(__name__)

# Called with an event's region before it is put on that region's bus (the server's per-region
# set-up: a push through /v2 carries no signed region to notice it by).
_region_hook: Callable[[str], None] | None = None


def on_region(hook: Callable[[str], None] | None) -> None:
    """Have `emit_event` call `hook(region)` first (None: stop)."""
    global _region_hook
    _region_hook = hook


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
        if _region_hook is not None:
            _region_hook(region)
        result = events_backends[account][region].put_events([entry])
    except Exception:
        logger.exception("could not emit %s event %s", source, detail_type)
        return None
    if result and "EventId" in result[0]:
        return str(result[0]["EventId"])
    logger.warning("event %s rejected: %s", detail_type, result)
    return None
