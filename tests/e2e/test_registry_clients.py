"""Real clients against the embedded registry, when installed: skopeo copies a multi-arch image
in and out digest for digest, inspects, lists tags and deletes; a pull-scoped password cannot
push; umoci unpacks a sample image. Each test skips, saying why, when its tool is missing."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from steward_tools.samples import build_image, build_index, write_oci_layout
from tests.conftest import REGION
from tests.integration.test_registry_v2 import scoped_v2
from tests.v2client import V2, password_of


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


@pytest.fixture(scope="module")
def multiarch(tmp_path_factory: pytest.TempPathFactory):
    index = build_index(
        [
            build_image(layer_sizes=[4096, 1024], seed=21),
            build_image(layer_sizes=[2048], seed=22, architecture="arm64", gzip_layers=False),
        ]
    )
    layout = write_oci_layout(tmp_path_factory.mktemp("layout") / "image", index, ref_name="1.0")
    return index, layout


def skopeo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    return subprocess.run(
        [need("skopeo"), "--policy", str(policy), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"REGISTRY_AUTH_FILE": str(tmp_path / "auth.json"), "HOME": str(tmp_path)},
    )


def test_skopeo_copies_a_multiarch_image_in_and_out(aws, multiarch, tmp_path: Path) -> None:
    need("skopeo")
    index, layout = multiarch
    ecr = aws.client("ecr", region_name=REGION)
    ecr.create_repository(repositoryName="team/app")
    creds = f"AWS:{password_of(ecr)}"
    target = f"docker://{aws.registry_host}/team/app"

    pushed = skopeo(
        tmp_path, "copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
        "--dest-creds", creds, f"oci:{layout}:1.0", f"{target}:1.0",
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    digests = {
        d["imageDigest"] for d in ecr.describe_images(repositoryName="team/app")["imageDetails"]
    }
    assert digests == {index.digest, *(image.digest for image in index.images)}

    raw = skopeo(
        tmp_path, "inspect", "--raw", "--tls-verify=false", "--creds", creds, f"{target}:1.0"
    )
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout == index.manifest.body  # the exact bytes
    inspected = skopeo(
        tmp_path, "inspect", "--tls-verify=false", "--creds", creds,
        "--override-arch", "arm64", f"{target}:1.0",
    )  # fmt: skip
    assert json.loads(inspected.stdout)["Architecture"] == "arm64"
    tags = skopeo(tmp_path, "list-tags", "--tls-verify=false", "--creds", creds, target)
    assert json.loads(tags.stdout)["Tags"] == ["1.0"]

    out = tmp_path / "out"
    pulled = skopeo(
        tmp_path, "copy", "--all", "--preserve-digests", "--src-tls-verify=false",
        "--src-creds", creds, f"{target}:1.0", f"oci:{out}:1.0",
    )  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    [entry] = json.loads((out / "index.json").read_text())["manifests"]
    assert entry["digest"] == index.digest
    for image in index.images:
        for layer in image.layer_digests:
            assert (out / "blobs/sha256" / layer.split(":")[1]).exists()

    deleted = skopeo(
        tmp_path, "delete", "--tls-verify=false", "--creds", creds, f"{target}@{index.digest}"
    )
    assert deleted.returncode == 0, deleted.stderr
    remaining = {
        d["imageDigest"] for d in ecr.describe_images(repositoryName="team/app")["imageDetails"]
    }
    assert remaining == {image.digest for image in index.images}


def test_skopeo_cannot_push_with_a_pull_scoped_password(aws, multiarch, tmp_path: Path) -> None:
    need("skopeo")
    _, layout = multiarch
    aws.client("ecr", region_name=REGION).create_repository(repositoryName="team/app")
    puller = scoped_v2(aws, "pull", ("team/app",))
    pushed = skopeo(
        tmp_path, "copy", "--all", "--dest-tls-verify=false", "--dest-creds",
        f"AWS:{puller.password}", f"oci:{layout}:1.0", f"docker://{aws.registry_host}/team/app:1.0",
    )  # fmt: skip
    assert pushed.returncode != 0
    assert "denied" in pushed.stderr.lower()
    assert puller.password and puller.password not in pushed.stderr


def test_umoci_unpacks_a_sample_image(tmp_path: Path) -> None:
    umoci = need("umoci")
    image = build_image(layer_sizes=[1000, 3000], seed=23)
    plain = build_image(layer_sizes=[500], seed=24, gzip_layers=False, base=image)
    layout = write_oci_layout(tmp_path / "layout", {"gz": image, "mixed": plain})
    for ref in ("gz", "mixed"):
        bundle = tmp_path / f"bundle-{ref}"
        result = subprocess.run(
            [umoci, "unpack", "--rootless", "--image", f"{layout}:{ref}", str(bundle)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        files = sorted((bundle / "rootfs" / "steward").iterdir())
        assert len(files) == (2 if ref == "gz" else 3)
        assert sorted(f.stat().st_size for f in files) == sorted(
            [1000, 3000] + ([500] if ref == "mixed" else [])
        )


def test_podman_pulls_and_pushes(aws, tmp_path: Path) -> None:
    podman = need("podman")
    ecr = aws.client("ecr", region_name=REGION)
    for name in ("team/app", "team/copy"):
        ecr.create_repository(repositoryName=name)
    image = build_image(layer_sizes=[2048], seed=25)
    v2 = V2(aws.port, password_of(ecr))
    assert v2.push("team/app", image, tag="1.0").status == 201
    # Its own storage, so the test touches nothing of the machine's containers (podman wants
    # a run root under 50 characters: a short temporary directory).
    runroot = Path(tempfile.mkdtemp(prefix="pm-", dir="/tmp"))
    base = [podman, "--root", str(tmp_path / "root"), "--runroot", str(runroot)]
    base += ["--storage-driver", "vfs"]
    creds = ["--tls-verify=false", "--creds", f"AWS:{v2.password}"]
    source, target = f"{aws.registry_host}/team/app:1.0", f"{aws.registry_host}/team/copy:2.0"
    try:
        for command in (["pull", *creds, source], ["push", *creds, source, target]):
            result = subprocess.run(
                [*base, *command], capture_output=True, text=True, timeout=120, check=False
            )
            assert result.returncode == 0, result.stderr
    finally:
        shutil.rmtree(runroot, ignore_errors=True)
    [copied] = ecr.describe_images(repositoryName="team/copy")["imageDetails"]
    assert copied["imageTags"] == ["2.0"]
