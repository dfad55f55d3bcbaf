"""Tags of a repository, page by page (`n`, `last` and the `Link: <...>; rel="next"` header)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import urljoin

from chalicelib.registry_client.auth import scope
from chalicelib.registry_client.errors import RegistryHTTPError
from chalicelib.registry_client.transport import RegistryClient

PAGE = 1000
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def iter_tags(client: RegistryClient, repository: str) -> Iterator[str]:
    """Every tag; none for a repository the registry does not know."""
    url: str | None = client.url(f"/v2/{repository}/tags/list", {"n": str(PAGE)})
    while url:
        try:
            response = client.request(
                "GET", url, scopes=(scope(repository, "pull"),), operation="list_images"
            )
        except RegistryHTTPError as error:
            if error.status == 404:
                return
            raise
        yield from json.loads(response.data).get("tags") or []
        link = _NEXT.search(response.headers.get("Link", ""))
        url = urljoin(url, link.group(1)) if link else None
