"""The `mirror:` section of the policy: images kept in ECR as copies of an upstream registry's
(Docker Hub, GHCR, Quay, gcr.io, a Harbor or distribution registry, another cloud's registry),
refreshed on a schedule. Tags are selected by glob, regex or semver range, then the newest N;
indexes by platform."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from chalicelib.oci.versions import parse_version
from chalicelib.policy.replication import NAME_PATTERN, RepositorySettings
from chalicelib.policy.tag_filter import TagFilter

_REPOSITORY = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*")


class MirrorRule(TagFilter):
    """One `mirror:` rule: which upstream images to keep in ECR, under which names, how often."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Names the rule in the CLI and records.")
    upstream: str = Field(
        description="The upstream registry: `docker.io`, `ghcr.io`, `quay.io`, "
        "`registry.example.com:5000`, or a URL (`http://...` for a plain-HTTP registry)."
    )
    credentials_secret: str | None = Field(
        default=None,
        description='Secrets Manager secret (name or ARN) holding JSON `{"username", '
        '"password"}` for the upstream (deployed functions). None: anonymous, or docker\'s '
        "config.json and credential helpers when run from the CLI.",
    )
    repositories: list[str] = Field(
        min_length=1,
        description="Upstream repositories, exact names (`nginx` on Docker Hub is "
        "`library/nginx`).",
    )
    newest: int | None = Field(
        default=None,
        ge=1,
        description="Keep only the newest N selected tags (semver order; tags that are not "
        "versions after, in reverse lexical order).",
    )
    platforms: list[str] = Field(
        default_factory=list,
        description="Platforms an index must be for (`linux/amd64`, `linux/arm64`). An index "
        "whose platforms are all listed is copied with its digest. A filtered index cannot keep "
        "its digest: `partial_platforms` says what happens then.",
    )
    partial_platforms: Literal["copy-whole", "skip"] = Field(
        default="copy-whole",
        description="An index with platforms outside `platforms`: copy-whole keeps the digest "
        "(every platform is copied), skip leaves it out; the plan says which and why.",
    )
    destination: str = Field(
        default="mirror/{registry}/{repository}",
        description="Destination repository in ECR: {registry} (the upstream's host, dots and "
        "port kept as ECR allows), {repository} (upstream name), {name} (its last segment), "
        "{rule}.",
    )
    schedule: str = Field(
        default="rate(6 hours)",
        description="How often the scheduled `mirror_sync` function refreshes this rule "
        "(the function runs hourly and refreshes a rule whose interval has passed).",
    )
    create_repository: bool = Field(
        default=True, description="Create a missing destination repository (with `create`)."
    )
    create: RepositorySettings = Field(default_factory=RepositorySettings)

    @field_validator("schedule")
    @classmethod
    def _rate(cls, value: str) -> str:
        schedule_seconds(value)
        return value

    @model_validator(mode="after")
    def _checks(self) -> MirrorRule:
        for repository in self.repositories:
            rendered = self.destination_for(repository)
            if not _REPOSITORY.fullmatch(rendered):
                raise ValueError(f"destination {rendered!r} is not a valid ECR repository name")
        return self

    @property
    def registry_host(self) -> str:
        host = self.upstream.split("://", 1)[-1].rstrip("/")
        return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host

    def destination_for(self, repository: str) -> str:
        registry = self.registry_host.replace(":", "-").lower()
        return self.destination.format(
            registry=registry,
            repository=repository,
            name=repository.rsplit("/", 1)[-1],
            rule=self.name,
        )

    def select_tags(self, tags: list[str]) -> list[str]:
        """The selected tags, newest first when `newest` keeps only some."""
        chosen = [t for t in tags if self.selects_tag(t)]
        if self.newest is None:
            return sorted(chosen)
        versions = [(parse_version(t), t) for t in chosen]
        ordered = sorted((v[1], t) for v, t in versions if v is not None)
        newest = [t for _, t in reversed(ordered)]
        newest += sorted((t for v, t in versions if v is None), reverse=True)
        return newest[: self.newest]


_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def schedule_seconds(expression: str) -> int:
    """`rate(6 hours)` → 21600 (EventBridge's rate syntax)."""
    found = re.fullmatch(r"rate\((\d+) (minutes?|hours?|days?)\)", expression.strip())
    if not found or int(found.group(1)) < 1:
        raise ValueError(f"{expression!r}: expected rate(N minutes|hours|days)")
    return int(found.group(1)) * _UNITS[found.group(2)]


def _unique_names(rules: list[MirrorRule]) -> list[MirrorRule]:
    names = [rule.name for rule in rules]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"rule names must be unique: {', '.join(duplicated)}")
    return rules


MirrorRules = Annotated[list[MirrorRule], AfterValidator(_unique_names)]
