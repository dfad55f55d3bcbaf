"""Registry figures: skopeo push and pull of one image against the embedded registry and against
the CNCF distribution registry (Debian's `docker-registry`), on loopback, in one run.

    .venv/bin/python benchmarks/bench_registry.py [--image-size 512] [--layers 8] [--rss-size 128]

- push and pull throughput (MiB/s) on both sides, and embedded / distribution (target >= 0.8);
- the embedded server's peak RSS (VmHWM) after pushing and pulling an image of `--rss-size` MiB
  and of `--image-size` MiB, each in a fresh server process: flat means blobs stream.

Layers are uncompressed tars of random bytes (nothing to compress, so skopeo's time is I/O).
Each server runs in its own process; skopeo runs with a throwaway policy and auth file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
REPOSITORY = "bench/image"
DISTRIBUTION = "/usr/bin/docker-registry"

EMBEDDED_SERVER = """
import base64, os, sys
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
from steward_tools.local.server import EmbeddedAWS
aws = EmbeddedAWS(port=0).start()
ecr = aws.client("ecr")
ecr.create_repository(repositoryName=sys.argv[1])
token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
print(aws.port, base64.b64decode(token).decode().split(":", 1)[1], flush=True)
sys.stdin.read()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MIB):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _store(layout: Path, data_path: Path) -> tuple[str, int]:
    digest = _sha256(data_path)
    target = layout / "blobs/sha256" / digest.split(":")[1]
    data_path.replace(target)
    return digest, target.stat().st_size


def _store_bytes(layout: Path, data: bytes) -> tuple[str, int]:
    scratch = layout / "scratch"
    scratch.write_bytes(data)
    return _store(layout, scratch)


def write_layout(layout: Path, size_mib: int, layers: int) -> None:
    """An OCI layout with `layers` uncompressed tar layers totalling about `size_mib` MiB."""
    (layout / "blobs/sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    descriptors = []
    per_layer = size_mib * MIB // layers
    for n in range(layers):
        payload = layout / f"payload-{n}"
        with payload.open("wb") as handle:
            for _ in range(per_layer // MIB):
                handle.write(os.urandom(MIB))
        tar_path = layout / f"layer-{n}.tar"
        with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as archive:
            info = archive.gettarinfo(str(payload), arcname=f"data/{n}.bin")
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with payload.open("rb") as handle:
                archive.addfile(info, handle)
        payload.unlink()
        digest, size = _store(layout, tar_path)
        descriptors.append(
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size}
        )
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descriptors]},
        }
    ).encode()
    config_digest, config_size = _store_bytes(layout, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": descriptors,
        }
    ).encode()
    manifest_digest, manifest_size = _store_bytes(layout, manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": "1"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))


class Skopeo:
    def __init__(self, scratch: Path) -> None:
        self.policy = scratch / "policy.json"
        self.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        self.env = {**os.environ, "REGISTRY_AUTH_FILE": str(scratch / "auth.json")}

    def copy(self, source: str, destination: str, creds: str | None, push: bool) -> float:
        side = "dest" if push else "src"
        command = ["skopeo", "--policy", str(self.policy), "copy", f"--{side}-tls-verify=false"]
        if creds:
            command += [f"--{side}-creds", creds]
        started = time.perf_counter()
        subprocess.run(
            [*command, source, destination], check=True, env=self.env, capture_output=True
        )
        return time.perf_counter() - started


def push_pull(
    skopeo: Skopeo, layout: Path, host: str, creds: str | None, scratch: Path
) -> tuple[float, float]:
    target = f"docker://{host}/{REPOSITORY}:1"
    push = skopeo.copy(f"oci:{layout}:1", target, creds, push=True)
    out = scratch / f"pulled-{time.monotonic_ns()}"
    pull = skopeo.copy(target, f"oci:{out}:1", creds, push=False)
    shutil.rmtree(out, ignore_errors=True)
    return push, pull


def embedded_run(skopeo: Skopeo, layout: Path, scratch: Path) -> tuple[float, float, int]:
    """Push and pull against a fresh embedded server; its peak RSS in KiB afterwards."""
    server = subprocess.Popen(
        [sys.executable, "-c", EMBEDDED_SERVER, REPOSITORY],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port, password = server.stdout.readline().split()
        push, pull = push_pull(skopeo, layout, f"127.0.0.1:{port}", f"AWS:{password}", scratch)
        status = Path(f"/proc/{server.pid}/status").read_text()
        peak_line = next(line for line in status.splitlines() if line.startswith("VmHWM"))
        peak = int(peak_line.split()[1])
        return push, pull, peak
    finally:
        server.terminate()
        server.wait(timeout=30)


def distribution_run(skopeo: Skopeo, layout: Path, scratch: Path) -> tuple[float, float]:
    port = free_port()
    storage = scratch / "distribution"
    config = scratch / "distribution.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    server = subprocess.Popen(
        [DISTRIBUTION, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        return push_pull(skopeo, layout, f"127.0.0.1:{port}", None, scratch)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=512, help="MiB (default 512)")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--rss-size", type=int, default=128, help="MiB, the small RSS run")
    args = parser.parse_args()
    for tool in ("skopeo", DISTRIBUTION):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")

    with tempfile.TemporaryDirectory(prefix="bench-registry-") as temporary:
        scratch = Path(temporary)
        skopeo = Skopeo(scratch)
        big, small = scratch / "big", scratch / "small"
        write_layout(big, args.image_size, args.layers)
        write_layout(small, args.rss_size, args.layers)
        size_mib = sum(p.stat().st_size for p in (big / "blobs/sha256").iterdir()) / MIB

        d_push, d_pull = distribution_run(skopeo, big, scratch)
        e_push, e_pull, e_peak = embedded_run(skopeo, big, scratch)
        _, _, small_peak = embedded_run(skopeo, small, scratch)

    print(f"image: {size_mib:.0f} MiB in {args.layers} uncompressed layers; skopeo copy, loopback")
    print(f"{'':14}{'push MiB/s':>12}{'pull MiB/s':>12}")
    print(f"{'distribution':14}{size_mib / d_push:12.1f}{size_mib / d_pull:12.1f}")
    print(f"{'embedded':14}{size_mib / e_push:12.1f}{size_mib / e_pull:12.1f}")
    print(f"{'ratio':14}{d_push / e_push:12.2f}{d_pull / e_pull:12.2f}   (target >= 0.80)")
    print(
        f"embedded peak RSS: {small_peak / 1024:.0f} MiB after {args.rss_size} MiB, "
        f"{e_peak / 1024:.0f} MiB after {args.image_size} MiB"
    )


if __name__ == "__main__":
    main()
