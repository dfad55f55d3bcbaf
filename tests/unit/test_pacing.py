"""Pacing's pure parts: which operations it paces, their names in metrics, batch sizes, and its
settings. The DynamoDB-backed bucket itself is tested against the embedded backend
(tests/integration/test_pacing.py)."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.kernel.pacing import Pacer, api_name
from chalicelib.kernel.ratelimit import ECR_TPS
from chalicelib.kernel.settings import Settings, SettingsError


class NoTable:
    """A DynamoDB client that must not be called."""

    def update_item(self, **_: Any) -> None:
        raise AssertionError("an operation without a published rate claimed a token")


def test_only_operations_with_a_published_rate_are_paced() -> None:
    pacer = Pacer("123456789012", "us-east-1", table="t", client=NoTable)
    for operation in ("describe_images", "list_images", "batch_delete_image"):
        pacer(operation)  # adaptive retries only, as before
    assert set(pacer.buckets) == set(ECR_TPS)
    assert pacer.buckets["put_image"].key == "123456789012|us-east-1|put_image"
    assert Pacer("", "eu-west-1", table="t").buckets["put_image"].key.startswith("self|")


def test_batches_are_sized_to_the_rate() -> None:
    pacer = Pacer("123456789012", "us-east-1", table="t", client=NoTable)
    caps = {operation: bucket._cap for operation, bucket in pacer.buckets.items()}
    assert caps["put_image"] == 1  # 10/s: a claim per call
    assert caps["complete_layer_upload"] == caps["initiate_layer_upload"] == 5
    assert caps["upload_layer_part"] == 25
    assert caps["batch_get_image"] == 100


def test_metric_names_are_the_api_names() -> None:
    assert api_name("put_image") == "PutImage"
    assert api_name("batch_check_layer_availability") == "BatchCheckLayerAvailability"


@pytest.mark.parametrize("share", ["0", "1.5", "-0.1", "nan", "half"])
def test_the_fallback_share_is_a_fraction(share: str) -> None:
    with pytest.raises(SettingsError, match="STEWARD_PACING_FALLBACK_SHARE"):
        Settings.from_env({"STEWARD_PACING_FALLBACK_SHARE": share})
    quarter = Settings.from_env({"STEWARD_PACING_FALLBACK_SHARE": "0.25"})
    assert quarter.pacing_fallback_share == 0.25
    assert Settings.from_env({}).pacing_fallback_share == 0.1
