"""The house rules, checked: no import cycles, the layers import-linter keeps, every reaction and
sweep task loadable by reference, and no packaged module that imports the operator's tools."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from chalicelib.events.intake import REACTIONS
from chalicelib.sweep.jobs import REPOSITORY_TASKS
from tests.paths import ROOT


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start) & modules)))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    imported = graph.find_modules_directly_imported_by(child) & modules
                    work.append((child, iter(sorted(imported))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


@pytest.mark.parametrize("package", ["chalicelib", "steward_tools"])
def test_no_import_cycle(package: str) -> None:
    graph = grimp.build_graph(package, cache_dir=None)
    modules = {m for m in graph.modules if m.startswith(package)}
    # A package's __init__ importing its own modules is how a package presents itself.
    modules.discard(package)
    assert _cycles(graph, modules) == []


def test_import_contracts_hold() -> None:
    """import-linter's contracts in pyproject.toml: layers, the one declared seam between
    capabilities, and nothing local-only in the Lambda package."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_every_reaction_and_sweep_task_is_a_loaded_callable() -> None:
    for kind, reactions in REACTIONS.items():
        for capability, reaction in reactions:
            assert callable(reaction), (kind, capability)
            assert list(inspect.signature(reaction).parameters) == ["event", "now"], reaction
            assert reaction.__module__ == f"chalicelib.{capability}.react"
    assert [task.name for task in REPOSITORY_TASKS] == ["retention", "governance", "reconcile"]
    for task in REPOSITORY_TASKS:
        assert len(inspect.signature(task.run).parameters) >= 3
        if task.plan is not None:  # a dry-run sweep calls it as it calls `run`
            assert callable(task.plan)
        assert len(inspect.signature(task.in_scope).parameters) == 2
