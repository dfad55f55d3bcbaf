"""The embedded ECR's OCI distribution API (/v2) as a client meets it: ECR's login and scoped
passwords, ECR's rules on push, the spec's uploads, tags paging and referrers, and a push through
/v2 being an ECR push (events, describe-images, the service's aliases)."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time

import boto3
import pytest

import app
from chalicelib.ecr.access import Scope, session_policy
from chalicelib.oci.manifests import OCI_INDEX, OCI_MANIFEST
from steward_tools.local.delivery import EventPump
from steward_tools.local.runner import LocalLambdaContext
from steward_tools.local.tokens import issue_password
from steward_tools.samples import build_image, build_index, build_referrer
from tests.conftest import ACCOUNT, REGION
from tests.v2client import V2, password_of

MIB = 1024 * 1024


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def ecr(aws):
    return aws.client("ecr", region_name=REGION)


@pytest.fixture
def v2(aws, ecr) -> V2:
    return V2(aws.port, password_of(ecr))


def scoped_v2(aws, access: str, repositories: tuple[str, ...]) -> V2:
    """A /v2 client holding the password the token API would vend for this scope."""
    policy = session_policy(
        Scope(grant="ci", account=ACCOUNT, region=REGION, repositories=repositories, access=access)
    )
    credentials = aws.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/steward-{access}",
        RoleSessionName="ci",
        Policy=policy,
    )["Credentials"]
    scoped = aws.client(
        "ecr",
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    return V2(aws.port, password_of(scoped))


def image_actions(aws) -> list[dict]:
    sqs = boto3.client("sqs")
    found: list[dict] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=aws.resources.events_queue_url, MaxNumberOfMessages=10
        ).get("Messages", [])
        if not messages:
            return found
        for message in messages:
            event = json.loads(message["Body"])
            if event["detail-type"] == "ECR Image Action":
                found.append(event["detail"])
            sqs.delete_message(
                QueueUrl=aws.resources.events_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )


# --- login ------------------------------------------------------------------------------------


def test_anonymous_ping_gets_ecrs_basic_challenge(aws) -> None:
    reply = V2(aws.port, None).request("GET", "/v2/")
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == (
        f'Basic realm="https://127.0.0.1:{aws.port}/",service="ecr.amazonaws.com"'
    )
    assert reply.error_codes == ["UNAUTHORIZED"]


def test_login_with_the_get_login_password(v2: V2) -> None:
    reply = v2.request("GET", "/v2/")
    assert reply.status == 200
    assert reply.headers["docker-distribution-api-version"] == "registry/2.0"


def test_forged_and_expired_passwords_are_refused(aws, v2: V2) -> None:
    assert v2.password is not None
    payload, _, _signature = v2.password.rpartition(".")
    forged = V2(aws.port, payload + "." + "0" * 64)
    reply = forged.request("GET", "/v2/")
    assert reply.status == 401 and reply.error_codes == ["UNAUTHORIZED"]
    assert v2.password not in reply.body.decode()

    unsigned = base64.urlsafe_b64encode(b'{"accessKeyId":"testing","expiresAt":9999999999}')
    reply = V2(aws.port, "steward-local." + unsigned.decode()).request("GET", "/v2/")
    assert reply.status == 401

    expired = V2(aws.port, issue_password("testing", time.time() - 1))
    reply = expired.request("GET", "/v2/")
    assert reply.status == 403
    assert reply.json()["errors"][0] == {
        "code": "DENIED",
        "message": "Your authorization token has expired. Reauthenticate and try again.",
    }


def test_a_pull_scoped_password_pulls_but_cannot_push(aws, ecr, v2: V2) -> None:
    ecr.create_repository(repositoryName="team/app")
    ecr.create_repository(repositoryName="other/app")
    image = build_image(layer_sizes=[256], seed=1)
    assert v2.push("team/app", image, tag="1.0").status == 201

    puller = scoped_v2(aws, "pull", ("team/*",))
    assert puller.request("GET", "/v2/team/app/manifests/1.0").status == 200
    assert puller.request("HEAD", f"/v2/team/app/blobs/{image.layer_digests[0]}").status == 200

    refused = puller.request("POST", "/v2/team/app/blobs/uploads/")
    assert refused.status == 403
    [error] = refused.json()["errors"]
    assert error["code"] == "DENIED"
    assert "is not authorized to perform: ecr:InitiateLayerUpload on resource: " in error["message"]
    assert f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/team/app" in error["message"]
    refused = puller.push_manifest("team/app", "2.0", image.manifest.body, OCI_MANIFEST)
    assert refused.status == 403
    # Outside its repositories it cannot even pull.
    assert puller.request("GET", "/v2/other/app/manifests/1.0").error_codes == ["DENIED"]


def test_a_push_scoped_password_pushes_only_its_repositories(aws, ecr) -> None:
    for name in ("team/app", "other/app"):
        ecr.create_repository(repositoryName=name)
    pusher = scoped_v2(aws, "push", ("team/app",))
    image = build_image(layer_sizes=[128], seed=2)
    assert pusher.push("team/app", image, tag="1.0").status == 201
    assert pusher.request("POST", "/v2/other/app/blobs/uploads/").status == 403
    # Deleting and listing tags are not in a push scope.
    assert pusher.request("DELETE", "/v2/team/app/manifests/1.0").status == 403
    assert pusher.request("GET", "/v2/team/app/tags/list").status == 403


# --- a /v2 push is an ECR push ------------------------------------------------------------------


def test_push_emits_ecrs_event_and_records_the_image(aws, ecr, v2: V2) -> None:
    ecr.create_repository(repositoryName="team/app")
    image = build_image(layer_sizes=[512, 256], seed=3)
    reply = v2.push("team/app", image, tag="1.0")
    assert reply.status == 201
    assert reply.headers["docker-content-digest"] == image.digest

    [detail] = image_actions(aws)
    assert detail == {
        "result": "SUCCESS",
        "repository-name": "team/app",
        "image-digest": image.digest,
        "action-type": "PUSH",
        "image-tag": "1.0",
        "manifest-media-type": OCI_MANIFEST,
    }
    [record] = ecr.describe_images(repositoryName="team/app")["imageDetails"]
    assert record["imageDigest"] == image.digest and record["imageTags"] == ["1.0"]

    got = v2.request("GET", "/v2/team/app/manifests/1.0", headers={"Accept": OCI_MANIFEST})
    assert got.body == image.manifest.body.encode()  # the exact bytes
    assert got.headers["docker-content-digest"] == image.digest
    assert got.headers["content-type"] == OCI_MANIFEST

    assert v2.request("DELETE", f"/v2/team/app/manifests/{image.digest}").status == 202
    assert [d["action-type"] for d in image_actions(aws)] == ["DELETE"]
    assert v2.request("GET", "/v2/team/app/manifests/1.0").error_codes == ["MANIFEST_UNKNOWN"]


def test_push_through_v2_gets_its_aliases_within_a_second(aws, ecr, v2: V2, policy_file) -> None:
    """A second when the machine is quiet; the bound allows for a loaded CI machine, where the
    embedded backend's first scan (moto loading SSM's data) alone can take most of a second."""
    ecr.create_repository(repositoryName="team/app")
    image = build_image(layer_sizes=[256], seed=4)
    started = time.monotonic()
    assert v2.push("team/app", image, tag="1.2.3").status == 201
    EventPump(
        boto3.client("sqs"),
        aws.resources.events_queue_url,
        lambda event: app.on_ecr_event(event, LocalLambdaContext()),
    ).drain()
    tags = json.loads(v2.request("GET", "/v2/team/app/tags/list").body)["tags"]
    assert time.monotonic() - started < 3.0
    assert set(tags) >= {"1.2.3", "1.2", "1", "latest"}


# --- ECR's rules --------------------------------------------------------------------------------


def test_push_to_a_missing_repository_is_name_unknown(v2: V2) -> None:
    reply = v2.request("POST", "/v2/never/created/blobs/uploads/")
    assert reply.status == 404 and reply.error_codes == ["NAME_UNKNOWN"]
    reply = v2.request("GET", "/v2/Bad_Name/tags/list")
    assert reply.status == 400 and reply.error_codes == ["NAME_INVALID"]


def test_immutable_tag_refuses_overwrite_even_with_the_same_image(ecr, v2: V2) -> None:
    ecr.create_repository(repositoryName="team/app", imageTagMutability="IMMUTABLE")
    first, second = build_image(seed=5), build_image(seed=6)
    assert v2.push("team/app", first, tag="1.0").status == 201
    for image in (second, first):
        reply = v2.push("team/app", image, tag="1.0")
        assert reply.status == 400 and reply.error_codes == ["TAG_INVALID"]
        assert "cannot be overwritten because the repository is immutable" in reply.body.decode()


def test_manifest_with_missing_blobs_and_bad_tags(ecr, v2: V2) -> None:
    ecr.create_repository(repositoryName="team/app")
    image = build_image(seed=7)
    reply = v2.push_manifest("team/app", "1.0", image.manifest.body, OCI_MANIFEST)
    assert reply.status == 400 and reply.error_codes == ["MANIFEST_BLOB_UNKNOWN"]
    reply = v2.push_manifest("team/app", "-bad", image.manifest.body, OCI_MANIFEST)
    assert reply.error_codes == ["TAG_INVALID"]
    reply = v2.push_manifest("team/app", "1.0", b"not json", OCI_MANIFEST)
    assert reply.status == 400 and reply.error_codes == ["MANIFEST_INVALID"]
    index = build_index([build_image(seed=8)])
    reply = v2.push_manifest("team/app", "multi", index.manifest.body, OCI_INDEX)
    assert reply.error_codes == ["MANIFEST_BLOB_UNKNOWN"]  # its children first, as on ECR


# --- uploads ----------------------------------------------------------------------------------


def test_chunked_upload_in_order_out_of_order_status_and_cancel(ecr, v2: V2) -> None:
    ecr.create_repository(repositoryName="team/app")
    data = bytes(range(256)) * (24 * 1024) + b"tail"  # 6 MiB and 4 bytes
    started = v2.request("POST", "/v2/team/app/blobs/uploads/")
    assert started.status == 202
    assert started.headers["oci-chunk-min-length"] == str(5 * MIB)
    location = started.headers["location"]

    first = data[: 5 * MIB]
    assert (
        v2.request("PATCH", location, first, {"Content-Range": f"0-{len(first) - 1}"}).status == 202
    )
    out_of_order = v2.request("PATCH", location, b"xx", {"Content-Range": "10-11"})
    assert out_of_order.status == 416
    assert out_of_order.headers["range"] == f"0-{5 * MIB - 1}"
    status = v2.request("GET", location)
    assert status.status == 204 and status.headers["range"] == f"0-{5 * MIB - 1}"

    rest = data[5 * MIB :]
    done = v2.request(
        "PUT",
        f"{location}?digest={digest(data)}",
        rest,
        {"Content-Range": f"{5 * MIB}-{len(data) - 1}"},
    )
    assert done.status == 201 and done.headers["docker-content-digest"] == digest(data)
    assert v2.request("HEAD", f"/v2/team/app/blobs/{digest(data)}").headers[
        "content-length"
    ] == str(len(data))

    cancelled = v2.request("POST", "/v2/team/app/blobs/uploads/").headers["location"]
    assert v2.request("DELETE", cancelled).status == 204
    assert v2.request("GET", cancelled).error_codes == ["BLOB_UPLOAD_UNKNOWN"]


def test_parts_before_the_last_must_be_5_mib(ecr, v2: V2) -> None:
    ecr.create_repository(repositoryName="team/app")
    location = v2.request("POST", "/v2/team/app/blobs/uploads/").headers["location"]
    assert v2.request("PATCH", location, b"small", {"Content-Range": "0-4"}).status == 202
    reply = v2.request("PATCH", location, b"more", {"Content-Range": "5-8"})
    assert reply.status == 416 and reply.error_codes == ["SIZE_INVALID"]
    assert "at least 5 MiB" in reply.json()["errors"][0]["message"]


def test_wrong_digest_and_streamed_upload(ecr, v2: V2) -> None:
    ecr.create_repository(repositoryName="team/app")
    location = v2.request("POST", "/v2/team/app/blobs/uploads/").headers["location"]
    assert v2.request("PATCH", location, b"streamed without a range").status == 202
    reply = v2.request("PUT", f"{location}?digest={digest(b'other')}")
    assert reply.status == 400 and reply.error_codes == ["DIGEST_INVALID"]
    assert v2.request("GET", location).error_codes == ["BLOB_UPLOAD_UNKNOWN"]  # discarded

    # As docker streams a layer: one PATCH with a chunked body of unknown length.
    pieces = [bytes([n]) * 300_000 for n in range(8)]
    location = v2.request("POST", "/v2/team/app/blobs/uploads/").headers["location"]
    streamed = v2.request("PATCH", location, iter(pieces))
    assert streamed.status == 202 and streamed.headers["range"] == f"0-{8 * 300_000 - 1}"
    done = v2.request("PUT", f"{location}?digest={digest(b''.join(pieces))}")
    assert done.status == 201
    reply = v2.request("PUT", f"{location}?digest=sha256:nothex")
    assert reply.status == 400


def test_mount_follows_the_blob_mounting_setting(ecr, v2: V2) -> None:
    for name in ("team/app", "team/copy"):
        ecr.create_repository(repositoryName=name)
    image = build_image(seed=9)
    v2.push("team/app", image, tag="1.0")
    layer = image.layer_digests[0]
    mount = f"/v2/team/copy/blobs/uploads/?mount={layer}&from=team/app"

    assert v2.request("POST", mount).status == 202  # off by default, as on AWS: upload instead
    ecr.put_account_setting(name="BLOB_MOUNTING", value="ENABLED")
    reply = v2.request("POST", mount)
    assert reply.status == 201 and reply.headers["location"] == f"/v2/team/copy/blobs/{layer}"
    assert v2.request("HEAD", f"/v2/team/copy/blobs/{layer}").status == 200
    # Only layers an image references are mounted.
    unreferenced = b"uploaded, never referenced"
    v2.push_blob("team/app", unreferenced)
    reply = v2.request(
        "POST", f"/v2/team/copy/blobs/uploads/?mount={digest(unreferenced)}&from=team/app"
    )
    assert reply.status == 202


def test_blob_get_redirects_to_a_signed_url(aws, ecr, v2: V2) -> None:
    ecr.create_repository(repositoryName="team/app")
    image = build_image(layer_sizes=[2048], seed=10)
    v2.push("team/app", image, tag="1.0")
    layer = image.layers[0]
    reply = v2.request("GET", f"/v2/team/app/blobs/{layer.digest}")
    assert reply.status == 307
    target = reply.headers["location"]
    assert "/_steward/blobs/" in target and "signature=" in target
    path = target.split(str(aws.port), 1)[1]
    ranged = V2(aws.port, None).request("GET", path, headers={"Range": "bytes=0-9"})
    assert ranged.status == 206 and ranged.body == layer.blob[:10]
    assert v2.request("DELETE", f"/v2/team/app/blobs/{layer.digest}").status == 405


# --- discovery --------------------------------------------------------------------------------


def test_tags_list_pages_with_n_last_and_link(ecr, v2: V2) -> None:
    ecr.create_repository(repositoryName="team/app")
    image = build_image(seed=11)
    v2.push("team/app", image)
    for tag in ("c", "a", "b", "d"):
        assert v2.push_manifest("team/app", tag, image.manifest.body, OCI_MANIFEST).status == 201
    first = v2.request("GET", "/v2/team/app/tags/list?n=2")
    assert first.json() == {"name": "team/app", "tags": ["a", "b"]}
    assert first.headers["link"] == '</v2/team/app/tags/list?n=2&last=b>; rel="next"'
    second = v2.request("GET", "/v2/team/app/tags/list?n=2&last=b")
    assert second.json()["tags"] == ["c", "d"] and "link" not in second.headers
    assert v2.request("GET", "/v2/team/app/tags/list?n=x").status == 400


def test_referrers_with_artifact_type_filter(ecr, v2: V2) -> None:
    ecr.create_repository(repositoryName="team/app")
    subject = build_image(seed=12)
    v2.push("team/app", subject, tag="1.0")
    sbom = build_referrer(subject, artifact_type="application/spdx+json", payload=b"{}")
    sig = build_referrer(subject, artifact_type="application/vnd.dev.sigstore", payload=b"s")
    for referrer in (sbom, sig):
        reply = v2.push("team/app", referrer)
        assert reply.status == 201 and reply.headers["oci-subject"] == subject.digest

    listed = v2.request("GET", f"/v2/team/app/referrers/{subject.digest}")
    assert listed.headers["content-type"] == OCI_INDEX
    assert {m["digest"] for m in listed.json()["manifests"]} == {sbom.digest, sig.digest}
    filtered = v2.request(
        "GET", f"/v2/team/app/referrers/{subject.digest}?artifactType=application/spdx+json"
    )
    assert filtered.headers["oci-filters-applied"] == "artifactType"
    [only] = filtered.json()["manifests"]
    assert only["digest"] == sbom.digest and only["artifactType"] == "application/spdx+json"
    none = v2.request("GET", f"/v2/team/app/referrers/{digest(b'nothing')}")
    assert none.status == 200 and none.json()["manifests"] == []


# --- hosts and transport ----------------------------------------------------------------------


def test_host_names_another_region(aws, v2: V2) -> None:
    other = aws.client("ecr", region_name="eu-west-1")
    other.create_repository(repositoryName="team/app")
    elsewhere = V2(aws.port, v2.password, host=f"{ACCOUNT}.dkr.ecr.eu-west-1.localhost:{aws.port}")
    assert elsewhere.push("team/app", build_image(seed=13), tag="1.0").status == 201
    assert [
        d["imageTags"] for d in other.describe_images(repositoryName="team/app")["imageDetails"]
    ] == [["1.0"]]
    assert v2.request("GET", "/v2/team/app/tags/list").error_codes == ["NAME_UNKNOWN"]


def test_tls_client_hello_gets_a_plain_http_400(aws) -> None:
    with socket.create_connection(("127.0.0.1", aws.port), timeout=5) as connection:
        connection.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n")
        answer = connection.recv(4096)
    assert answer.startswith(b"HTTP/1.0 400 Bad Request\r\n")


def test_bad_requests_get_spec_errors_never_500(ecr, v2: V2) -> None:
    ecr.create_repository(repositoryName="team/app")
    location = v2.request("POST", "/v2/team/app/blobs/uploads/").headers["location"]
    cases = [
        ("PATCH", location, {"Content-Range": "garbage"}),
        ("PATCH", "/v2/team/app/blobs/uploads/not-a-uuid", {}),
        ("GET", "/v2/team/app/blobs/sha256:short", {}),
        ("GET", "/v2/team/app/referrers/nodigest", {}),
        ("PUT", "/v2/team/app/manifests/1.0", {"Content-Type": OCI_MANIFEST}),
        ("POST", "/v2/team/app/manifests/1.0", {}),
        ("GET", "/v2/_catalog", {}),
    ]
    for method, path, headers in cases:
        reply = v2.request(method, path, b"x", headers)
        assert 400 <= reply.status < 500, (method, path, reply)
        assert reply.json()["errors"][0]["code"]


def test_signed_aws_calls_under_v2_still_reach_their_service(aws) -> None:
    apis = aws.client("apigatewayv2", region_name=REGION)  # its API lives under /v2/apis
    created = apis.create_api(Name="steward", ProtocolType="HTTP")
    assert [api["ApiId"] for api in apis.get_apis()["Items"]] == [created["ApiId"]]
