"""`steward retention plan` and `steward retention diff` against the embedded ECR."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from chalicelib.ecr.gateway import Registry
from steward_tools.cli import main
from steward_tools.samples import build_image
from tests.imagefactory import push_built

REPO = "team/app"
KEEP_TWO = """
retention:
  max_deletion_share: 1
  rules:
    - {kind: keep_newest, repositories: ["team/*"], tags: "v*", count: 2}
"""
KEEP_ONE = KEEP_TWO.replace("count: 2", "count: 1")


def test_plan_and_diff(registry: Registry, tmp_path: Any) -> None:
    registry.create_repository(REPO)
    digests = [push_built(registry, build_image([64], seed=n), REPO, f"v{n}") for n in range(3)]
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(KEEP_TWO)
    new.write_text(KEEP_ONE)
    runner = CliRunner()

    text = runner.invoke(main, ["retention", "plan", "-r", REPO, "--policy", str(old)])
    assert text.exit_code == 0, text.output
    assert "team/app: 3 images, 1 to delete (1 this run), 2 kept" in text.output
    assert "beyond the newest 2 v* (#3)" in text.output

    as_json = runner.invoke(main, ["retention", "plan", "-r", REPO, "--policy", str(old), "--json"])
    plan = json.loads(as_json.output)
    assert {d["digest"]: d["action"] for d in plan["decisions"]} == {
        digests[0]: "delete",
        digests[1]: "keep",
        digests[2]: "keep",
    }

    diff = runner.invoke(main, ["retention", "diff", str(old), str(new), "-r", REPO])
    assert diff.exit_code == 0, diff.output
    assert diff.output.startswith(f"+ {digests[1][:19]}…  v1  delete: ")
    assert "team/app: 1 more deleted, 0 more kept" in diff.output
    diff_json = runner.invoke(main, ["retention", "diff", str(old), str(new), "-r", REPO, "--json"])
    [change] = json.loads(diff_json.stdout)
    assert change["digest"] == digests[1] and change["after"]["action"] == "delete"
    # Planning deleted nothing.
    assert len(list(registry.iter_images(REPO))) == 3
