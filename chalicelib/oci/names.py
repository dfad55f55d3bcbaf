"""Names the registry accepts: tags and repository names."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


# Docker's tag grammar. ECR itself accepts up to 300 characters, but docker and containerd
# clients refuse tags over 128, so a longer tag could be put but never pulled by tag.
TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def tag_problem(tag: str) -> str | None:
    """Why `tag` is not a valid image tag, or None."""
    if TAG_PATTERN.fullmatch(tag):
        return None
    if not tag:
        return "an empty tag"
    if len(tag) > 128:
        return f"{len(tag)} characters, over Docker's 128"
    return "not a valid tag: [A-Za-z0-9_] first, then [A-Za-z0-9_.-]"


# ECR's repository-name grammar (CreateRepository's model pattern).
REPOSITORY_NAME = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
