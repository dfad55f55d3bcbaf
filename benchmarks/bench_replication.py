"""Replication benchmark of the control-API path (the fallback where `/v2` cannot be reached;
benchmarks/bench_copy.py measures the registry-protocol engine): copy a multi-layer image to an
empty destination, then copy it again.

    .venv/bin/python benchmarks/bench_replication.py [--sizes 128,512]

For each image size it prints bytes moved / minimum bytes (target 1.00), bytes moved by the second
copy (target 0), throughput, and the copying process's peak RSS growth over its baseline (target
at most 128 MiB, the same for every size). The embedded AWS endpoint runs in its own process and
the source image is pushed by another, so the RSS measured is the copy engine's alone. Layers are
generated as streams (never held whole in memory) from a seeded generator.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from chalicelib.ecr import registries
from chalicelib.ecr.gateway import Registry
from chalicelib.oci.manifests import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Manifest, digest_of
from chalicelib.policy.replication import ReplicationRule
from chalicelib.replication.copy import copy_image
from chalicelib.replication.jobs import jobs_for
from steward_tools.local.server import EmbeddedAWS

ACCOUNT, REGION, DESTINATION_REGION = "123456789012", "us-east-1", "eu-west-1"
MiB = 1024 * 1024
LAYERS = 8
CHUNK = MiB


class RandomStream:
    """`size` seeded pseudo-random bytes, read in pieces (a layer that never sits in memory)."""

    def __init__(self, seed: int, size: int) -> None:
        self.rng = random.Random(seed)
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return self.rng.randbytes(n)


def layer_digest(seed: int, size: int) -> str:
    stream, digest = RandomStream(seed, size), hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _environment(endpoint: str) -> None:
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
    )


# --- the three processes ------------------------------------------------------------------------


def serve() -> None:
    """The embedded AWS endpoint; prints its URL, runs until stdin closes."""

    with EmbeddedAWS(port=0) as aws:
        print(aws.endpoint_url, flush=True)
        sys.stdin.read()


def seed(endpoint: str, repository: str, total_mib: int) -> None:
    """Push an image of LAYERS uncompressed layers totalling `total_mib`, streamed."""
    _environment(endpoint)

    registry = Registry(region=REGION)
    registry.ensure_repository(repository)
    size = total_mib * MiB // LAYERS
    layers = []
    for n in range(LAYERS):
        layer_seed = total_mib * 100 + n
        digest = layer_digest(layer_seed, size)
        registry.upload_blob(repository, RandomStream(layer_seed, size), digest)  # type: ignore[arg-type]
        layers.append({"mediaType": OCI_LAYER, "digest": digest, "size": size})
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        }
    ).encode()
    config_digest = registry.upload_bytes(repository, config)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": layers,
        },
        indent=2,
    )
    manifest = Manifest(digest=digest_of(body.encode()), media_type=OCI_MANIFEST, body=body)
    registry.put_manifest(repository, manifest, "1.0.0")
    print(json.dumps({"digest": manifest.digest, "minimum": size * LAYERS + len(config)}))


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Samples this process's resident set every 5 ms while copying."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            self._stop.wait(0.005)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def copy(endpoint: str, repository: str, digest: str) -> None:
    """Copy the image to another region twice; report bytes, time and RSS growth."""
    _environment(endpoint)

    rule = ReplicationRule.model_validate(
        {"name": "bench", "repositories": ["*"], "destinations": [{"region": DESTINATION_REGION}]}
    )
    [job] = jobs_for(
        rule,
        trigger="bench",
        account=ACCOUNT,
        region=REGION,
        repository=repository,
        digest=digest,
        tags=["1.0.0"],
    )
    source = registries.registry(ACCOUNT, REGION)
    destination = registries.registry(ACCOUNT, DESTINATION_REGION)
    # Warm up: clients built, connections open, one tiny call each.
    source.describe_repository(repository)
    list(destination.iter_repositories())
    baseline = _rss()
    started = time.perf_counter()
    with PeakRss() as peak:
        first = copy_image(job, source=source, destination=destination, protocol="api")
    seconds = time.perf_counter() - started
    before = destination.calls.copy()
    second = copy_image(job, source=source, destination=destination, protocol="api")
    uploads = sum(
        (destination.calls - before)[op]
        for op in ("initiate_layer_upload", "upload_layer_part", "put_image")
    )
    print(
        json.dumps(
            {
                "moved": first.bytes_moved,
                "second_moved": second.bytes_moved,
                "second_upload_calls": uploads,
                "seconds": seconds,
                "baseline": baseline,
                "peak": peak.peak,
                "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        )
    )


# --- orchestration --------------------------------------------------------------------------------


def _child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="128,512", help="Image sizes in MiB.")
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, __file__, "serve"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        print(f"embedded AWS at {endpoint} (separate process); {LAYERS} layers per image\n")
        header = (
            f"{'image':>8} {'moved/min':>10} {'2nd run moved':>14} {'2nd run uploads':>16} "
            f"{'MB/s':>7} {'peak RSS growth':>16}"
        )
        print(header)
        for size in [int(s) for s in args.sizes.split(",")]:
            repository = f"bench/image-{size}"
            seeded = _child("seed", endpoint, repository, str(size))
            copied = _child("copy", endpoint, repository, seeded["digest"])
            growth = (copied["peak"] - copied["baseline"]) / MiB
            print(
                f"{size:>4} MiB {copied['moved'] / seeded['minimum']:>10.2f} "
                f"{copied['second_moved']:>14} {copied['second_upload_calls']:>16} "
                f"{copied['moved'] / copied['seconds'] / 1e6:>7.1f} {growth:>12.1f} MiB",
                flush=True,
            )
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(timeout=30)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("serve", "seed", "copy"):
        command, rest = sys.argv[1], sys.argv[2:]
        if command == "serve":
            serve()
        elif command == "seed":
            seed(rest[0], rest[1], int(rest[2]))
        else:
            copy(rest[0], rest[1], rest[2])
    else:
        main()
