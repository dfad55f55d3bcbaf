"""The STS gateway of the token API: assume the vending role with a session policy.

Replication's assumed roles go through `chalicelib.kernel.aws.assumed_session`. Errors here map
to three kinds a caller can act on: throttled (retry later), unavailable (AWS is down or
unreachable) and refused (a configuration problem: the role does not exist or does not trust the
service).
"""

from __future__ import annotations

from datetime import datetime

from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError
from pydantic import BaseModel, SecretStr

from chalicelib.kernel import aws

THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}
)


class StsError(Exception):
    """assume-role failed; `code` is STS's error code."""

    throttled = False
    transient = False

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


class StsThrottled(StsError):
    throttled = True
    transient = True


class StsUnavailable(StsError):
    transient = True


class AssumedSession(BaseModel):
    """Temporary credentials of one assumed-role session. Secrets never show in a repr."""

    arn: str
    access_key_id: str
    secret_access_key: SecretStr
    session_token: SecretStr
    expires_at: datetime


def assume_role(
    role_arn: str,
    session_name: str,
    session_policy: str,
    duration_seconds: int,
    source_identity: str | None = None,
) -> AssumedSession:
    """sts:AssumeRole with an inline session policy: the session may do only what both the
    role's policy and the session policy allow. `source_identity` names the caller on every
    CloudTrail record the session makes (the role's trust policy allows sts:SetSourceIdentity)."""
    extra = {"SourceIdentity": source_identity} if source_identity else {}
    try:
        response = aws.sts().assume_role(
            RoleArn=role_arn,
            RoleSessionName=session_name,
            Policy=session_policy,
            DurationSeconds=duration_seconds,
            **extra,
        )
    except Exception as error:  # botocore raises several unrelated types
        raise _translate(error) from error
    credentials = response["Credentials"]
    return AssumedSession(
        arn=response["AssumedRoleUser"]["Arn"],
        access_key_id=credentials["AccessKeyId"],
        secret_access_key=SecretStr(credentials["SecretAccessKey"]),
        session_token=SecretStr(credentials["SessionToken"]),
        expires_at=credentials["Expiration"],
    )


def _translate(error: Exception) -> StsError:

    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        code = info.get("Code", "Unknown")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in THROTTLING_CODES:
            return StsThrottled(code, info.get("Message", ""))
        if status >= 500:
            return StsUnavailable(code, info.get("Message", ""))
        return StsError(code, info.get("Message", ""))
    if isinstance(error, ConnectionError | ReadTimeoutError):
        return StsUnavailable(type(error).__name__, str(error))
    return StsError(type(error).__name__, str(error))
