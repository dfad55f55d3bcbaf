"""Issue 12's pure parts: registry hosts by partition, rate-limit buckets, bounded caches,
SourceIdentity, the JWKS cooldown, the gate's own tags, and the policy's warnings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.ecr.access import Scope
from chalicelib.gate.decide import unowned_tags
from chalicelib.kernel.errors import shown
from chalicelib.kernel.ratelimit import KeyedBuckets, retry_after
from chalicelib.policy.document import parse_policy, policy_warnings
from chalicelib.policy.gate import GateRule
from chalicelib.policy.tokens import OidcIssuer
from chalicelib.tokens import authn
from chalicelib.tokens.authn import IssuerKeys, JwksUnavailable
from chalicelib.tokens.hosts import InvalidRegistry, parse_registry
from chalicelib.tokens.vend import TokenVendor, source_identity
from tests.oidc import Issuer

ACCOUNT = "123456789012"


@pytest.mark.parametrize(
    ("text", "region", "partition", "host"),
    [
        (ACCOUNT, "us-east-1", "aws", f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"),
        (f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com", "eu-west-1", "aws", None),
        (f"{ACCOUNT}.dkr.ecr-fips.us-west-2.amazonaws.com", "us-west-2", "aws", None),
        (f"{ACCOUNT}.dkr.ecr.us-gov-west-1.amazonaws.com", "us-gov-west-1", "aws-us-gov", None),
        (
            f"{ACCOUNT}.dkr.ecr-fips.us-gov-east-1.amazonaws.com",
            "us-gov-east-1",
            "aws-us-gov",
            None,
        ),
        (f"{ACCOUNT}.dkr.ecr.cn-northwest-1.amazonaws.com.cn", "cn-northwest-1", "aws-cn", None),
        (f"https://{ACCOUNT}.dkr.ecr.ap-southeast-2.amazonaws.com/", "ap-southeast-2", "aws", None),
    ],
)
def test_registry_hosts_keep_their_partition_and_endpoint(
    text: str, region: str, partition: str, host: str | None
) -> None:
    registry = parse_registry(text, "us-east-1")
    assert (registry.account, registry.region, registry.partition) == (ACCOUNT, region, partition)
    expected = host or text.removeprefix("https://").rstrip("/")
    assert registry.host == expected


@pytest.mark.parametrize(
    "text",
    [
        f"{ACCOUNT}.dkr.ecr.r1x.amazonaws.com",
        f"{ACCOUNT}.dkr.ecr.-.amazonaws.com",
        f"{ACCOUNT}.dkr.ecr.a-.amazonaws.com",
        f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com",  # China's region, commercial suffix
        f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com.cn",
        f"{ACCOUNT}.dkr.ecr-fips.eu-west-1.amazonaws.com",
        f"{ACCOUNT}.dkr.ecr-fips.cn-north-1.amazonaws.com.cn",
        f"http://{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com",
        f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com\n",
        "١٢٣٤٥٦٧٨٩٠١٢",
        f"{ACCOUNT}\n",
    ],
)
def test_invalid_registries_are_refused(text: str) -> None:
    with pytest.raises(InvalidRegistry):
        parse_registry(text, "us-east-1")


def test_shown_is_bounded_and_escaped() -> None:
    assert shown("a\nb") == "'a\\nb'"
    long = shown("x" * 5000)
    assert len(long) < 100 and "5000 characters" in long


def test_keyed_buckets_limit_each_key_and_forget_the_oldest() -> None:
    now = [0.0]
    buckets = KeyedBuckets(rate=1, burst=2, size=3, clock=lambda: now[0])
    assert [buckets.try_acquire("a") for _ in range(3)][:2] == [0.0, 0.0]
    assert buckets.try_acquire("a") == pytest.approx(1.0)
    assert buckets.try_acquire("b") == 0.0
    assert buckets.try_acquire("a", take=False) > 0  # telling takes nothing
    for key in "cdefgh":
        buckets.try_acquire(key)
    assert len(buckets) == 3
    now[0] = 10.0
    assert buckets.try_acquire("a") == 0.0
    assert retry_after(0.2) == "1" and retry_after(2.5) == "3"


def test_source_identity_is_valid_for_sts_and_unique() -> None:
    a = source_identity("github:repo:acme/app:ref:refs/heads/main")
    b = source_identity("github:repo:acme-app:ref:refs/heads/main")
    assert a != b
    for value in (a, b, source_identity("x" * 500), source_identity("é")):
        assert 2 <= len(value) <= 64
        assert all(c.isascii() and (c.isalnum() or c in "_+=,.@-") for c in value)
    assert source_identity("static:dev") == "static-dev." + source_identity("static:dev")[-12:]
    assert source_identity("plain-name") == "plain-name"


def test_the_credential_cache_is_bounded() -> None:
    assumed: list[str] = []

    class Session:
        access_key_id = "AK"
        secret_access_key = session_token = type("S", (), {"get_secret_value": lambda s: "x"})()
        expires_at = datetime.now(UTC) + timedelta(hours=1)

    class Gateway:
        def authorization_token(self) -> Any:
            return type(
                "T",
                (),
                {
                    "username": "AWS",
                    "password": "p",
                    "expires_at": datetime.now(UTC) + timedelta(hours=12),
                },
            )()

    def assume(*args: Any) -> Session:
        assumed.append(args[4])
        return Session()

    vendor = TokenVendor(
        "arn:aws:iam::1:role/r", assume=assume, gateway=lambda *a: Gateway(), cache_size=4
    )
    scope = Scope(
        grant="g", account=ACCOUNT, region="us-east-1", repositories=("*",), access="pull"
    )
    for n in range(10):
        vendor.credential(scope, source_identity=f"caller-{n}")
    assert len(vendor) == 4 and len(vendor._locks) == 4
    assert vendor.credential(scope, source_identity="caller-9").cached
    assert not vendor.credential(scope, source_identity="caller-0").cached
    assert assumed[:2] == ["caller-0", "caller-1"]


def test_a_failing_jwks_url_is_logged_counted_and_cooled_down(capsys, monkeypatch) -> None:
    issuer = Issuer()
    counted: list[str] = []
    monkeypatch.setattr(authn, "count", lambda name, value=1: counted.append(name))
    settings = OidcIssuer(name="gh", issuer=issuer.issuer, audience="a", jwks_uri="https://x/k")
    now = [0.0]
    attempts: list[str] = []

    def fetch(uri: str) -> dict[str, Any]:
        attempts.append(uri)
        raise OSError("connection refused")

    keys = IssuerKeys(settings, clock=lambda: now[0], fetch=fetch)
    for _ in range(5):
        with pytest.raises(JwksUnavailable):
            keys.key(issuer.kid)
    assert len(attempts) == 1  # the cooldown holds the next attempts
    assert counted == ["JwksFetchFailures"]
    assert "JWKS fetch failed" in capsys.readouterr().out
    now[0] = 61.0
    with pytest.raises(JwksUnavailable):
        keys.key(issuer.kid)
    assert len(attempts) == 2

    # Keys fetched once serve until the lifespan; an unknown kid refetches once a cooldown.
    served = IssuerKeys(settings, clock=lambda: now[0], fetch=lambda uri: issuer.jwks())
    assert served.key(issuer.kid) is not None
    for _ in range(5):
        with pytest.raises(Exception, match="not in the JWKS"):
            served.key("forged-kid")
    assert served.fetches == 1
    now[0] = 130.0
    with pytest.raises(Exception, match="not in the JWKS"):
        served.key("forged-kid")
    assert served.fetches == 2


def test_the_gate_takes_its_tags_off_an_undecided_image() -> None:
    rule = GateRule(repositories=["*"], promotion_tags=["approved", "prod"])
    digest = "sha256:" + "ab" * 32
    actions = unowned_tags(rule, digest, ["1.0.0", "approved", "quarantined-abababababab"])
    assert [(a.action, a.tag) for a in actions] == [
        ("remove", "approved"),
        ("remove", "quarantined-abababababab"),
    ]
    assert unowned_tags(rule, digest, ["1.0.0", "latest"]) == []


def test_policy_warns_about_an_unprotected_promotion_tag() -> None:
    gate = "gate:\n  rules:\n    - repositories: ['team/*']\n      promotion_tags: [approved]\n"
    [warning] = policy_warnings(parse_policy(gate).policy)
    assert warning.startswith("gate.rules[0].promotion_tags: 'approved'")
    protected = gate + (
        "governance:\n  repositories:\n    - repositories: ['*']\n"
        "      tag_mutability: IMMUTABLE\n      mutability_exclusions: [approved]\n"
    )
    assert policy_warnings(parse_policy(protected).policy) == []
