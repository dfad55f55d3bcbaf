"""The mutation score of the planners, from the last `mutmut run` (what `make mutation` prints).

    python infra/mutation.py [--min 85] [--survivors]

A mutant is killed when some unit test fails on it (a timeout or a type error counts as a kill:
the change was caught). Survivors and mutants that no unit test reaches count against the score;
mutants mutmut skipped do not count at all. The score is killed / counted, per planner and in
total; below `--min` (default 85 %) the command fails, so the figure cannot quietly slip.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
KILLED = {"killed", "timeout", "caught by type check"}
NOT_COUNTED = {"skipped", "not checked", "check was interrupted by user"}


def statuses(meta: Path) -> dict[str, str]:
    """Each mutant of one source file (mutmut's `.meta`) by its outcome."""
    exit_codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    return {name: status_by_exit_code[code] for name, code in exit_codes.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--min", type=float, default=85.0, help="fail below this score (%%)")
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants")
    args = parser.parse_args()
    metas = sorted(MUTANTS.rglob("*.py.meta"))
    if not metas:
        raise SystemExit("no mutmut results in mutants/: run `make mutation`")
    total: Counter[str] = Counter()
    survivors: list[str] = []
    for meta in metas:
        found = statuses(meta)
        counts = Counter(found.values())
        total += counts
        source = meta.relative_to(MUTANTS).as_posix().removesuffix(".meta")
        print(f"{source:36} {_line(counts)}")
        survivors += [name for name, status in found.items() if status not in KILLED | NOT_COUNTED]
    print(f"{'planners':36} {_line(total)}")
    if args.survivors:
        print("\n".join(sorted(survivors)))
    if _score(total) < args.min:
        print(f"mutation score below {args.min:.0f} %", file=sys.stderr)
        raise SystemExit(1)


def _score(counts: Counter[str]) -> float:
    counted = sum(n for status, n in counts.items() if status not in NOT_COUNTED)
    killed = sum(n for status, n in counts.items() if status in KILLED)
    return 100.0 * killed / counted if counted else 0.0


def _line(counts: Counter[str]) -> str:
    counted = sum(n for status, n in counts.items() if status not in NOT_COUNTED)
    killed = sum(n for status, n in counts.items() if status in KILLED)
    return (
        f"{_score(counts):5.1f} %  killed {killed}/{counted}"
        f"  (survived {counts['survived']}, no test {counts['no tests']},"
        f" suspicious {counts['suspicious']}, skipped {counts['skipped']})"
    )


if __name__ == "__main__":
    main()
