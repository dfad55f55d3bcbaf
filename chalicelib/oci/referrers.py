"""Referrers: signatures, attestations and SBOMs that point at an image, by OCI 1.1 `subject` or
by cosign's tag convention `sha256-<hex>.sig|.att|.sbom`. The one owner of that tag scheme."""

from __future__ import annotations

import re
from typing import Literal

CosignKind = Literal["sig", "att", "sbom"]
# signature, attestation, SBOM
COSIGN_KINDS: tuple[CosignKind, ...] = ("sig", "att", "sbom")
COSIGN_TAG = re.compile(r"^(sha256)-([0-9a-f]{64})\.(sig|att|sbom)$")


def cosign_tag(digest: str, kind: CosignKind = "sig") -> str:
    """`sha256:<hex>` -> `sha256-<hex>.sig` (or `.att`, `.sbom`): where cosign puts it."""
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}-{hexpart}.{kind}"


def cosign_subject(tag: str) -> str | None:
    """`sha256-<hex>.sig` -> `sha256:<hex>`; None for any other tag."""
    found = COSIGN_TAG.match(tag)
    return f"{found.group(1)}:{found.group(2)}" if found else None


def is_cosign_tag(tag: str) -> bool:
    return COSIGN_TAG.match(tag) is not None


# The OCI 1.1 referrers tag schema: where a client keeps an index of a subject's referrers on a
# registry without the referrers API (distribution-spec v1.1 "Referrers Tag Schema").
REFERRERS_TAG = re.compile(r"^(sha256)-([0-9a-f]{64})$")


def referrers_tag(digest: str) -> str:
    """`sha256:<hex>` -> `sha256-<hex>`: the fallback tag of the subject's referrers index."""
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}-{hexpart}"


def is_referrers_tag(tag: str) -> bool:
    return REFERRERS_TAG.match(tag) is not None
