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
- `--strict` (what `make iam-check`, and so `make test`, runs) fails on every granted action that
  no test saw the function call and `unexercised` does not list with a reason, and on entries of
  `unexercised` that no longer apply. With `--template`, the same holds for every role of the
  packaged SAM template: each function's role, and the token-vending role, whose actions the
  suite's vended credentials must have used.
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
    "ecr:ListImageReferrers": "ecr:BatchGetImage",
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


def recorded_calls(record: dict[str, Any]) -> dict[str, list[str]]:
    """Each caller's actions, under the names IAM authorizes them by."""
    return {
        who: sorted({ACTION_OF_OPERATION.get(a, a) for a in actions})
        for who, actions in record["calls"].items()
    }


def check(stage: str = "dev", record_path: Path = RECORD, *, strict: bool = False) -> list[str]:
    """Problems, one line each; empty when every function's policy grants what it calls. With
    `strict`, also every granted action that no test saw the function call (unless listed in
    `unexercised`), and every `unexercised` entry that no longer applies."""
    record = json.loads(record_path.read_text())
    calls = recorded_calls(record)
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
        if not strict:
            continue
        if not record.get("complete"):
            problems.append(
                f"{record_path} is the record of a partial or failing run: a strict check "
                "needs the whole suite, passing"
            )
            break
        runtime = {a for sid in spec["every_function"] for a in _actions(statements[sid])}
        if function in sqs_consumers():
            runtime |= POLL_ACTIONS  # Lambda's poller uses the role, not our code
        for action in sorted(set(granted) - called - runtime):
            if f"{function}:{action}" not in unexercised:
                problems.append(
                    f"{function}: granted {action} (Sid {granted[action]}) but no test of it "
                    "calls it: remove it, test it, or list it in `unexercised` with the reason"
                )
        for action in sorted(called & set(granted)):
            if f"{function}:{action}" in unexercised:
                problems.append(
                    f"infra/functions.json: `unexercised` lists {function}:{action}, which a "
                    "test now calls: remove the entry"
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
    if strict:
        for key in sorted(unexercised):
            function, _, action = key.partition(":")
            if function == VENDING_ROLE:
                if action not in vending_role_actions():
                    problems.append(f"`unexercised` lists {key}, which the role does not hold")
                continue
            held = {
                a
                for sid in [*spec["every_function"], *spec["functions"].get(function, [])]
                for a in _actions(statements[sid])
            }
            if action not in held:
                problems.append(
                    f"infra/functions.json: `unexercised` lists {key}, which is not granted: "
                    "remove the entry"
                )
    return problems


# The role the token API assumes for vended credentials, and the record's names for the calls
# made with them: inside the API function, and by tests acting as a credential's holder.
VENDING_ROLE = "TokenVendingRole"
VENDED_CALLERS = ("api_handler:vended", "vended")
# Statements Lambda uses the role for itself: writing the function's logs, polling its queue.
RUNTIME_SIDS = {"Logs", "LambdaEventSourcePolling"}


def _role_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in role.get("Properties", {}).get("Policies", []):
        statements = policy.get("PolicyDocument", {}).get("Statement", [])
        found += [statements] if isinstance(statements, dict) else statements
    return found


def _function_name(handler: str) -> str:
    """`app.on_ecr_event` → on_ecr_event; Chalice's REST API handler `app.app` → api_handler."""
    name = handler.rsplit(".", 1)[-1]
    return "api_handler" if name == "app" else name


def check_template(template_path: Path, record_path: Path = RECORD) -> list[str]:
    """The deployed roles, as the packaged template writes them, against the suite's record:
    every action a function's role holds is called by a test of that function (but Lambda's
    own log and queue-polling statements), or listed in `unexercised`; every action of the
    token-vending role was used by some vended credential, or is listed; and no role exists
    that nothing here checks."""
    calls = recorded_calls(json.loads(record_path.read_text()))
    unexercised: dict[str, str] = declared().get("unexercised", {})
    resources: dict[str, Any] = json.loads(template_path.read_text())["Resources"]
    name = str(template_path)
    problems: list[str] = []
    checked: set[str] = set()
    for resource in resources.values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        function = _function_name(properties["Handler"])
        role = properties.get("Role", {})
        role_id = role.get("Fn::GetAtt", [None])[0] if isinstance(role, dict) else None
        if role_id not in resources:
            problems.append(f"{name}: {function} has no role of the template")
            continue
        checked.add(role_id)
        held: dict[str, str] = {}
        for statement in _role_statements(resources[role_id]):
            if statement.get("Sid") not in RUNTIME_SIDS:
                for action in _actions(statement):
                    held.setdefault(action, str(statement.get("Sid")))
        called = set(calls.get(function, []))
        if function in sqs_consumers():
            called |= POLL_ACTIONS  # Lambda's poller uses the role, not our code
        for action in sorted(set(held) - called):
            if f"{function}:{action}" not in unexercised:
                problems.append(
                    f"{name}: role {role_id} of {function} holds {action} (Sid {held[action]}) "
                    "but no test of the function calls it"
                )
    if VENDING_ROLE in resources:
        checked.add(VENDING_ROLE)
        vended = {a for caller in VENDED_CALLERS for a in calls.get(caller, [])}
        for statement in _role_statements(resources[VENDING_ROLE]):
            for action in sorted(_actions(statement) - vended):
                if f"{VENDING_ROLE}:{action}" not in unexercised:
                    problems.append(
                        f"{name}: role {VENDING_ROLE} holds {action} (Sid {statement.get('Sid')}) "
                        "but no vended credential in the suite used it"
                    )
    for role_id, resource in sorted(resources.items()):
        if resource.get("Type") == "AWS::IAM::Role" and role_id not in checked:
            problems.append(f"{name}: role {role_id} is checked by nothing in infra/iam.py")
    return problems


def main() -> None:
    usage = "usage: python infra/iam.py check [--strict] [--template SAM.json ...] [RECORD]"
    args, templates = sys.argv[1:], []
    strict = "--strict" in args
    args = [a for a in args if a != "--strict"]
    while "--template" in args:
        at = args.index("--template")
        if at + 1 >= len(args):
            raise SystemExit(usage)
        templates.append(Path(args[at + 1]))
        del args[at : at + 2]
    if (args[0] if args else "check") != "check":
        raise SystemExit(usage)
    record = Path(args[1]) if len(args) > 1 else RECORD
    if not record.exists():
        raise SystemExit(f"{record} is missing: run the suite with `-p tests.awscalls` first")
    for function, reason in declared().get("pending", {}).items():
        calls = json.loads(record.read_text())["calls"].get(function, [])
        print(f"warning: {function} is not checked yet ({reason}); it calls {calls}")
    problems = [p for stage in ("dev", "prod") for p in check(stage, record, strict=strict)]
    for template in templates:
        if not template.exists():
            raise SystemExit(f"{template} is missing: package the stage first (`make cfn-lint`)")
        problems += check_template(template, record)
    for problem in dict.fromkeys(problems):
        print(problem)
    if problems:
        raise SystemExit(1)
    what = "each function calls is granted to it"
    if strict:
        listed = len(declared().get("unexercised", {}))
        what += f"; every grant is called by a test, or listed with its reason ({listed} listed)"
    if templates:
        what += f"; the same for the roles of {len(templates)} packaged template(s)"
    print(f"IAM: every action {what}")


if __name__ == "__main__":
    main()
