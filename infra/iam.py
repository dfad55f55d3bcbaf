"""Least privilege per function, kept true as functions are added.

- `.chalice/policy-<stage>.json` is the catalogue: one statement (Sid) per capability.
- `infra/functions.json` declares which statements each Lambda function gets.
- `infra/package.py` writes one IAM policy per function from those two (Chalice's per-function
  `iam_policy_file`), so each function's role holds only its own statements.
- `python infra/iam.py check` compares that with what the functions actually call: the test
  suite, run with `-p tests.awscalls`, records every AWS action made while each function's
  handler runs (build/aws-calls.json). Every action called must be granted to that function;
  every action granted must have been called in some test (or be listed in `unexercised` with
  the reason); every function of the app must have an entry; calls made with vended
  credentials must fit the token-vending role. Recording beats a static scan here: boto3 calls
  are dynamic (`getattr(client, operation)`, Powertools' DynamoDB calls), and the record shows
  exactly what each function does, not what a module could do.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import app as app_module

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "infra" / "functions.json"
RECORD = ROOT / "build" / "aws-calls.json"


# Operations IAM authorizes under another action's name.
ACTION_OF_OPERATION = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement.get("Action", [])
    return {action} if isinstance(action, str) else set(action)


def catalogue(stage: str) -> dict[str, dict[str, Any]]:
    document = json.loads((ROOT / ".chalice" / f"policy-{stage}.json").read_text())
    return {statement["Sid"]: statement for statement in document["Statement"]}


def declared() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FUNCTIONS.read_text())
    return data


def app_functions() -> list[str]:
    """The Lambda functions Chalice generates for the app: the API handler and one per event
    source (EventBridge rule, queue, schedule) and pure Lambda function."""
    sys.path.insert(0, str(ROOT))

    names = [source.name for source in app_module.app.event_sources]
    names += [function.name for function in app_module.app.pure_lambda_functions]
    if app_module.app.routes:
        names.append("api_handler")
    return names


# What Lambda's SQS event source mapping does with a consumer's role (see infra/package.py).
POLL_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
}


def sqs_consumers() -> set[str]:

    return {s.name for s in app_module.app.event_sources if type(s).__name__ == "SQSEventConfig"}


def function_policies(stage: str) -> dict[str, dict[str, Any]]:
    """One IAM policy document per function."""
    statements = catalogue(stage)
    spec = declared()
    unknown = {
        sid
        for sids in spec["functions"].values()
        for sid in [*sids, *spec["every_function"]]
        if sid not in statements
    }
    if unknown:
        raise SystemExit(
            f"infra/functions.json names statements not in policy-{stage}.json: {unknown}"
        )
    pending = spec.get("pending", {})
    missing = [f for f in app_functions() if f not in spec["functions"] and f not in pending]
    if missing:
        raise SystemExit(
            f"no IAM statements declared for {missing}: add them to infra/functions.json"
        )
    policies = {
        function: {
            "Version": "2012-10-17",
            "Statement": [statements[sid] for sid in [*spec["every_function"], *sids]],
        }
        for function, sids in spec["functions"].items()
    }
    # Not yet declared: the whole stage policy, as before per-function policies existed.
    for function in pending:
        policies[function] = {"Version": "2012-10-17", "Statement": list(statements.values())}
    return policies


def vending_role_actions() -> set[str]:
    resources = json.loads((ROOT / "infra" / "resources.json").read_text())["Resources"]
    role = resources["TokenVendingRole"]["Properties"]
    return {
        action
        for policy in role["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        for action in _actions(statement)
    }


def check(stage: str = "dev", record_path: Path = RECORD, *, strict: bool = False) -> list[str]:
    """Problems, one line each; empty when every function's policy grants what it calls. With
    `strict`, also every granted action that no test saw the function call."""
    record = json.loads(record_path.read_text())
    calls: dict[str, list[str]] = {
        who: sorted({ACTION_OF_OPERATION.get(a, a) for a in actions})
        for who, actions in record["calls"].items()
    }
    statements = catalogue(stage)
    spec = declared()
    unexercised: dict[str, str] = spec.get("unexercised", {})
    problems: list[str] = []
    functions = app_functions()
    pending: dict[str, str] = spec.get("pending", {})
    for function in functions:
        if function in pending:
            continue  # reported by main() as a warning, with the reason
        if function not in spec["functions"]:
            problems.append(
                f"{function}: no entry in infra/functions.json (it calls {calls.get(function, [])})"
            )
            continue
        granted = {
            action: sid
            for sid in [*spec["every_function"], *spec["functions"][function]]
            for action in _actions(statements[sid])
        }
        called = set(calls.get(function, []))
        for action in sorted(called - set(granted)):
            problems.append(f"{function}: calls {action}, which its policy does not grant")
        if not (strict and record.get("complete")):
            continue  # a partial run cannot show that a grant is unused
        runtime = {a for sid in spec["every_function"] for a in _actions(statements[sid])}
        if function in sqs_consumers():
            runtime |= POLL_ACTIONS  # Lambda's poller uses the role, not our code
        for action in sorted(set(granted) - called - runtime):
            if f"{function}:{action}" not in unexercised and action not in unexercised:
                problems.append(
                    f"{function}: granted {action} (Sid {granted[action]}) but no test of it "
                    "calls it: remove it, test it, or list it in `unexercised` with the reason"
                )
    # The token API's vended sessions (other functions' assumed roles live in other accounts).
    for action in sorted(set(calls.get("api_handler:vended", [])) - vending_role_actions()):
        problems.append(f"api_handler:vended: calls {action}, beyond the token-vending role")
    used = {sid for sids in spec["functions"].values() for sid in sids} | set(
        spec["every_function"]
    )
    for sid in sorted(set(statements) - used):
        problems.append(f"policy-{stage}.json statement {sid} is granted to no function")
    for function in sorted(set(spec["functions"]) - set(functions)):
        problems.append(f"infra/functions.json: {function} is not a function of the app")
    return problems


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--strict"]
    strict = "--strict" in sys.argv
    if (args[0] if args else "check") != "check":
        raise SystemExit("usage: python infra/iam.py check [--strict] [RECORD]")
    record = Path(args[1]) if len(args) > 1 else RECORD
    if not record.exists():
        raise SystemExit(f"{record} is missing: run the suite with `-p tests.awscalls` first")
    for function, reason in declared().get("pending", {}).items():
        calls = json.loads(record.read_text())["calls"].get(function, [])
        print(f"warning: {function} is not checked yet ({reason}); it calls {calls}")
    problems = [p for stage in ("dev", "prod") for p in check(stage, record, strict=strict)]
    if not strict:
        unused = [p for stage in ("dev", "prod") for p in check(stage, record, strict=True)]
        for note in dict.fromkeys(p for p in unused if p not in problems):
            print(f"note: {note}")
    for problem in dict.fromkeys(problems):
        print(problem)
    if problems:
        raise SystemExit(1)
    print("IAM: every action each function was seen to call is granted to it")


if __name__ == "__main__":
    main()
