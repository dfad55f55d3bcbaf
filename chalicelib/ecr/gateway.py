"""The ECR gateway: the only code in ecr-steward that calls Amazon ECR.

It owns pagination, ECR's batch limits (100 image ids or layer digests a call, 1,000 results a
page), retries with adaptive backoff on throttling, pacing (a limiter per registry, see
`chalicelib.kernel.ratelimit`), and the mapping of ECR error codes to the project's own
exceptions (`chalicelib.ecr.errors`). Manifest bytes pass through untouched and
`imageManifestMediaType` is always sent, so a retag never changes a digest. One module per kind
of resource holds its calls; `Registry` is all of them.
"""

from __future__ import annotations

import base64

import boto3
from pydantic import SecretStr

from chalicelib.ecr.images import ImageCalls
from chalicelib.ecr.layers import LayerCalls
from chalicelib.ecr.models import (
    AuthorizationToken,
)
from chalicelib.ecr.repositories import RepositoryCalls
from chalicelib.ecr.scans import ScanCalls


class Registry(RepositoryCalls, ImageCalls, LayerCalls, ScanCalls):
    """ECR in one account and region: every call the service makes."""

    # get-authorization-token: a registry login for the token API and the copy engine

    @classmethod
    def with_credentials(
        cls, region: str, access_key_id: str, secret_access_key: str, session_token: str
    ) -> Registry:
        """A gateway acting as a scoped, assumed-role session rather than the service itself.
        No registry id: get-authorization-token takes none (its `registryIds` is deprecated)."""

        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name=region,
        )
        # A caller waits on this request: a few quick retries, not adaptive backoff.
        return cls(region=region, session=session, max_attempts=3)

    def authorization_token(self) -> AuthorizationToken:
        """get-authorization-token: a docker login credential carrying this gateway's identity."""

        # The caller's own registry: registryId is not a parameter (registryIds is deprecated).
        data = self._own_registry_call("get_authorization_token")["authorizationData"][0]
        username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        return AuthorizationToken(
            username=username,
            password=SecretStr(password),
            proxy_endpoint=data["proxyEndpoint"],
            expires_at=data["expiresAt"],
        )
