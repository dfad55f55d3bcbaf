"""A plain http.client speaker of the OCI distribution API, for the registry tests."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from steward_tools.samples import Built


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error_codes(self) -> list[str]:
        return [error["code"] for error in self.json()["errors"]]


def password_of(ecr: Any) -> str:
    """The password get-authorization-token vends to the credentials of this ECR client."""
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    return base64.b64decode(token).decode().split(":", 1)[1]


class V2:
    def __init__(self, port: int, password: str | None, host: str | None = None) -> None:
        self.port = port
        self.password = password
        self.host = host

    def request(
        self,
        method: str,
        path: str,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = dict(headers or {})
        if self.password is not None:
            basic = base64.b64encode(f"AWS:{self.password}".encode()).decode()
            sent.setdefault("Authorization", f"Basic {basic}")
        if self.host:
            sent["Host"] = self.host
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return Reply(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def push_blob(self, name: str, data: bytes) -> Reply:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        return self.request(
            "POST",
            f"/v2/{name}/blobs/uploads/?digest={digest}",
            data,
            {"Content-Type": "application/octet-stream"},
        )

    def push_manifest(self, name: str, reference: str, body: str | bytes, media_type: str) -> Reply:
        data = body.encode() if isinstance(body, str) else body
        return self.request(
            "PUT", f"/v2/{name}/manifests/{reference}", data, {"Content-Type": media_type}
        )

    def push(self, name: str, built: Built, tag: str | None = None) -> Reply:
        """Every blob, then the manifests (children by digest, the top one by `tag`)."""
        for data in built.blobs.values():
            reply = self.push_blob(name, data)
            assert reply.status == 201, reply
        reply = Reply(0, {}, b"")
        for manifest in built.manifests:
            reference = tag if tag and manifest.digest == built.digest else manifest.digest
            reply = self.push_manifest(name, reference, manifest.body, manifest.media_type)
            if reply.status != 201:
                return reply
        return reply
