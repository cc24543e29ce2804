"""The plan a person agrees to is the plan that runs: one `plan_for`, carried from the question to the start.

The consent question used to plan from the ledger's last good version when the platform served nothing, while
the start planned from the platform; the question could describe a canary that then ran as a full-size start.
Now the Subject carries its plan, and the start refuses, changing nothing, when the plan of that moment differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from canary_project import canary_project

from deploy_mcp.app import App
from deploy_mcp.core.plans import build_plan
from deploy_mcp.errors import UserError
from deploy_mcp.services.launch import start_deployment
from deploy_mcp.services.plans import plan_for
from deploy_mcp.services.subjects import deploy_subject


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    with canary_project(tmp_path) as deploy_toml:
        app = App.load(deploy_toml)
        try:
            yield app
        finally:
            app.close()


def test_the_question_describes_the_plan_plan_for_builds(app: App) -> None:
    subject = deploy_subject(app, "hello", "2.0.0", "staging", None, None)

    assert subject.plan == plan_for(app, "hello", "2.0.0", "staging", None)
    assert subject.plan is not None and subject.plan.current_version is None  # nothing runs there
    assert "first deployment there" in subject.headline and "starts at full size" in subject.headline


def test_a_start_whose_plan_changed_since_it_was_agreed_is_refused_and_changes_nothing(app: App) -> None:
    # Agreed while 1.0.0 served (a canary beside it); nothing serves now, so the plan would be a full-size start.
    agreed = build_plan(app.require_config(), "hello", "2.0.0", "staging", current_version="1.0.0")

    with pytest.raises(UserError, match="the plan changed since it was agreed") as refused:
        start_deployment(app, "hello", "2.0.0", "staging", None, deployed_by="test", agreed=agreed)

    assert "served 1.0.0 then and serves nothing now" in str(refused.value)
    ledger = app.existing_ledger()
    assert ledger is None or ledger.list(service="hello", limit=5) == []
    assert app.serving_version("hello", "staging") is None
