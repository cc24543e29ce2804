"""Feature flags of local services: a flagd-format JSON file (OpenFeature) in the project, which the service reads.

A local service runs on this machine, so the file it watches is the place to write; every environment of the
service shares it (``services.NAME.flag.file``). Writes are atomic (a temporary file, then a rename), so a reader
never sees half a document, and other flags in the file are kept.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from deploy_mcp.config.loader import Project
from deploy_mcp.config.schema import FeatureFlag
from deploy_mcp.core.target import ErrorCode, TargetError

SCHEMA = "https://flagd.dev/schema/v0/flags.json"


def flagd_flag(percentage: int) -> dict[str, object]:
    """One flag in flagd's format: ENABLED with on/off variants; 0% and 100% are the default variant, anything in
    between a ``fractional`` targeting rule that splits users by their targeting key."""
    flag: dict[str, object] = {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "on" if percentage >= 100 else "off",
    }
    if 0 < percentage < 100:
        flag["targeting"] = {"fractional": [["on", percentage], ["off", 100 - percentage]]}
    return flag


def flagd_percentage(flag: Any) -> int | None:
    """The share of users who see ``on``, read back from a flag written by `flagd_flag` (or by hand, the same way)."""
    if not isinstance(flag, dict):
        return None
    if flag.get("state") == "DISABLED":
        return 0
    targeting = flag.get("targeting")
    if isinstance(targeting, dict) and isinstance(targeting.get("fractional"), list):
        for bucket in targeting["fractional"]:
            if isinstance(bucket, list) and len(bucket) == 2 and bucket[0] == "on" and isinstance(bucket[1], int):
                return bucket[1]
        return 0
    return 100 if flag.get("defaultVariant") == "on" else 0


class FlagdFile:
    """The FlagProvider of the local platform."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def path(self, service: str) -> Path:
        config = self.project.config.services.get(service)
        if config is None:
            known = ", ".join(sorted(self.project.config.services)) or "none"
            raise TargetError(f"unknown service {service!r}; known services: {known}", ErrorCode.UNKNOWN_SERVICE)
        flag = config.flag or FeatureFlag(name="")
        return self.project.root / flag.file

    def _read(self, service: str, path: Path) -> dict[str, Any]:
        try:
            document = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        except (OSError, ValueError) as exc:
            raise TargetError(
                f"services.{service}.flag.file {path} is not a readable flagd JSON file: {exc}; fix or remove it",
                ErrorCode.UNAVAILABLE,
            ) from None
        return document if isinstance(document, dict) else {}

    def set_flag(self, service: str, environment: str, flag: str, percentage: int) -> str:
        if isinstance(percentage, bool) or not isinstance(percentage, int) or not 0 <= percentage <= 100:
            raise TargetError(
                f"flag {flag!r}: the percentage must be a whole number from 0 to 100, got {percentage!r}",
                ErrorCode.INVALID_WEIGHTS,
            )
        path = self.path(service)
        document = self._read(service, path)
        flags = document.setdefault("flags", {})
        if not isinstance(flags, dict):
            flags = document["flags"] = {}
        flags[flag] = flagd_flag(percentage)
        document.setdefault("$schema", SCHEMA)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)
        return str(path)

    def get_flag(self, service: str, environment: str, flag: str) -> int | None:
        path = self.path(service)
        flags = self._read(service, path).get("flags")
        if not isinstance(flags, dict) or flag not in flags:
            return None
        return flagd_percentage(flags[flag])
