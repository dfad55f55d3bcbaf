"""Replication benchmark of the control-API path (the fallback where `/v2` cannot be reached;
benchmarks/bench_copy.py measures the registry-protocol engine): copy a multi-layer image to an
empty destination, then copy it again.

    .venv/bin/python benchmarks/bench_replication.py [--sizes 128,512]
    .venv/bin/python benchmarks/bench_replication.py --per-job [--images 100,2500]

For each image size it prints bytes moved / minimum bytes (target 1.00), bytes moved by the second
copy (target 0), throughput, and the copying process's peak RSS growth over its baseline (target
at most 128 MiB, the same for every size). The embedded AWS endpoint runs in its own process and
the source image is pushed by another, so the RSS measured is the copy engine's alone. Layers are
generated as streams (never held whole in memory) from a seeded generator.

`--per-job` measures what one copy job costs to read in repositories of different sizes: CPU and
wall time of the copying process per job (a dry run: source and destination read and the plan
made, nothing put, so PutImage's pacing does not hide the reading), requests to the source per
job over both transports, and what listing the repository once costs (what every job paid when
the source was read by listing it).
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
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from chalicelib.ecr import registries
from chalicelib.ecr.distribution import registry_client
from chalicelib.ecr.gateway import Registry
from chalicelib.oci.manifests import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Manifest, digest_of
from chalicelib.oci.referrers import cosign_tag
from chalicelib.policy.replication import ReplicationRule
from chalicelib.replication.copy import copy_image
from chalicelib.replication.jobs import CopyJob, jobs_for
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


def bench_job(repository: str, digest: str) -> CopyJob:
    """The job copying `digest` (tagged 1.0.0) to the same repository in another region."""
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
    return job


def copy(endpoint: str, repository: str, digest: str) -> None:
    """Copy the image to another region twice; report bytes, time and RSS growth."""
    _environment(endpoint)
    job = bench_job(repository, digest)
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


def seed_many(endpoint: str, repository: str, count: int) -> None:
    """Push `count` small signed images: one shared layer and config, a manifest each (told
    apart by an annotation), each with a cosign signature: the repository a backfill reads."""
    _environment(endpoint)
    registry = Registry(region=REGION)
    registry.ensure_repository(repository)
    layer = b"layer of the per-job benchmark"
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    config_digest = registry.upload_bytes(repository, config)
    layer_digest = registry.upload_bytes(repository, layer)
    descriptors: dict[str, Any] = {
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
    }
    digests = []
    for n in range(count):
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                **descriptors,
                "annotations": {"n": str(n)},
            }
        )
        manifest = Manifest(digest=digest_of(body.encode()), media_type=OCI_MANIFEST, body=body)
        registry.put_manifest(repository, manifest, f"1.0.{n}")
        signature = body.replace('"n"', '"signs"')
        signed = Manifest(
            digest=digest_of(signature.encode()), media_type=OCI_MANIFEST, body=signature
        )
        registry.put_manifest(repository, signed, cosign_tag(manifest.digest))
        digests.append(manifest.digest)
    print(json.dumps({"digests": digests}))


def per_job(endpoint: str, repository: str, digests_file: str) -> None:
    """Plan (dry run) a copy job for each digest over each transport; CPU, wall time and source
    requests per job, and the cost of one listing of the repository."""
    _environment(endpoint)
    first, *jobs = [bench_job(repository, d) for d in json.loads(Path(digests_file).read_text())]
    out: dict[str, Any] = {}
    for protocol in ("api", "v2"):
        source = Registry(region=REGION)
        destination = Registry(region=DESTINATION_REGION)
        reads = registry_client(source)  # logged in before counting
        # Warm up: clients, connections.
        copy_image(
            first,
            source=source,
            destination=destination,
            dry_run=True,
            protocol=protocol,
        )
        calls, requests = sum(source.calls.values()), reads.requests
        cpu, wall = time.process_time(), time.perf_counter()
        for job in jobs:
            copy_image(job, source=source, destination=destination, dry_run=True, protocol=protocol)
        out[protocol] = {
            "cpu_ms": (time.process_time() - cpu) * 1000 / len(jobs),
            "wall_ms": (time.perf_counter() - wall) * 1000 / len(jobs),
            "source_calls": (sum(source.calls.values()) - calls) / len(jobs),
            "source_requests": (reads.requests - requests) / len(jobs),
        }
    source = Registry(region=REGION)
    list(source.iter_images(repository))  # warm up
    cpu, wall = time.process_time(), time.perf_counter()
    list(source.iter_images(repository))
    out["listing"] = {
        "cpu_ms": (time.process_time() - cpu) * 1000,
        "wall_ms": (time.perf_counter() - wall) * 1000,
        "calls": source.calls["describe_images"] // 2,
    }
    print(json.dumps(out))


# --- orchestration --------------------------------------------------------------------------------


def _child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# Measured before copies read by digest (issue 15): CPU per job at 2,500 images.
LISTING_READER_CPU_MS = {2500: 86}
JOBS_PER_SIZE = 21  # the first warms up


def _server() -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, __file__, "serve"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


def _stop(server: subprocess.Popen[str]) -> None:
    if server.stdin:
        server.stdin.close()
    server.wait(timeout=30)


def main_per_job(sizes: list[int]) -> None:
    server, endpoint = _server()
    try:
        print(
            f"embedded AWS at {endpoint} (separate process); repositories of signed images; "
            f"{JOBS_PER_SIZE - 1} dry-run copy jobs each, per transport\n"
        )
        print(
            f"{'images':>7} {'transport':>9} {'CPU ms/job':>11} {'wall ms/job':>12} "
            f"{'source calls/job':>17} {'one listing: CPU ms, calls':>27} "
            f"{'before: CPU ms/job':>19}"
        )
        for size in sizes:
            repository = f"bench/per-job-{size}"
            digests = _child("seed-many", endpoint, repository, str(size))["digests"]
            step = max(1, len(digests) // JOBS_PER_SIZE)
            with tempfile.NamedTemporaryFile("w", suffix=".json") as chosen:
                chosen.write(json.dumps(digests[::step][:JOBS_PER_SIZE]))
                chosen.flush()
                cost = _child("per-job", endpoint, repository, chosen.name)
            listing = cost["listing"]
            before = LISTING_READER_CPU_MS.get(size)
            for transport, label in (("api", "control"), ("v2", "/v2")):
                row = cost[transport]
                calls = row["source_calls"] if transport == "api" else row["source_requests"]
                print(
                    f"{size:>7,} {label:>9} {row['cpu_ms']:>11.1f} {row['wall_ms']:>12.1f} "
                    f"{calls:>17.1f} {listing['cpu_ms']:>18.1f}, {listing['calls']:>6} "
                    f"{before or '-':>19}",
                    flush=True,
                )
        print(
            "\n(source calls/job: ECR API calls over the control API, HTTP requests over /v2. "
            "One listing: describe-images of the\n whole repository, images and signatures, "
            "which the reader that listed the repository paid on every job; 'before' is\n that "
            "reader's CPU per job measured at 2,500 images for issue 15)"
        )
    finally:
        _stop(server)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="128,512", help="Image sizes in MiB.")
    parser.add_argument("--per-job", action="store_true", help="Read cost per copy job.")
    parser.add_argument("--images", default="100,2500", help="Repository sizes for --per-job.")
    args = parser.parse_args()
    if args.per_job:
        main_per_job([int(n) for n in args.images.split(",")])
        return
    server, endpoint = _server()
    try:
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
        _stop(server)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("serve", "seed", "copy", "seed-many", "per-job"):
        command, rest = sys.argv[1], sys.argv[2:]
        if command == "serve":
            serve()
        elif command == "seed":
            seed(rest[0], rest[1], int(rest[2]))
        elif command == "seed-many":
            seed_many(rest[0], rest[1], int(rest[2]))
        elif command == "per-job":
            per_job(rest[0], rest[1], rest[2])
        else:
            copy(rest[0], rest[1], rest[2])
    else:
        main()
