"""Who else is writing a repository's aliases: a counter per repository, so that a writer
re-reads the registry after its write only when another one may have raced it.

Every tagging reaction (and the sweep's reconciler) takes a number from the repository's counter
*before* it reads the registry, and looks at the counter again *after* its writes. Unchanged, no
other writer started in between: whoever starts later reads after this write and plans from a
registry that already has it, and whoever started earlier pushed its image before this read, so
this plan counted it. Changed, a writer started in between and either may have written last over
the other's newer plan; this one then re-reads the registry and plans again (as before every
write, taking a new number first). So aliases still cannot settle on a lower release, and a push
nobody races costs one read of the registry instead of two.

The counters live in the sweeps table (`id` = `writers#ACCOUNT#REGION#REPOSITORY`, gone a day
after their last use by its TTL). When DynamoDB cannot answer, the writer re-reads: that is
always safe, only a read dearer.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from chalicelib.kernel import aws
from chalicelib.kernel.errors import AwsCallError, aws_errors
from chalicelib.kernel.observability import count, logger

KEPT_FOR = timedelta(days=1)


class AliasWriters:
    """The counters of one table. `enter` before reading; `alone_since` after writing."""

    def __init__(self, table: str, *, client: Any = None) -> None:
        self.table = table
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("dynamodb")

    @staticmethod
    def key(account: str, region: str, repository: str) -> dict[str, Any]:
        return {"id": {"S": f"writers#{account}#{region}#{repository}"}}

    def enter(self, account: str, region: str, repository: str, now: datetime) -> int | None:
        """This writer's number, taken before it reads the registry; None when DynamoDB
        cannot say (the writer then re-reads after writing)."""
        try:
            with aws_errors("dynamodb", "update_item"):
                answer = self.client.update_item(
                    TableName=self.table,
                    Key=self.key(account, region, repository),
                    UpdateExpression="ADD seq :one SET purge_at = :purge",
                    ExpressionAttributeValues={
                        ":one": {"N": "1"},
                        ":purge": {"N": str(int((now + KEPT_FOR).timestamp()))},
                    },
                    ReturnValues="UPDATED_NEW",
                )
        except AwsCallError as error:
            self._unavailable(error)
            return None
        return int(answer["Attributes"]["seq"]["N"])

    def alone_since(self, account: str, region: str, repository: str, number: int | None) -> bool:
        """Whether no other writer took a number after `number` (read after this writer's
        writes, strongly consistent). False when unknown: the caller re-reads."""
        if number is None:
            return False
        try:
            with aws_errors("dynamodb", "get_item"):
                item = self.client.get_item(
                    TableName=self.table,
                    Key=self.key(account, region, repository),
                    ConsistentRead=True,
                    ProjectionExpression="seq",
                ).get("Item")
        except AwsCallError as error:
            self._unavailable(error)
            return False
        return item is not None and int(item["seq"]["N"]) == number

    @staticmethod
    def _unavailable(error: AwsCallError) -> None:
        count("AliasWritersUnavailable")
        logger().warning(
            "alias writers counter unavailable: re-reading after writes",
            extra={"code": error.code},
        )
