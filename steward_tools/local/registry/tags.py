"""Tags list with the spec's `n`/`last` paging and `Link` header (ECR: ListImages)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from .context import Call
from .errors import RegistryError
from .http import Response

LIST_IMAGES = "ecr:ListImages"


def list_tags(call: Call) -> Response:
    call.allow(LIST_IMAGES)
    raw_n, last = call.request.param("n"), call.request.param("last")
    limit: int | None = None
    if raw_n is not None:
        try:
            limit = int(raw_n)
        except ValueError:
            limit = -1
        if limit < 0:
            raise RegistryError(
                400, "PAGINATION_NUMBER_INVALID", "n must be a non-negative integer", {"n": raw_n}
            )
    backend = call.backend()
    with backend._lock:
        repo = call.repository()
        tags = sorted({tag for image in repo.images for tag in image.image_tags})
    if last:
        tags = [tag for tag in tags if tag > last]
    headers: list[tuple[str, str]] = []
    if limit is not None and len(tags) > limit:
        tags = tags[:limit]
        if tags:
            query = urlencode({"n": limit, "last": tags[-1]})
            headers.append(("Link", f'</v2/{call.name}/tags/list?{query}>; rel="next"'))
    body = json.dumps({"name": call.name, "tags": tags}).encode()
    return Response.data(200, body, "application/json", headers)
