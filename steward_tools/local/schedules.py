"""The service's schedules, as app.py declares them, run on demand or on their rate locally.

`SCHEDULES` maps each scheduled function's name to the code its handler runs, taking the
EventBridge Scheduled Event; `steward sweep run` calls them in its own process, and `make run`
fires each on its rate (`rate(5 minutes)`, read from app.py) as EventBridge Scheduler would.
A test keeps `SCHEDULES` and app.py's schedules the same set.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import app
from chalicelib.gate.sweep import sweep as gate_sweep
from chalicelib.governance.task import handle_schedule as governance_reconcile
from chalicelib.mirror.fanout import handle_schedule as mirror_sync
from chalicelib.sweep.jobs import handle_schedule as start_sweep

Schedule = Callable[[dict[str, Any]], dict[str, Any]]


def _gate_sweep(event: dict[str, Any]) -> dict[str, Any]:
    return gate_sweep(datetime.fromisoformat(str(event["time"])))


SCHEDULES: dict[str, Schedule] = {
    "start_sweep": start_sweep,
    "gate_sweep": _gate_sweep,
    "governance_reconcile": governance_reconcile,
    "mirror_sync": mirror_sync,
}
# What each does, for `steward sweep run`'s report and --help.
PURPOSE = {
    "start_sweep": "one job per repository: retention and repository settings",
    "gate_sweep": "scan gate: fail closed past the timeout, re-decide after policy changes",
    "governance_reconcile": "create declared repositories, expire ephemeral ones",
    "mirror_sync": "mirror rules: one copy job per upstream image whose interval has come",
}
_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def scheduled_event(name: str, account: str, region: str, now: datetime) -> dict[str, Any]:
    """An EventBridge Scheduled Event, as the rule of schedule `name` delivers it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account}:rule/ecr-steward-{name}"],
        "detail": {},
    }


def app_schedules() -> dict[str, str]:
    """Each scheduled function of app.py and its schedule expression."""

    return {
        source.name: source.schedule_expression
        for source in app.app.event_sources
        if hasattr(source, "schedule_expression")
    }


def rate_seconds(expression: str) -> int | None:
    """`rate(5 minutes)` -> 300; None for what this cannot fire (cron expressions)."""
    found = _RATE.fullmatch(str(expression).strip())
    if found is None:
        return None
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2).rstrip("s")]


def run(name: str, *, account: str, region: str, now: datetime | None = None) -> dict[str, Any]:
    """Run schedule `name` now, in this process, as its scheduled function would."""
    event = scheduled_event(name, account, region, now or datetime.now(UTC))
    return SCHEDULES[name](event)
