"""Errors shared by every layer: where in a document a validation problem is, said in one line,
and the one taxonomy of AWS call failures.

Every AWS call (ECR, STS, DynamoDB, SQS, EventBridge, SSM) fails in one of two ways:

- **transient**: throttling, a 5xx, or any connection or timeout error botocore raises
  (`ConnectionClosedError`, `ReadTimeoutError`, `EndpointConnectionError`, a reset connection).
  Retrying later can succeed, so the error is raised and Lambda (or SQS) retries the work;
- **permanent**: everything else (a missing resource, access denied, a bad parameter). A retry
  gives the same answer, so the caller records it with its reason and moves on.

`is_transient` decides for any exception; `translate` turns a botocore failure into an
`AwsCallError` that says which it is, and `aws_errors` does that around a block of calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore import exceptions as boto_errors
from pydantic import ValidationError


def field_path(loc: tuple[int | str, ...]) -> str:
    """`("tagging", 0, "templates", 1)` -> `tagging[0].templates[1]`."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def describe(error: ValidationError) -> str:
    """Every problem of a validation error on one line, each naming its field:
    `detail.repository-name: Field required; time: ...`."""
    return "; ".join(f"{field_path(tuple(p['loc']))}: {p['msg']}" for p in error.errors())


def shown(value: object, limit: int = 64) -> str:
    """Caller input fit to echo in an answer or a log line: escaped (repr: no newline or control
    character gets through) and at most `limit` characters of it, saying how long it was."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} characters)"


# --- AWS call failures ---------------------------------------------------------------------------

# Error codes AWS services use for "slow down" (ECR, STS, SQS, EventBridge, SSM, DynamoDB).
# LimitExceededException is not here: ECR answers it for a quota (one scan per image a day).
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceededException",
        "SlowDown",
        "PriorRequestNotComplete",
        "TransactionInProgressException",
        "KMS.ThrottlingException",
    }
)

# Error codes of a service-side failure that says nothing about the request itself.
SERVER_CODES = frozenset(
    {
        "ServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "InternalServerException",
        "InternalServiceError",
        "RequestTimeout",
        "RequestTimeoutException",
        "AWS.SimpleQueueService.InternalError",
    }
)

# Every connection-level failure botocore raises: `HTTPClientError` is the base of
# ConnectionClosedError, ReadTimeoutError and ProxyConnectionError, which do not derive from
# botocore's `ConnectionError` (EndpointConnectionError, ConnectTimeoutError); the rest are raised
# while a response body streams. A reset socket that escapes botocore is an OSError.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = tuple(
    cls
    for cls in (
        boto_errors.HTTPClientError,
        boto_errors.ConnectionError,
        getattr(boto_errors, "ResponseStreamingError", None),
        getattr(boto_errors, "IncompleteReadError", None),
        ConnectionError,  # the builtin: ConnectionResetError, BrokenPipeError, ...
        TimeoutError,
    )
    if cls is not None
)


class AwsCallError(Exception):
    """An AWS call failed. `code` is the service's error code (or the exception's name for a
    connection failure); `transient` says whether retrying later can succeed."""

    transient = False

    def __init__(
        self,
        code: str,
        message: str = "",
        operation: str = "",
        details: dict[str, Any] | None = None,
        *,
        service: str = "",
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.operation = operation
        self.service = service
        # Modeled error fields beyond code and message (e.g. lastValidByteReceived).
        self.details = details or {}

    @property
    def reason(self) -> str:
        """One line for a record or a log: `dynamodb.put_item: AccessDeniedException: ...`."""
        where = ".".join(p for p in (self.service, self.operation) if p)
        return f"{where}: {self}" if where else str(self)


class TransientAwsError(AwsCallError):
    """Retry later: throttling, a 5xx, a dropped, reset or timed-out connection."""

    transient = True


class PermanentAwsError(AwsCallError):
    """A retry gives the same answer: record it with its reason."""


def error_code(error: BaseException) -> str:
    if isinstance(error, boto_errors.ClientError):
        return str(error.response.get("Error", {}).get("Code", "Unknown"))
    return type(error).__name__


def is_transient(error: BaseException) -> bool:
    """Whether retrying the call later can succeed. Walks `__cause__`, so an error a library
    wraps (Powertools' persistence errors) is judged by the AWS error inside it."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, AwsCallError):
            return current.transient
        if isinstance(current, boto_errors.ClientError):
            code = error_code(current)
            status = current.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
            return code in THROTTLING_CODES or code in SERVER_CODES or status >= 500
        if isinstance(current, CONNECTION_ERRORS):
            return True
        current = current.__cause__
    return False


def translate(error: BaseException, service: str, operation: str) -> AwsCallError:
    """A botocore failure as a TransientAwsError or PermanentAwsError (an AwsCallError as is)."""
    if isinstance(error, AwsCallError):
        return error
    cls = TransientAwsError if is_transient(error) else PermanentAwsError
    message = str(error)
    if isinstance(error, boto_errors.ClientError):
        message = str(error.response.get("Error", {}).get("Message", ""))
    return cls(error_code(error), message, operation, service=service)


@contextmanager
def aws_errors(service: str, operation: str) -> Iterator[None]:
    """Raise any failure of the AWS calls in the block as an AwsCallError of the taxonomy."""
    try:
        yield
    except (boto_errors.BotoCoreError, boto_errors.ClientError, *CONNECTION_ERRORS) as error:
        raise translate(error, service, operation) from error
