"""Which repositories a policy rule applies to: fnmatch globs (`team-a/*`, `*`; `*` also
crosses `/`). One place for every capability's rule selection."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator


def matches_any(name: str, globs: Iterable[str]) -> bool:
    return any(fnmatchcase(name, glob) for glob in globs)


class RepositoryRule(BaseModel):
    """A policy rule that applies to the repositories its `repositories` globs select."""

    model_config = ConfigDict(extra="forbid")

    repositories: list[str] = Field(
        min_length=1, description="Repository name globs (fnmatch), e.g. `team-a/*` or `*`."
    )

    @field_validator("repositories")
    @classmethod
    def _globs_not_empty(cls, value: list[str]) -> list[str]:
        if any(not glob for glob in value):
            raise ValueError("a repository glob cannot be empty")
        return value

    def selects(self, repository: str) -> bool:
        return matches_any(repository, self.repositories)


Rule = TypeVar("Rule", bound=RepositoryRule)


def rules_for(rules: Iterable[Rule], repository: str) -> list[Rule]:
    """The rules that select `repository`, in policy order."""
    return [rule for rule in rules if rule.selects(repository)]
