"""Which images runtimes are using: ECS, Lambda, and a list the operator keeps (EKS and others).

Data access only: it reads ECS, Lambda, SSM and a file, and answers, per repository, the tags and
digests in use with where each was found. Collected once per registry and reused for a few
minutes, so a sweep worker handling many repositories asks ECS and Lambda once.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from chalicelib.gate.records import GateRecord, records
from chalicelib.kernel.aws import client as aws_client
from chalicelib.kernel.errors import aws_errors
from chalicelib.kernel.tables import repository_items
from chalicelib.policy.retention import InUseSettings
from chalicelib.retention.plan import InUse

CACHE_SECONDS = 300
# registry host / repository [:tag] [@digest]
IMAGE_REFERENCE = re.compile(
    r"^(?:(?P<host>[^/]+\.[^/]+|localhost(?::\d+)?)/)?(?P<repository>[a-z0-9][^:@]*?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,299}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


@dataclass(frozen=True)
class Reference:
    host: str | None
    repository: str
    tag: str | None
    digest: str | None
    source: str


def parse_reference(text: str, source: str) -> Reference | None:
    found = IMAGE_REFERENCE.match(text.strip())
    if not found or not (found.group("tag") or found.group("digest")):
        return None
    return Reference(
        host=found.group("host"),
        repository=found.group("repository"),
        tag=found.group("tag"),
        digest=found.group("digest"),
        source=source,
    )


@dataclass
class InUseIndex:
    """Every reference found, searchable by repository."""

    references: list[Reference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def for_repository(self, name: str, uri: str) -> InUse:
        host = uri.split("/", 1)[0] if "/" in uri else None
        found = InUse()
        for ref in self.references:
            if ref.repository != name or (ref.host and host and ref.host != host):
                continue
            if ref.digest:
                found.by_digest.setdefault(ref.digest, ref.source)
            elif ref.tag:
                found.by_tag.setdefault(ref.tag, ref.source)
        return found


def collect(settings: InUseSettings) -> InUseIndex:
    index = InUseIndex()
    if settings.ecs:
        _ecs(index, settings.task_definition_revisions)
    if settings.lambda_functions:
        _lambda(index)
    if settings.operator.ssm_parameter:
        _ssm(index, settings.operator.ssm_parameter)
    if settings.operator.file:
        _file(index, settings.operator.file)
    return index


_CACHE: dict[str, tuple[float, InUseIndex]] = {}


def in_use_index(settings: InUseSettings) -> InUseIndex:
    """`collect`, reused for CACHE_SECONDS (a sweep worker handles many repositories)."""
    key = settings.model_dump_json()
    cached = _CACHE.get(key)
    if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    index = collect(settings)
    _CACHE.clear()
    _CACHE[key] = (time.monotonic(), index)
    return index


def forget() -> None:
    _CACHE.clear()


def _add(index: InUseIndex, image: str | None, source: str) -> None:
    if not image:
        return
    ref = parse_reference(image, source)
    if ref is not None:
        index.references.append(ref)


def _ecs(index: InUseIndex, revisions: int) -> None:
    ecs = aws_client("ecs")
    definitions: dict[str, str] = {}  # task definition ARN → why it counts
    for page in ecs.get_paginator("list_clusters").paginate():
        for cluster in page.get("clusterArns", []):
            _ecs_tasks(ecs, index, cluster, definitions)
            _ecs_services(ecs, cluster, definitions)
    if revisions:
        for page in ecs.get_paginator("list_task_definition_families").paginate(status="ACTIVE"):
            for family in page.get("families", []):
                latest = ecs.list_task_definitions(
                    familyPrefix=family, status="ACTIVE", sort="DESC", maxResults=revisions
                ).get("taskDefinitionArns", [])
                for arn in latest:
                    definitions.setdefault(arn, f"one of the latest {revisions} revisions")
    for arn, why in definitions.items():
        described = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        for container in described.get("containerDefinitions", []):
            _add(index, container.get("image"), f"ECS task definition {_tail(arn)} ({why})")


def _ecs_tasks(ecs: Any, index: InUseIndex, cluster: str, definitions: dict[str, str]) -> None:
    arns = [
        arn
        for page in ecs.get_paginator("list_tasks").paginate(
            cluster=cluster, desiredStatus="RUNNING"
        )
        for arn in page.get("taskArns", [])
    ]
    for start in range(0, len(arns), 100):
        tasks = ecs.describe_tasks(cluster=cluster, tasks=arns[start : start + 100])["tasks"]
        for task in tasks:
            where = f"running ECS task {_tail(task['taskArn'])}"
            definitions.setdefault(task["taskDefinitionArn"], "running task")
            for container in task.get("containers", []):
                _add(index, container.get("image"), where)
                digest = container.get("imageDigest")
                image = container.get("image")
                if digest and image:
                    # The digest the task actually runs, whatever the tag points at now.
                    _add(index, image.split("@")[0].rsplit(":", 1)[0] + "@" + digest, where)


def _ecs_services(ecs: Any, cluster: str, definitions: dict[str, str]) -> None:
    arns = [
        arn
        for page in ecs.get_paginator("list_services").paginate(cluster=cluster)
        for arn in page.get("serviceArns", [])
    ]
    for start in range(0, len(arns), 10):
        services = ecs.describe_services(cluster=cluster, services=arns[start : start + 10])
        for service in services.get("services", []):
            why = f"ECS service {service['serviceName']}"
            if service.get("taskDefinition"):
                definitions.setdefault(service["taskDefinition"], why)
            for deployment in service.get("deployments", []):
                if deployment.get("taskDefinition"):
                    definitions.setdefault(deployment["taskDefinition"], why)


def _lambda(index: InUseIndex) -> None:
    client = aws_client("lambda")
    for page in client.get_paginator("list_functions").paginate():
        for function in page.get("Functions", []):
            if function.get("PackageType") != "Image":
                continue
            name = function["FunctionName"]
            code = client.get_function(FunctionName=name).get("Code", {})
            where = f"Lambda function {name}"
            _add(index, code.get("ImageUri"), where)
            _add(index, code.get("ResolvedImageUri"), where)


def _ssm(index: InUseIndex, name: str) -> None:
    with aws_errors("ssm", "get_parameter"):
        value = aws_client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
    _lines(index, value, f"operator list (SSM {name})")


def _file(index: InUseIndex, path: str) -> None:
    _lines(index, Path(path).read_text(encoding="utf-8"), f"operator list ({path})")


def _lines(index: InUseIndex, text: str, source: str) -> None:
    for line in re.split(r"[\n,]", text):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        before = len(index.references)
        _add(index, line, source)
        if len(index.references) == before:
            index.notes.append(f"{source}: not an image reference: {line!r}")


def _tail(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def promoted_since(repository: str, since: datetime) -> tuple[dict[str, datetime], str | None]:
    """Digests the scan gate passed in this repository since `since`, and a note if the gate's
    records cannot be read (the gate is optional)."""
    try:
        store = records()
    except (ImportError, AttributeError) as error:
        return {}, f"gate promotions not checked: the gate is not available ({error})"
    found: dict[str, datetime] = {}
    for item in repository_items(store.client, store.table, repository):
        if "body" not in item:
            continue
        record = GateRecord.model_validate_json(item["body"]["S"])
        decided = record.decided_at
        if record.status == "pass" and decided is not None and decided >= since:
            found[record.digest] = decided
    return found, None
