"""One taxonomy for every AWS call: transient failures (throttling, 5xx, every connection and
timeout error botocore raises) say so, everything else is permanent."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyPersistenceLayerError,
)
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)

from chalicelib.ecr.errors import RegistryUnavailable, Throttled, _translate
from chalicelib.kernel.errors import (
    PermanentAwsError,
    TransientAwsError,
    aws_errors,
    is_transient,
    translate,
)

URL = "https://api.ecr.us-east-1.amazonaws.com/"


def client_error(code: str, status: int, operation: str = "PutImage") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


CONNECTION_FAILURES = [
    ConnectionClosedError(endpoint_url=URL),
    ReadTimeoutError(endpoint_url=URL),
    ConnectTimeoutError(endpoint_url=URL),
    EndpointConnectionError(endpoint_url=URL),
    ConnectionResetError(104, "Connection reset by peer"),
    BrokenPipeError(32, "Broken pipe"),
]


@pytest.mark.parametrize("error", CONNECTION_FAILURES, ids=lambda e: type(e).__name__)
def test_every_connection_failure_is_transient(error: Exception) -> None:
    assert is_transient(error)
    assert translate(error, "dynamodb", "put_item").transient


@pytest.mark.parametrize("error", CONNECTION_FAILURES, ids=lambda e: type(e).__name__)
def test_ecr_maps_every_connection_failure_to_unavailable(error: Exception) -> None:
    # ConnectionClosedError used to come out permanent: the gate then recorded its promotion
    # put as failed and acknowledged the event.
    translated = _translate(error, "put_image")
    assert isinstance(translated, RegistryUnavailable)
    assert translated.transient


@pytest.mark.parametrize(
    ("code", "status", "service"),
    [
        ("ThrottlingException", 400, "ecr"),
        ("ProvisionedThroughputExceededException", 400, "dynamodb"),
        ("ThrottlingException", 400, "dynamodb"),
        ("RequestLimitExceeded", 400, "sqs"),
        ("ThrottlingException", 400, "events"),
        ("Throttling", 400, "sts"),
        ("ThrottlingException", 400, "ssm"),
        ("InternalServerError", 500, "dynamodb"),
        ("InternalFailure", 500, "events"),
        ("ServiceUnavailable", 503, "sqs"),
        ("SomethingNew", 502, "ssm"),
    ],
)
def test_throttling_and_server_errors_are_transient(code: str, status: int, service: str) -> None:
    error = translate(client_error(code, status), service, "op")
    assert isinstance(error, TransientAwsError)
    assert error.reason.startswith(f"{service}.op: {code}")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDeniedException", 400),
        ("ConditionalCheckFailedException", 400),
        ("ResourceNotFoundException", 400),
        ("AWS.SimpleQueueService.NonExistentQueue", 400),
        ("ValidationException", 400),
    ],
)
def test_other_errors_are_permanent(code: str, status: int) -> None:
    assert isinstance(translate(client_error(code, status), "dynamodb", "op"), PermanentAwsError)
    assert not is_transient(ParamValidationError(report="bad"))


def test_ecr_codes_keep_their_exceptions() -> None:
    assert isinstance(_translate(client_error("ThrottlingException", 400), "x"), Throttled)
    assert _translate(client_error("ImageNotFoundException", 400), "x").transient is False


def test_a_wrapped_aws_error_is_judged_by_its_cause() -> None:
    # Powertools wraps a failed DynamoDB write in its own exception.
    cause = ConnectionClosedError(endpoint_url=URL)
    try:
        try:
            raise cause
        except ConnectionClosedError as exc:
            raise IdempotencyPersistenceLayerError("Failed to save", exc) from exc
    except IdempotencyPersistenceLayerError as wrapped:
        assert is_transient(wrapped)
    assert not is_transient(IdempotencyPersistenceLayerError("no cause"))


def test_aws_errors_translates_in_a_block() -> None:
    with pytest.raises(TransientAwsError) as raised, aws_errors("sqs", "send_message"):
        raise ConnectionClosedError(endpoint_url=URL)
    assert raised.value.reason.startswith("sqs.send_message: ConnectionClosedError")
    # Not an AWS failure: left alone.
    with pytest.raises(KeyError), aws_errors("sqs", "send_message"):
        raise KeyError("x")
