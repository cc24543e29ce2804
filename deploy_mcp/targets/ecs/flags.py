"""Feature flags of ECS services: a flagd-format document in an SSM parameter, which the tasks read.

SSM Parameter Store is where ECS tasks already read configuration (a task definition's ``secrets`` or the
application's own SDK call); one parameter per service and environment keeps environments apart.
"""

from __future__ import annotations

import json
from typing import Any

from deploy_mcp.core.target import ErrorCode, TargetError
from deploy_mcp.targets.ecs.aws import Aws, calling, error_code
from deploy_mcp.targets.ecs.layout import Layout
from deploy_mcp.targets.local.flags import SCHEMA, flagd_flag, flagd_percentage


def parameter_name(service: str, environment: str) -> str:
    return f"/deploy-mcp/{service}/{environment}/flags"


class SsmFlags:
    """The FlagProvider of the platform contract on ECS."""

    def __init__(self, layout: Layout, aws: Aws) -> None:
        self.layout = layout
        self.aws = aws

    def _read(self, name: str) -> dict[str, Any]:
        try:
            value = self.aws.ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except Exception as exc:
            if error_code(exc) == "ParameterNotFound":
                return {}
            with calling(f"reading the flags in SSM parameter {name}"):
                raise
        try:
            document = json.loads(value)
        except ValueError:
            raise TargetError(
                f"SSM parameter {name} is not a flagd JSON document; fix or delete it", ErrorCode.UNAVAILABLE
            ) from None
        return document if isinstance(document, dict) else {}

    def set_flag(self, service: str, environment: str, flag: str, percentage: int) -> str:
        if isinstance(percentage, bool) or not isinstance(percentage, int) or not 0 <= percentage <= 100:
            raise TargetError(
                f"flag {flag!r}: the percentage must be a whole number from 0 to 100, got {percentage!r}",
                ErrorCode.INVALID_WEIGHTS,
            )
        self.layout.place(service, environment)
        name = parameter_name(service, environment)
        document = self._read(name)
        flags = document.get("flags") if isinstance(document.get("flags"), dict) else {}
        document["flags"] = {**flags, flag: flagd_flag(percentage)}
        document.setdefault("$schema", SCHEMA)
        with calling(f"writing flag {flag!r} to SSM parameter {name}"):
            self.aws.ssm.put_parameter(Name=name, Value=json.dumps(document), Type="String", Overwrite=True)
        return f"ssm:{name}"

    def get_flag(self, service: str, environment: str, flag: str) -> int | None:
        self.layout.place(service, environment)
        flags = self._read(parameter_name(service, environment)).get("flags")
        if not isinstance(flags, dict) or flag not in flags:
            return None
        return flagd_percentage(flags[flag])
