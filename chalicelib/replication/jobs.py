"""Copy jobs: one image and one destination each, the unit replication fans out through SQS."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.kernel.jobqueue import send_jobs
from chalicelib.kernel.settings import get_settings
from chalicelib.policy.replication import ReplicationRule, RepositorySettings, render_repository
from chalicelib.replication.ledger import ledger_key


class Target(BaseModel):
    """A destination repository in one registry."""

    model_config = ConfigDict(frozen=True)

    account: str
    region: str
    repository: str
    role_arn: str | None = None
    create: RepositorySettings = Field(default_factory=RepositorySettings)
    # False: a missing destination repository fails the job instead (a mirror rule's choice).
    create_repository: bool = True

    def label(self) -> str:
        return f"{self.account}/{self.region}/{self.repository}"


class Upstream(BaseModel):
    """A source registry that is not ECR (a mirror rule's upstream): where its `/v2` is and
    where its credentials come from (a Secrets Manager secret, docker's config for the CLI, or
    none: anonymous)."""

    model_config = ConfigDict(frozen=True)

    url: str
    secret: str | None = None
    docker_config: bool = False


class CopyJob(BaseModel):
    """One image to one destination: the unit of work on the queue. `delete` is delete sync.
    With `upstream` the source is that registry (`source_repository` there), not ECR."""

    kind: Literal["copy", "delete"] = "copy"
    rule: str
    trigger: str
    source_account: str
    source_region: str
    source_repository: str
    digest: str
    tags: list[str] = Field(default_factory=list)
    destination: Target
    upstream: Upstream | None = None

    def ledger_key(self, digest: str | None = None) -> str:

        d = self.destination
        return ledger_key(self.rule, d.account, d.region, d.repository, digest or self.digest)


def writes_to(rule: ReplicationRule, account: str, region: str, repository: str) -> bool:
    """Whether `repository` (in this account and region) is one the rule copies into."""
    for destination in rule.destinations:
        if destination.account_for(account) != account or (destination.region or region) != region:
            continue
        pattern = re.escape(destination.repository)
        pattern = pattern.replace(re.escape("{repository}"), "(?P<repository>.+)", 1)
        pattern = pattern.replace(re.escape("{repository}"), "(?P=repository)")
        pattern = pattern.replace(re.escape("{name}"), "[^/]+").replace(
            re.escape("{rule}"), re.escape(rule.name)
        )
        found = re.fullmatch(pattern, repository)
        if found is None:
            continue
        source = found.groupdict().get("repository")
        if source is None:
            # Only {name}: any repository of that shape may be a copy, unless nothing but the
            # name is in the template (then every single-segment repository would be).
            if destination.repository != "{name}":
                return True
        elif source != repository and rule.selects_repository(source):
            return True
    return False


def jobs_for(
    rule: ReplicationRule,
    *,
    trigger: str,
    account: str,
    region: str,
    repository: str,
    digest: str,
    tags: Iterable[str],
    kind: Literal["copy", "delete"] = "copy",
) -> list[CopyJob]:
    """One job per destination of the rule; a destination that is the source is left out."""
    if writes_to(rule, account, region, repository):
        return []  # a copy this rule made: copying it again would chain copies of copies
    jobs = []
    for destination in rule.destinations:
        target = Target(
            account=destination.account_for(account),
            region=destination.region or region,
            repository=render_repository(destination.repository, repository, rule.name),
            role_arn=destination.role_for(account),
            create=destination.create,
        )
        if (target.account, target.region, target.repository) == (account, region, repository):
            continue  # copying an image onto itself would only loop
        jobs.append(
            CopyJob(
                kind=kind,
                rule=rule.name,
                trigger=trigger,
                source_account=account,
                source_region=region,
                source_repository=repository,
                digest=digest,
                tags=sorted(set(tags)),
                destination=target,
            )
        )
    return jobs


def enqueue(jobs: Iterable[CopyJob], queue: str | None = None) -> int:
    """Send copy jobs to the replication queue, ten a call, as `jobs` yields them. A message SQS
    refuses raises: the failed invocation is retried whole (copy jobs are idempotent), so nothing
    is silently lost."""
    sent = 0

    def bodies() -> Iterator[str]:
        nonlocal sent
        for job in jobs:
            sent += 1
            yield job.model_dump_json()

    send_jobs(queue or get_settings().replication_queue, bodies(), attempts=1)
    return sent
