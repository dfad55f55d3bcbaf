"""Deployment: the post-processing that `make package` applies to Chalice's template, and the
per-function IAM policies and their check. (`make test` also packages both stages and runs
cfn-lint on them, and runs `infra/iam.py check` on the suite's record of AWS calls.)"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from infra import iam
from infra.package import post_process


def chalice_template() -> dict:
    """The shape `chalice package` gives: functions with SQS events referencing queues by ARN,
    one of them overridden by the merge template (both intrinsics left in the dict)."""

    def function(events: dict) -> dict:
        return {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "Timeout": 120,
                "Role": {"Fn::GetAtt": [f"R{len(events)}", "Arn"]},
                "Events": events,
            },
        }

    def sqs(name: str) -> dict:
        arn = f"arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{name}"
        return {"Type": "SQS", "Properties": {"Queue": {"Fn::Sub": arn}, "BatchSize": 10}}

    merged = sqs("steward-sweep")
    merged["Properties"]["Queue"]["Fn::GetAtt"] = ["SweepQueue", "Arn"]
    return {
        "Resources": {
            "R1": {"Type": "AWS::IAM::Role", "Properties": {"Policies": []}},
            "OnCopyJob": function({"OnCopyJobSqsEventSource": sqs("steward-copies")}),
            "OnSweep": function({"OnSweepSqsEventSource": merged}),
            "SweepQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "x-sweep"}},
            "SweepDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {}},
            "Api": {"Type": "AWS::Serverless::Function", "Properties": {"Events": {}}},
        },
        "Parameters": {"Stage": {"Type": "String", "Default": "dev"}},
    }


def test_every_sqs_consumer_reports_batch_item_failures_and_has_a_queue() -> None:
    template = post_process(copy.deepcopy(chalice_template()), "prod")
    resources = template["Resources"]
    copy_event = resources["OnCopyJob"]["Properties"]["Events"]["OnCopyJobSqsEventSource"]
    sweep_event = resources["OnSweep"]["Properties"]["Events"]["OnSweepSqsEventSource"]
    for event in (copy_event, sweep_event):
        assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # The merge template's reference wins over Chalice's ARN.
    assert sweep_event["Properties"]["Queue"] == {"Fn::GetAtt": ["SweepQueue", "Arn"]}
    # A queue no resource created gets one, with a dead-letter queue and redrive.
    assert copy_event["Properties"]["Queue"] == {"Fn::GetAtt": ["OnCopyJobQueue", "Arn"]}
    queue = resources["OnCopyJobQueue"]["Properties"]
    assert queue["QueueName"] == "steward-copies"
    assert queue["VisibilityTimeout"] == 720
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["OnCopyJobDeadLetterQueue", "Arn"]
    }
    # Lambda's poller may receive from it with the function's role.
    statement = resources["R1"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]
    assert "sqs:ReceiveMessage" in statement["Action"]
    assert template["Parameters"]["Stage"]["Default"] == "prod"


def test_alarms_on_every_function_and_dead_letter_queue() -> None:
    resources = post_process(chalice_template(), "dev")["Resources"]
    alarms = {k for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms == {
        "OnCopyJobErrorsAlarm",
        "OnCopyJobThrottlesAlarm",
        "OnSweepErrorsAlarm",
        "OnSweepThrottlesAlarm",
        "ApiErrorsAlarm",
        "ApiThrottlesAlarm",
        "SweepDeadLetterQueueDepthAlarm",
        "OnCopyJobDeadLetterQueueDepthAlarm",
        "EcrThrottlingAlarm",
        "EcrPacingFallbackAlarm",
    }
    depth = resources["SweepDeadLetterQueueDepthAlarm"]["Properties"]
    assert depth["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert depth["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_throttling_alarm_watches_the_metric_the_functions_emit() -> None:
    """The gateway's EMF lines carry the `service` dimension alone besides `Operation`
    (tests/integration/test_pacing.py); the alarm reads that series, in the namespace and
    under the service name every stage's functions are configured with."""
    resources = post_process(chalice_template(), "dev")["Resources"]
    throttling = resources["EcrThrottlingAlarm"]["Properties"]
    config = json.loads(Path(".chalice/config.json").read_text())["environment_variables"]
    assert throttling["Namespace"] == config["POWERTOOLS_METRICS_NAMESPACE"]
    assert throttling["MetricName"] == "EcrThrottled"
    assert throttling["Dimensions"] == [
        {"Name": "service", "Value": config["POWERTOOLS_SERVICE_NAME"]}
    ]
    # Sustained: a few throttled calls are retried and land.
    assert throttling["Threshold"] > 0 and throttling["EvaluationPeriods"] > 1
    assert throttling["DatapointsToAlarm"] == throttling["EvaluationPeriods"]
    fallback = resources["EcrPacingFallbackAlarm"]["Properties"]
    assert fallback["MetricName"] == "EcrPacingFallback" and fallback["Threshold"] == 0
    assert fallback["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_every_function_of_the_app_has_its_own_policy() -> None:
    for stage in ("dev", "prod"):
        policies = iam.function_policies(stage)
        assert set(policies) == set(iam.app_functions())
        api = {s["Sid"] for s in policies["api_handler"]["Statement"]}
        assert "VendTokens" in api
        assert "TagPushedImages" not in api


def test_the_check_flags_ungranted_and_unused_actions(tmp_path: Path) -> None:
    functions = iam.app_functions()
    calls: dict[str, list[str]] = {f: [] for f in functions}
    calls["api_handler"] = ["sts:AssumeRole", "ecr:PutImage"]
    calls["api_handler:vended"] = ["ecr:GetAuthorizationToken", "ecr:DeleteRepository"]
    record = tmp_path / "calls.json"
    record.write_text(json.dumps({"complete": True, "calls": calls}))
    problems = iam.check("dev", record, strict=True)
    assert "api_handler: calls ecr:PutImage, which its policy does not grant" in problems
    assert any(p.startswith("api_handler: granted dynamodb:") for p in problems)
    assert "api_handler:vended: calls ecr:DeleteRepository, beyond the token-vending role" in (
        problems
    )
    assert not any(p.startswith("api_handler: ") and "sts:AssumeRole" in p for p in problems)
    # Without --strict only what would fail on AWS is a problem.
    assert not any(" but no test of it calls it" in p for p in iam.check("dev", record))
    assert "api_handler: calls ecr:PutImage, which its policy does not grant" in iam.check(
        "dev", record
    )


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_vending_role_is_named_as_the_api_policy_expects(stage: str) -> None:
    statement = iam.catalogue(stage)["VendTokens"]
    resources = json.loads(Path("infra/resources.json").read_text())["Resources"]
    role_name = resources["TokenVendingRole"]["Properties"]["RoleName"]["Fn::Sub"]
    assert statement["Resource"].endswith(role_name.replace("${Stage}", stage))


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_api_is_throttled_and_the_vending_session_names_its_caller(stage: str) -> None:
    """Issue 12: API Gateway throttles every method and the token route harder, a usage plan
    bounds key-holding clients, and SourceIdentity is allowed on both sides of AssumeRole."""
    resources = json.loads(Path("infra/resources.json").read_text())["Resources"]
    settings = {
        (s["ResourcePath"], s["HttpMethod"]): s["ThrottlingRateLimit"]
        for s in resources["RestAPI"]["Properties"]["MethodSettings"]
    }
    assert settings[("/*", "*")] >= settings[("/~1v1~1token", "GET")]
    plan = resources["ApiUsagePlan"]["Properties"]
    assert plan["ApiStages"][0]["ApiId"] == {"Ref": "RestAPI"}
    assert plan["Throttle"]["RateLimit"] > 0
    trust = resources["TokenVendingRole"]["Properties"]["AssumeRolePolicyDocument"]
    assert "sts:SetSourceIdentity" in trust["Statement"][0]["Action"]
    assert "sts:SetSourceIdentity" in iam.catalogue(stage)["VendTokens"]["Action"]


def full_record(tmp_path: Path, **overrides: list[str]) -> Path:
    """A complete record in which every function calls every action granted to it."""
    spec, statements = iam.declared(), iam.catalogue("dev")
    calls = {
        function: sorted(
            {
                action
                for sid in sids
                for action in iam._actions(statements[sid])
                if f"{function}:{action}" not in spec["unexercised"]
            }
        )
        for function, sids in spec["functions"].items()
    }
    calls.update(overrides)
    record = tmp_path / "calls.json"
    record.write_text(json.dumps({"complete": True, "calls": calls}))
    return record


def test_strict_fails_on_an_unexercised_unlisted_grant_and_passes_with_the_list(
    tmp_path: Path,
) -> None:
    assert iam.check("dev", full_record(tmp_path), strict=True) == []
    unlisted = full_record(tmp_path, start_sweep=["dynamodb:GetItem", "dynamodb:PutItem"])
    assert iam.check("dev", unlisted, strict=True) == [
        "start_sweep: granted sqs:GetQueueUrl (Sid SweepQueueRepositoryJobs) but no test of it "
        "calls it: remove it, test it, or list it in `unexercised` with the reason",
        "start_sweep: granted sqs:SendMessage (Sid SweepQueueRepositoryJobs) but no test of it "
        "calls it: remove it, test it, or list it in `unexercised` with the reason",
    ]
    # A listed action that a test now calls is a stale entry.
    governance = iam.recorded_calls(json.loads(full_record(tmp_path).read_text()))
    stale = full_record(
        tmp_path,
        governance_reconcile=[*governance["governance_reconcile"], "ecr:TagResource"],
    )
    assert iam.check("dev", stale, strict=True) == [
        "infra/functions.json: `unexercised` lists governance_reconcile:ecr:TagResource, which "
        "a test now calls: remove the entry"
    ]
    # A strict check refuses the record of a partial run.
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"complete": False, "calls": {}}))
    assert any("partial or failing run" in p for p in iam.check("dev", partial, strict=True))


