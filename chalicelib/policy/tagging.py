"""The `tagging:` section of the policy: which pushes a rule reacts to and which tags it derives."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from chalicelib.policy.selection import RepositoryRule
from chalicelib.policy.templates import (
    check_template,
    compile_regex,
    group_placeholders,
    match_groups,
)


class TagCopy(BaseModel):
    """Copy a tag matching `from_regex` (whole tag) to the tag rendered from `to`."""

    model_config = ConfigDict(extra="forbid")

    from_regex: str = Field(description="Regex on the whole pushed tag; its groups feed `to`.")
    to: str = Field(description="Template for the copy, e.g. `stable-{v}` or `copy-{1}`.")

    @field_validator("from_regex")
    @classmethod
    def _regex_compiles(cls, value: str) -> str:
        compile_regex(value)
        return value

    @field_validator("to")
    @classmethod
    def _template_is_valid(cls, value: str, info: ValidationInfo) -> str:
        if "from_regex" in info.data:  # otherwise its own error is already reported
            check_template(value, group_placeholders(re.compile(info.data["from_regex"])))
        return value


class TaggingRule(RepositoryRule):
    """One `tagging:` rule of the policy: which pushes it reacts to and which tags it derives."""

    match: str = Field(
        default="*",
        description="Glob on the pushed tag; also limits which tags count as releases.",
    )
    match_regex: str | None = Field(
        default=None,
        description="Regex on the whole pushed tag, instead of `match`; groups feed templates.",
    )
    semver_aliases: bool = Field(
        default=False,
        description="Point MAJOR.MINOR and MAJOR at the highest release of that line.",
    )
    latest: bool = Field(
        default=False, description="Point `latest` at the highest release in the repository."
    )
    prerelease_aliases: bool = Field(
        default=False, description="Let pre-releases (1.5.0-rc.1) take aliases and `latest`."
    )
    templates: list[str] = Field(
        default_factory=list,
        description="Tags rendered per push: {digest:12} {date} {date:%Y.%m.%d} {tag} "
        "{major} {minor} {patch} {<regex group>}.",
    )
    copies: list[TagCopy] = Field(default_factory=list)

    @field_validator("match_regex")
    @classmethod
    def _regex_compiles(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.data.get("match", "*") != "*":
            raise ValueError("set either `match` or `match_regex`, not both")
        group_placeholders(compile_regex(value))
        return value

    @field_validator("templates")
    @classmethod
    def _templates_are_valid(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if "match_regex" not in info.data:  # match_regex failed: its own error says why
            return value
        regex = info.data["match_regex"]
        groups = group_placeholders(re.compile(regex)) if regex else frozenset()
        for index, template in enumerate(value):
            try:
                check_template(template, groups)
            except ValueError as error:
                raise ValueError(f"templates[{index}]: {error}") from None
        return value

    def match_tag(self, tag: str) -> dict[str, str | None] | None:
        """The regex groups (by name and by number) if this rule reacts to `tag`, else None."""
        if self.match_regex is None:
            return {} if fnmatchcase(tag, self.match) else None
        found = re.fullmatch(self.match_regex, tag)
        return match_groups(found) if found else None
