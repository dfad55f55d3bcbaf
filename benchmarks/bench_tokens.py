"""Token API figures, against the embedded backend and Chalice's local server on loopback.

    .venv/bin/python benchmarks/bench_tokens.py [--requests 1000] [--threads 8]

- token requests per second served from the cache through the local HTTP API (one caller, one
  scope), sequential and from several threads, against `GET /health` on the same server in the
  same run (the ratio is what the API's own work costs on top of the HTTP server's; the
  benchmark's policy lifts the per-caller rate limit, which would otherwise answer 429);
- get-authorization-token (and assume-role) calls per 1,000 requests (target: 1 per scope);
- cold import of the API function: `import app`, and what the first /v1/token request imports
  on top, from the checkout (bytecode cached) and, when `make package` has run, from the
  deployment zip with and without its precompiled bytecode (Lambda cannot write __pycache__).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import hashlib

import boto3

from chalicelib.kernel.settings import get_settings
from chalicelib.tokens import vend
from steward_tools.local.runner import configure_environment
from steward_tools.local.server import EmbeddedAWS, bootstrap
from tests.localapi import local_api_url
from tests.oidc import Issuer, policy_yaml

FIRST_REQUEST = (
    "import app; import chalicelib.tokens.http, chalicelib.policy.document, chalicelib.tokens.sts, "
    "chalicelib.ecr.gateway, chalicelib.kernel.observability, jwt, boto3; "
    "chalicelib.kernel.observability.logger(); chalicelib.kernel.observability.metrics()"
)


def serve_and_measure(requests: int, threads: int) -> dict[str, float]:

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    with tempfile.TemporaryDirectory() as scratch, EmbeddedAWS(port=0) as aws:
        configure_environment(aws.endpoint_url)
        bootstrap(boto3.session.Session(), account="123456789012", region="us-east-1")
        issuer = Issuer()
        policy = Path(scratch) / "policy.yaml"
        key_hash = hashlib.sha256(b"bench").hexdigest()
        unlimited = (
            "{per_caller_per_second: 1000000, per_caller_burst: 1000000,"
            " global_per_second: 1000000, global_burst: 1000000}"
        )
        policy.write_text(
            policy_yaml(
                issuer.write_jwks(Path(scratch) / "jwks.json"),
                static_sha256=key_hash,
                rate_limits=unlimited,
            )
        )
        os.environ["STEWARD_POLICY"] = str(policy)
        get_settings.cache_clear()
        bearer = issuer.github("acme/app")
        quiet = open(os.devnull, "w")  # noqa: SIM115 - the logs of 2,000 requests
        url = local_api_url()
        with redirect_stdout(quiet), redirect_stderr(quiet):
            target = f"{url}/v1/token?registry=123456789012&repository=team-a/web&access=pull"
            headers = {"Authorization": f"Bearer {bearer}"}

            def one() -> None:
                with urllib.request.urlopen(urllib.request.Request(target, headers=headers)) as r:
                    json.load(r)

            health = f"{url}/health"

            def one_health() -> None:
                with urllib.request.urlopen(health) as r:
                    json.load(r)

            one()  # the cache miss: assume-role and get-authorization-token
            one_health()
            # Alternating rounds, so that the machine's load weighs on both alike.
            token_seconds = health_seconds = 0.0
            rounds = 50  # short rounds: a burst of load from elsewhere hits both alike
            for _ in range(rounds):
                started = time.perf_counter()
                for _ in range(requests // rounds):
                    one()
                token_seconds += time.perf_counter() - started
                started = time.perf_counter()
                for _ in range(requests // rounds):
                    one_health()
                health_seconds += time.perf_counter() - started
            measured = requests // rounds * rounds
            sequential = measured / token_seconds
            health_rps = measured / health_seconds

            per_thread = requests // threads

            def worker() -> None:
                for _ in range(per_thread):
                    one()

            pool = [threading.Thread(target=worker) for _ in range(threads)]
            started = time.perf_counter()
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
            concurrent = per_thread * threads / (time.perf_counter() - started)
            total = 1 + measured + per_thread * threads
            calls = sum(
                (v.calls for v in vend._VENDORS.values()),
                start=__import__("collections").Counter(),
            )
    return {
        "health_rps": health_rps,
        "sequential_rps": sequential,
        "concurrent_rps": concurrent,
        "token_calls_per_1000": calls["get_authorization_token"] * 1000 / total,
        "assume_role_per_1000": calls["assume_role"] * 1000 / total,
        "requests": total,
    }


def cold_import(code: str, cwd: Path, runs: int, env: dict[str, str] | None = None) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=cwd, check=True, env=env)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def packaged_imports(runs: int) -> dict[str, float] | None:
    """The first request's imports from the extracted zip, with and without its bytecode,
    alternating runs so that machine load affects both alike."""
    zip_path = ROOT / "build" / "dev" / "deployment.zip"
    if not zip_path.exists():
        return None
    with tempfile.TemporaryDirectory() as scratch:
        trees = {
            "packaged, precompiled": Path(scratch) / "pyc",
            "packaged, no bytecode": Path(scratch) / "src",
        }
        for tree in trees.values():
            with zipfile.ZipFile(zip_path) as archive:
                archive.extractall(tree)
        for pyc in trees["packaged, no bytecode"].rglob("*.pyc"):
            pyc.unlink()
        runtime = _lambda_runtime_packages(Path(scratch))
        code = "import sys; sys.path = [p for p in sys.path if 'site-packages' not in p]; "
        timings: dict[str, list[float]] = {label: [] for label in trees}
        for attempt in range(runs + 1):
            for label, tree in trees.items():
                # Lambda's runtime: the package first on the path, no bytecode written.
                env = {
                    "PATH": os.environ["PATH"],
                    "PYTHONDONTWRITEBYTECODE": "1",
                    "PYTHONPATH": str(tree) + os.pathsep + runtime,
                    "AWS_DEFAULT_REGION": "us-east-1",
                }
                elapsed = cold_import(code + FIRST_REQUEST, tree, 1, env)
                if attempt:  # the first round only warms the page cache
                    timings[label].append(elapsed)
    return {label: statistics.median(values) for label, values in timings.items()}


def _lambda_runtime_packages(scratch: Path) -> str:
    """boto3 and its dependencies, which the Lambda runtime provides outside the zip."""

    site = Path(boto3.__file__).parent.parent
    runtime = scratch / "runtime"
    runtime.mkdir(exist_ok=True)
    for name in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py"):
        if (site / name).exists() and not (runtime / name).exists():
            (runtime / name).symlink_to(site / name)
    return str(runtime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()

    served = serve_and_measure(args.requests, args.threads)
    ratio = served["sequential_rps"] / served["health_rps"]
    rows = [
        ("GET /health, sequential, same server", f"{served['health_rps']:.0f} /s"),
        ("token requests from cache, sequential", f"{served['sequential_rps']:.0f} /s"),
        ("/v1/token from cache against /health", f"{ratio:.2f}x (target at least 0.9x)"),
        (
            f"token requests from cache, {args.threads} threads",
            f"{served['concurrent_rps']:.0f} /s",
        ),
        (
            "get-authorization-token calls per 1,000 requests",
            f"{served['token_calls_per_1000']:.2f} (assume-role "
            f"{served['assume_role_per_1000']:.2f}; {served['requests']} requests, 1 scope)",
        ),
        ("cold import, `import app`", f"{cold_import('import app', ROOT, args.runs):.1f} ms"),
        (
            "cold import, app + first /v1/token request",
            f"{cold_import(FIRST_REQUEST, ROOT, args.runs):.1f} ms",
        ),
    ]
    packaged = packaged_imports(args.runs)
    if packaged is None:
        rows.append(("packaged zip", "run `make package` first"))
    else:
        rows += [(f"cold import, {label}", f"{value:.1f} ms") for label, value in packaged.items()]
    for label, value in rows:
        print(f"{label:52s} {value}")


if __name__ == "__main__":
    main()