def role(*statements: dict) -> dict:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {"Policies": [{"PolicyDocument": {"Statement": list(statements)}}]},
    }


def test_the_template_check_holds_every_role_to_the_record(tmp_path: Path) -> None:
    record = full_record(tmp_path, vended=["ecr:GetAuthorizationToken", "ecr:BatchGetImage"])
    resources = {
        "StartSweep": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "Handler": "app.start_sweep",
                "Role": {"Fn::GetAtt": ["StartSweepRole", "Arn"]},
            },
        },
        "StartSweepRole": role(
            {"Sid": "Logs", "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*"},
            {
                "Sid": "SweepQueueRepositoryJobs",
                "Effect": "Allow",
                "Action": ["sqs:SendMessage", "sqs:DeleteMessage"],
                "Resource": "*",
            },
        ),
        "TokenVendingRole": role(
            {
                "Sid": "PullAndPush",
                "Effect": "Allow",
                "Action": ["ecr:BatchGetImage", "ecr:PutImage"],
                "Resource": "*",
            }
        ),
        "Stray": role(),
    }
    template = tmp_path / "sam.json"
    template.write_text(json.dumps({"Resources": resources}))

    assert iam.check_template(template, record) == [
        f"{template}: role StartSweepRole of start_sweep holds sqs:DeleteMessage (Sid "
        "SweepQueueRepositoryJobs) but no test of the function calls it",
        f"{template}: role TokenVendingRole holds ecr:PutImage (Sid PullAndPush) but no vended "
        "credential in the suite used it",
        f"{template}: role Stray is checked by nothing in infra/iam.py",
    ]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_pacing_table_is_the_one_the_functions_are_named_and_granted(stage: str) -> None:
    resources = json.loads(Path("infra/resources.json").read_text())["Resources"]
    table = resources["PacingTable"]["Properties"]
    name = table["TableName"]["Fn::Sub"].replace("${Stage}", stage)
    config = json.loads(Path(".chalice/config.json").read_text())["stages"][stage]
    assert config["environment_variables"]["STEWARD_PACING_TABLE"] == name
    assert iam.catalogue(stage)["PaceEcrCalls"]["Resource"].endswith(f":table/{name}")
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
