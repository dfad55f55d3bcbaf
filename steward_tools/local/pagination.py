"""ECR-style pages for the embedded backend's list and describe calls."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from moto.ecr.exceptions import InvalidParameterException


def paginate(
    items: list[Any], max_results: int | None, next_token: str | None
) -> tuple[list[Any], str | None]:
    """ECR-style pages: default 100 per page, an opaque token for the rest."""
    if max_results is not None and not 1 <= int(max_results) <= 1000:
        raise InvalidParameterException(
            "Invalid parameter at 'maxResults' failed to satisfy constraint: "
            "'Member must have value less than or equal to 1000'"
        )
    start = 0
    if next_token:
        try:
            start = int(json.loads(base64.b64decode(next_token))["offset"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise InvalidParameterException(
                "Invalid parameter at 'nextToken' failed to satisfy constraint: 'Invalid NextToken'"
            ) from None
    end = start + int(max_results or 100)
    token = None
    if end < len(items):
        token = base64.b64encode(json.dumps({"offset": end}).encode()).decode()
    return items[start:end], token
