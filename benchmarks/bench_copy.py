"""Copy-engine benchmark, side by side with `skopeo copy --all` on the same image and registries.

    .venv/bin/python benchmarks/bench_copy.py [--sizes 128,512]

For each image size (8 uncompressed layers) and each route, ECR to ECR (the embedded ECR's
`/v2`, one repository to another, blob mounting off as by default) and registry to ECR (the CNCF
distribution registry into the embedded ECR), it prints the copy time of ecr-steward's engine
(a fresh process running one copy job over the registry protocol) and of skopeo, their ratio
(target at most 1.00), bytes moved / minimum (target 1.00), bytes a second run moves (target 0)
and the peak RSS of each copying process (wait4's ru_maxrss; target at most 64 MiB for ours).
The embedded ECR and the distribution registry run in their own processes.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_registry import Skopeo, write_layout
from tests.distribution import available, distribution

ACCOUNT, REGION = "123456789012", "us-east-1"
MiB = 1024 * 1024
LAYERS = 8


def _environment(endpoint: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }


def serve() -> None:
    """The embedded AWS endpoint in its own process; prints its URL, runs until stdin closes."""
    import boto3  # noqa: PLC0415 - server process only

    from steward_tools.local.server import EmbeddedAWS, bootstrap  # noqa: PLC0415

    with EmbeddedAWS(port=0) as aws:
        # The tables `make run` makes, the pacing table among them: copies claim ECR's quotas.
        os.environ.update(_environment(aws.endpoint_url))
        bootstrap(boto3.session.Session(), account=ACCOUNT, region=REGION)
        print(aws.endpoint_url, flush=True)
        sys.stdin.read()


def worker(route: str, source: str, repository: str, digest: str, destination: str) -> None:
    """One copy job in this process, as `on_copy_job` runs it."""
    from chalicelib.ecr.gateway import Registry  # noqa: PLC0415 - only what a copy imports
    from chalicelib.replication.copy import copy_from_upstream, copy_image  # noqa: PLC0415
    from chalicelib.replication.jobs import CopyJob, Target, Upstream  # noqa: PLC0415

    job = CopyJob(
        rule="bench",
        trigger="bench",
        source_account=ACCOUNT,
        source_region=REGION,
        source_repository=repository,
        digest=digest,
        tags=["1"],
        destination=Target(account=ACCOUNT, region=REGION, repository=destination),
        upstream=Upstream(url=source) if route == "upstream" else None,
    )
    ecr = Registry(region=REGION)

    def run() -> Any:
        if job.upstream is not None:
            from chalicelib.replication.copy import upstream_client  # noqa: PLC0415

            return copy_from_upstream(job, source=upstream_client(job.upstream), destination=ecr)
        return copy_image(job, source=ecr, destination=ecr, protocol="v2")

    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    print(json.dumps({"moved": result.bytes_moved, "seconds": seconds}))


def _wait(command: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Run a process to its end: (wall seconds, peak RSS in bytes, stdout)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed: {err.decode()[-2000:]}")
    return seconds, usage.ru_maxrss * 1024, out.decode()


def _image(layout: Path) -> tuple[str, int]:
    """The layout's manifest digest and the bytes of its blobs (the minimum a copy moves)."""
    entry = json.loads((layout / "index.json").read_text())["manifests"][0]
    manifest = json.loads((layout / "blobs" / entry["digest"].replace(":", "/")).read_bytes())
    minimum = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    return entry["digest"], minimum


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="128,512", help="image sizes in MiB")
    args = parser.parse_args()
    if available() is not None or shutil.which("skopeo") is None:
        print(f"skipped: needs skopeo and docker-registry ({available()})")
        return
    scratch = Path(tempfile.mkdtemp(prefix="bench-copy-"))
    server = subprocess.Popen(
        [sys.executable, __file__, "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        env = _environment(endpoint)
        os.environ.update(env)
        import boto3  # noqa: PLC0415 - the parent's set-up only

        ecr = boto3.client("ecr", region_name=REGION, endpoint_url=endpoint)
        token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        creds = base64.b64decode(token).decode()
        host = endpoint.removeprefix("http://")
        skopeo = Skopeo(scratch)
        with distribution(scratch / "distribution") as upstream:
            upstream_host = upstream.removeprefix("http://")
            print(f"embedded ECR at {host}, distribution at {upstream_host}; {LAYERS} layers\n")
            print(
                f"{'route':<16} {'image':>8} {'ours s':>7} {'skopeo s':>8} {'ratio':>6} "
                f"{'moved/min':>9} {'2nd run':>8} {'our RSS':>8} {'skopeo RSS':>10}"
            )
            for size in [int(s) for s in args.sizes.split(",")]:
                layout = scratch / f"layout-{size}"
                write_layout(layout, size, LAYERS)
                digest, minimum = _image(layout)
                for name in (
                    f"bench/src-{size}",
                    f"bench/ours-{size}",
                    f"bench/skopeo-{size}",
                    f"bench/up-ours-{size}",
                    f"bench/up-skopeo-{size}",
                ):
                    ecr.create_repository(repositoryName=name)
                for target, push_creds in (
                    (f"{host}/bench/src-{size}:1", ["--dest-creds", creds]),
                    (f"{upstream_host}/bench/src-{size}:1", []),
                ):
                    subprocess.run(
                        [
                            "skopeo",
                            "--policy",
                            str(skopeo.policy),
                            "copy",
                            "--preserve-digests",
                            "--dest-tls-verify=false",
                            *push_creds,
                            f"oci:{layout}:1",
                            f"docker://{target}",
                        ],
                        check=True,
                        env=skopeo.env,
                        capture_output=True,
                    )
                shutil.rmtree(layout)
                routes = [
                    (
                        "ECR -> ECR",
                        "ecr",
                        f"docker://{host}/bench/src-{size}:1",
                        "",
                        ["--src-creds", creds],
                    ),
                    (
                        "registry -> ECR",
                        "upstream",
                        f"docker://{upstream_host}/bench/src-{size}:1",
                        "up-",
                        [],
                    ),
                ]
                for label, route, skopeo_source, prefix, source_creds in routes:
                    command = [
                        sys.executable,
                        __file__,
                        "worker",
                        route,
                        upstream,
                        f"bench/src-{size}",
                        digest,
                        f"bench/{prefix}ours-{size}",
                    ]
                    ours_s, ours_rss, out = _wait(command, env)  # the time includes start-up
                    result = json.loads(out.strip().splitlines()[-1])
                    again = json.loads(_wait(command, env)[2].strip().splitlines()[-1])
                    skopeo_s, skopeo_rss, _ = _wait(
                        [
                            "skopeo",
                            "--policy",
                            str(skopeo.policy),
                            "copy",
                            "--all",
                            "--src-tls-verify=false",
                            "--dest-tls-verify=false",
                            *source_creds,
                            "--dest-creds",
                            creds,
                            skopeo_source,
                            f"docker://{host}/bench/{prefix}skopeo-{size}:1",
                        ],
                        skopeo.env,
                    )
                    print(
                        f"{label:<16} {size:>4} MiB {ours_s:>7.2f} {skopeo_s:>8.2f} "
                        f"{ours_s / skopeo_s:>6.2f} {result['moved'] / minimum:>9.2f} "
                        f"{again['moved']:>8} {ours_rss / MiB:>4.0f} MiB "
                        f"{skopeo_rss / MiB:>6.0f} MiB",
                        flush=True,
                    )
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve()
    elif len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker(*sys.argv[2:7])
    else:
        main()
