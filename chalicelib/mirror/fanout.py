"""Mirror's scheduled fan-out: plan each due rule against its upstream, and send one copy job
per image to the replication queue, where `on_copy_job` runs it like any copy (the same ledger,
rate limits and dead-letter handling). The job is the queue's JSON document (replication's
`CopyJob` with an `upstream`); this package does not import replication."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from chalicelib.kernel.aws import caller_account
from chalicelib.kernel.jobqueue import send_jobs
from chalicelib.kernel.observability import logger
from chalicelib.kernel.settings import get_settings
from chalicelib.mirror.plan import MirrorPlan, plan_mirror
from chalicelib.mirror.upstream import read_upstream, upstream_client, upstream_url
from chalicelib.policy.document import current_policy, dry_run
from chalicelib.policy.mirror import MirrorRule, schedule_seconds

SCHEDULE_SECONDS = 3600  # the mirror_sync function's own rate


def find_mirror_rule(name: str) -> MirrorRule:
    for rule in current_policy().policy.mirror:
        if rule.name == name:
            return rule
    raise LookupError(f"no mirror rule named {name!r} in the policy")


def plan_rule(rule: MirrorRule, *, docker_config: bool = False) -> MirrorPlan:
    images, total = read_upstream(rule, upstream_client(rule, docker_config=docker_config))
    return plan_mirror(rule, images, total)


def job_documents(
    rule: MirrorRule, plan: MirrorPlan, *, account: str, region: str, docker_config: bool = False
) -> list[dict[str, Any]]:
    """The copy jobs of a plan, as the replication queue carries them."""
    upstream = {
        "url": upstream_url(rule),
        "secret": rule.credentials_secret,
        "docker_config": docker_config and not rule.credentials_secret,
    }
    create = rule.create.model_dump(mode="json")
    return [
        {
            "kind": "copy",
            "rule": f"mirror:{rule.name}",
            "trigger": "schedule",
            "source_account": account,
            "source_region": region,
            "source_repository": item.repository,
            "digest": item.digest,
            "tags": item.tags,
            "destination": {
                "account": account,
                "region": region,
                "repository": item.destination,
                "create": create,
                "create_repository": rule.create_repository,
            },
            "upstream": upstream,
        }
        for item in plan.to_copy
    ]


def due(rule: MirrorRule, now: float) -> bool:
    """Whether the hourly run at `now` refreshes the rule (every run for an interval of an hour
    or less; else the runs whose hour count divides by the interval's)."""
    every = max(1, schedule_seconds(rule.schedule) // SCHEDULE_SECONDS)
    return int(now // SCHEDULE_SECONDS) % every == 0


def handle_schedule(event: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """The body of the scheduled `mirror_sync` function: one job per image of each due rule."""
    policy = current_policy().policy
    if now is None:
        stamp = event.get("time")  # the scheduled event's own time: a retried run decides alike
        now = datetime.fromisoformat(stamp).timestamp() if stamp else time.time()
    moment = now
    region = get_settings().region
    account = str(event.get("account") or caller_account())  # a schedule's event names it
    sent: dict[str, int] = {}
    failed: dict[str, str] = {}
    for rule in policy.mirror:
        if not due(rule, moment):
            continue
        try:
            plan = plan_rule(rule)
        except Exception as error:  # one upstream down does not stop the other rules
            logger().exception("mirror rule failed to plan", extra={"rule": rule.name})
            failed[rule.name] = str(error)
            continue
        jobs = job_documents(rule, plan, account=account, region=region)
        if not dry_run(policy):
            send_jobs(get_settings().replication_queue, [_json(j) for j in jobs], attempts=1)
        sent[rule.name] = len(jobs)
    logger().info("mirror fan-out", extra={"jobs": sent, "failed": failed})
    return {"jobs": sent, "failed": failed}


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))
