"""What a policy change would change: two retention plans compared image by image."""

from __future__ import annotations

from pydantic import BaseModel

from chalicelib.retention.plan import ImageDecision, RetentionPlan


class PlanChange(BaseModel):
    digest: str
    tags: list[str]
    before: ImageDecision
    after: ImageDecision


def diff_plans(old: RetentionPlan, new: RetentionPlan) -> list[PlanChange]:
    """Images whose keep/delete differs between two plans of the same repository."""
    before = {d.digest: d for d in old.decisions}
    changes = []
    for decision in new.decisions:
        previous = before.get(decision.digest)
        if previous is not None and previous.action != decision.action:
            changes.append(
                PlanChange(
                    digest=decision.digest, tags=decision.tags, before=previous, after=decision
                )
            )
    return changes
