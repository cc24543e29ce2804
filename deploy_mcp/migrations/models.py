"""What a migration lint reports: findings a person can act on, and whether the release can be rolled back.

Every finding carries its safe alternative, because "this locks the table" is only useful next to "do this
instead". ``irreversible`` is the one bit the rollout cares about: a release whose migrations the previous
version cannot run against must be fixed forward, never rolled back.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["error", "warning", "info"]
"""error: blocks traffic or breaks the running version during a rollout; warning: risky or hurts rollback;
info: a better habit, no danger to this rollout."""

SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(description="The migration file, relative to the project root.")
    line: int = Field(ge=1, description="1-based line of the statement or marker the finding is about.")
    rule: str = Field(description="squawk's rule name, or one of deploy-mcp's own (missing-down-migration, ...).")
    severity: Severity
    message: str = Field(description="What is wrong and what it does to a live service.")
    safe_alternative: str = Field(description="What to write instead.")
    source: Literal["squawk", "deploy-mcp"]


class MigrationReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="What was checked, relative to the project root.")
    files_checked: list[str]
    findings: list[Finding]
    irreversible: bool = Field(
        description="True when a migration destroys data or leaves a schema the previous version cannot run "
        "against: ship it with migrations_irreversible = true for the release, so rollback means fix forward."
    )
    summary: str
    squawk_version: str | None = Field(default=None, description="None when squawk is not installed.")
    notes: list[str] = Field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]
