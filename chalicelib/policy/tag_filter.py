"""Which tags of an image a rule takes: one of a glob, a regex or a semver range (or every tag).
Replication and mirror rules select tags the same way."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Self

from pydantic import BaseModel, Field, field_validator, model_validator

from chalicelib.oci.referrers import cosign_subject, is_referrers_tag
from chalicelib.oci.versions import semver_clauses, semver_matches


class TagFilter(BaseModel):
    """A tag filter; signature and referrer-index tags are never selected: they follow the image
    they belong to."""

    tags: str | None = Field(default=None, description="Glob on the tag, e.g. `release-*`.")
    tag_regex: str | None = Field(default=None, description="Regex on the whole tag.")
    tag_semver: str | None = Field(
        default=None, description="Semver range on version tags, e.g. `>=1.2.0,<2.0.0`."
    )

    @field_validator("tag_regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a valid regex: {error}") from None
        return value

    @field_validator("tag_semver")
    @classmethod
    def _range_parses(cls, value: str | None) -> str | None:
        if value is not None:
            semver_clauses(value)
        return value

    @model_validator(mode="after")
    def _one_tag_filter(self) -> Self:
        given = [f for f in ("tags", "tag_regex", "tag_semver") if getattr(self, f) is not None]
        if len(given) > 1:
            raise ValueError(f"set one tag filter, not {' and '.join(given)}")
        return self

    @property
    def has_tag_filter(self) -> bool:
        return any(f is not None for f in (self.tags, self.tag_regex, self.tag_semver))

    def selects_tag(self, tag: str) -> bool:
        if cosign_subject(tag) or is_referrers_tag(tag):
            return False
        if self.tags is not None:
            return fnmatchcase(tag, self.tags)
        if self.tag_regex is not None:
            return re.fullmatch(self.tag_regex, tag) is not None
        if self.tag_semver is not None:
            return semver_matches(self.tag_semver, tag)
        return True
