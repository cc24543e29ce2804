"""The policy: what may happen now, and what a refusal tells the person who has to fix it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deploy_mcp.app import App
from deploy_mcp.config.loader import parse_config
from deploy_mcp.config.schema import DeployConfig
from deploy_mcp.core.plans import build_plan
from deploy_mcp.core.policy import (
    ACTIONS,
    Action,
    PolicyDecision,
    PolicyRefusal,
    evaluate,
    next_window_opening,
    open_window,
)
from deploy_mcp.core.recommend import PlanError
from deploy_mcp.core.records import Status
from deploy_mcp.ledger.base import Approval
from deploy_mcp.services.approvals import approve, check_policy

BASE = """
[services.web]
command = ["./web", "--port", "{port}"]
replicas = 2
smoke = ["/health", "/"]

[services.web.environments.staging]
strategy = "rolling"

[services.web.environments.production]
strategy = "canary"
requires = ["staging"]
"""

# 2026-11-26 is a Thursday.
THU_NOON = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def config(head: str = "", extra: str = "") -> DeployConfig:
    return parse_config(head + BASE + extra)


def decide(
    cfg: DeployConfig, action: Action = "deploy", environment: str = "production", **facts: object
) -> PolicyDecision:
    facts.setdefault("now", THU_NOON)
    facts.setdefault("version", "2.0.0")
    facts.setdefault("succeeded_in", {"staging"})
    return evaluate(cfg, action=action, service="web", environment=environment, **facts)  # type: ignore[arg-type]


def check(decision: PolicyDecision, name: str) -> str:
    found = [c for c in decision.checks if c.name == name]
    assert found, f"no check {name!r} in {[c.name for c in decision.checks]}"
    return found[0].detail


def approval(change_id: str = "CHG-1", environment: str = "production", **changes: object) -> Approval:
    fields: dict[str, object] = {
        "id": 1,
        "change_id": change_id,
        "service": "web",
        "environment": environment,
        "approved_by": "alice",
        "approved_at": THU_NOON - timedelta(hours=1),
    }
    return Approval.model_validate(fields | changes)


# -- the plain case ---------------------------------------------------------------------------------------------


def test_a_greenfield_production_deploy_is_allowed_and_needs_the_users_confirmation() -> None:
    decision = decide(config())
    assert decision.allowed and decision.refusal is None
    assert decision.needs_confirmation
    decision.raise_if_refused()


def test_only_production_actions_that_move_a_release_need_confirmation() -> None:
    cfg = config()
    assert not decide(cfg, environment="staging").needs_confirmation
    assert {a for a in ACTIONS if decide(cfg, a).needs_confirmation} == {"deploy", "rollback", "promote", "resume"}
    off = config("[policy]\nrequire_confirmation = false\n")
    assert not decide(off).needs_confirmation


def test_unknown_environment_is_a_clear_error_listing_the_known_ones() -> None:
    with pytest.raises(PlanError, match="known environments: staging, production"):
        decide(config(), environment="prod-eu")


# -- read-only and the allowlist ---------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
def test_read_only_refuses_every_changing_action_and_says_what_to_change(action: Action) -> None:
    decision = decide(config("[policy]\nread_only = true\n"), action, environment="staging")
    assert decision.refused_by == "read-only"
    assert "read-only" in decision.refusal and "policy.read_only = false" in decision.refusal  # type: ignore[operator]
    with pytest.raises(PolicyRefusal) as refused:
        decision.raise_if_refused()
    assert refused.value.gate == "read-only"


@pytest.mark.parametrize("action", ACTIONS)
def test_the_allowlist_refuses_other_environments_naming_the_allowed_ones(action: Action) -> None:
    cfg = config('[policy]\nallowed_environments = ["staging"]\n')
    refused = decide(cfg, action)
    assert refused.refused_by == "environment-allowlist"
    assert "'production' is not in policy.allowed_environments (staging)" in refused.refusal  # type: ignore[operator]
    assert "adds 'production' to policy.allowed_environments" in refused.refusal  # type: ignore[operator]
    assert decide(cfg, action, environment="staging").allowed


def test_an_empty_allowlist_says_so() -> None:
    decision = decide(config("[policy]\nallowed_environments = []\n"), environment="staging")
    assert "none: the list is empty" in decision.refusal  # type: ignore[operator]


# -- promotion ---------------------------------------------------------------------------------------------------


def test_production_waits_until_the_same_version_succeeded_in_staging() -> None:
    decision = decide(config(), succeeded_in=set())
    assert decision.refused_by == "requires-staging"
    assert "web 2.0.0 has not succeeded in staging" in decision.refusal  # type: ignore[operator]
    assert "services.web.environments.production.requires" in decision.refusal  # type: ignore[operator]
    assert "Deploy 2.0.0 to staging first" in decision.refusal  # type: ignore[operator]
    assert decide(config(), succeeded_in={"staging"}).allowed


@pytest.mark.parametrize("action", ["rollback", "abort", "pause", "promote", "resume"])
def test_requires_binds_deploys_only_so_rollback_is_never_blocked_by_promotion(action: Action) -> None:
    assert decide(config(), action, succeeded_in=set(), version=None).allowed


# -- deploy windows ---------------------------------------------------------------------------------------------

WEEKDAYS = '[policy]\ndeploy_windows = [{ days = ["mon", "tue", "wed", "thu"], start = "09:00", end = "16:00" }]\n'
NIGHT = '[policy]\ndeploy_windows = [{ days = ["fri"], start = "22:00", end = "02:00" }]\n'


def test_inside_a_window_the_deploy_passes_and_the_record_gets_the_window() -> None:
    decision = decide(config(WEEKDAYS))
    assert decision.allowed
    assert decision.deploy_window == "mon, tue, wed, thu 09:00-16:00 UTC"
    assert "closes at Thu 2026-11-26 16:00 UTC" in check(decision, "deploy-window")


def test_outside_a_window_the_refusal_gives_the_next_opening_across_the_weekend() -> None:
    thursday_close = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)  # the end is exclusive
    decision = decide(config(WEEKDAYS), now=thursday_close)
    assert decision.refused_by == "deploy-window"
    assert "outside the deploy windows in policy.deploy_windows" in decision.refusal  # type: ignore[operator]
    assert "next window opens Mon 2026-11-30 09:00 UTC (in 3 d 17 h)" in decision.refusal  # type: ignore[operator]
    assert "Rollback and abort stay allowed" in decision.refusal  # type: ignore[operator]


def test_a_window_across_midnight_belongs_to_the_day_it_opens() -> None:
    windows = config(NIGHT).policy.deploy_windows
    saturday_1am = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
    inside = open_window(windows, saturday_1am)
    assert inside is not None and inside[1] == datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
    assert open_window(windows, datetime(2026, 11, 28, 2, 0, tzinfo=UTC)) is None
    assert open_window(windows, datetime(2026, 11, 27, 21, 59, tzinfo=UTC)) is None  # friday, before it opens
    assert open_window(windows, datetime(2026, 11, 27, 22, 0, tzinfo=UTC)) is not None
    # friday 01:00 is the tail of thursday's night, and there is no thursday window
    assert open_window(windows, datetime(2026, 11, 27, 1, 0, tzinfo=UTC)) is None
    assert next_window_opening(windows, saturday_1am) == datetime(2026, 12, 4, 22, 0, tzinfo=UTC)
    refused = decide(config(NIGHT), now=datetime(2026, 11, 28, 3, 0, tzinfo=UTC))
    assert "next window opens Fri 2026-12-04 22:00 UTC (in 6 d 19 h)" in refused.refusal  # type: ignore[operator]


def test_equal_start_and_end_is_a_whole_day_and_naive_times_are_utc() -> None:
    windows = config('[policy]\ndeploy_windows = [{ days = ["sun"], start = "00:00", end = "00:00" }]\n')
    sunday_late = datetime(2026, 11, 29, 23, 59)
    assert open_window(windows.policy.deploy_windows, sunday_late) is not None
    assert open_window(windows.policy.deploy_windows, datetime(2026, 11, 30, 0, 0)) is None


def test_the_next_opening_can_be_later_today() -> None:
    early = datetime(2026, 11, 26, 7, 30, tzinfo=UTC)
    decision = decide(config(WEEKDAYS), now=early)
    assert "next window opens Thu 2026-11-26 09:00 UTC (in 1 h 30 min)" in decision.refusal  # type: ignore[operator]


@pytest.mark.parametrize("action", ["rollback", "abort", "pause"])
def test_rollback_abort_and_pause_are_allowed_outside_windows(action: Action) -> None:
    sunday = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    decision = decide(config(WEEKDAYS), action, now=sunday, version=None)
    assert decision.allowed
    assert "an emergency cannot wait" in check(decision, "deploy-window")


@pytest.mark.parametrize("action", ["promote", "resume"])
def test_moving_a_rollout_forward_waits_for_a_window(action: Action) -> None:
    sunday = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    assert decide(config(WEEKDAYS), action, now=sunday).refused_by == "deploy-window"


def test_windows_apply_to_production_only() -> None:
    sunday = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    assert decide(config(WEEKDAYS), environment="staging", now=sunday).allowed


# -- recreate ----------------------------------------------------------------------------------------------------


def test_recreate_in_production_is_refused_with_the_downtime_and_the_key() -> None:
    decision = decide(config(), strategy="recreate")
    assert decision.refused_by == "recreate-in-production"
    assert "about 30 s with no service in production" in decision.refusal  # type: ignore[operator]
    assert "policy.allow_recreate_in_production = true" in decision.refusal  # type: ignore[operator]
    assert "choose rolling, canary or blue-green" in decision.refusal  # type: ignore[operator]


def test_recreate_allowed_by_policy_still_states_the_downtime() -> None:
    decision = decide(config("[policy]\nallow_recreate_in_production = true\n"), strategy="recreate")
    assert decision.allowed
    assert "expect about 30 s with no service" in check(decision, "recreate-downtime")


def test_recreate_outside_production_is_fine_and_a_configured_recreate_counts() -> None:
    assert decide(config(), environment="staging", strategy="recreate").allowed
    configured = parse_config(BASE.replace('strategy = "canary"', 'strategy = "recreate"'))
    assert decide(configured).refused_by == "recreate-in-production"


# -- brownfield-enterprise ---------------------------------------------------------------------------------------

ENTERPRISE = 'mode = "brownfield-enterprise"\n' + WEEKDAYS + 'on_call = "bob"\n'


def enterprise(**facts: object) -> PolicyDecision:
    facts.setdefault("change_id", "CHG-1")
    facts.setdefault("approval", approval())
    facts.setdefault("rollback_tested", True)
    return decide(config(ENTERPRISE), **facts)


def test_an_enterprise_change_with_everything_in_place_passes() -> None:
    decision = enterprise()
    assert decision.allowed
    assert "approved by alice" in check(decision, "change-approval")
    assert "On call: bob" in check(decision, "on-call")
    assert "4 h monitoring period" in check(decision, "on-call")


def test_enterprise_without_change_id_tells_the_person_what_to_run_and_the_agent_not_to() -> None:
    decision = enterprise(change_id=None, approval=None)
    assert decision.refused_by == "change-approval"
    text = decision.refusal or ""
    assert "deploy-mcp approve CHG-12345 --service web --environment production --approved-by YOUR-NAME" in text
    assert "an agent must not run that command" in text


@pytest.mark.parametrize(
    "found",
    [
        None,
        approval(expires_at=THU_NOON - timedelta(minutes=1)),
        approval(change_id="CHG-2"),
        approval(environment="staging"),
    ],
    ids=["none", "expired", "other-change", "other-environment"],
)
def test_enterprise_refuses_without_a_valid_matching_approval(found: Approval | None) -> None:
    decision = enterprise(approval=found)
    assert decision.refused_by == "change-approval"
    assert "deploy-mcp approve CHG-1 --service web --environment production" in decision.refusal  # type: ignore[operator]


def test_enterprise_needs_a_rehearsed_rollback_an_on_call_and_a_window() -> None:
    untested = enterprise(rollback_tested=False)
    assert untested.refused_by == "rollback-tested"
    assert "no successful rollback of web is recorded in staging" in untested.refusal  # type: ignore[operator]

    nobody = evaluate(
        config('mode = "brownfield-enterprise"\n' + WEEKDAYS),
        action="deploy",
        service="web",
        environment="production",
        version="2.0.0",
        now=THU_NOON,
        succeeded_in={"staging"},
        change_id="CHG-1",
        approval=approval(),
        rollback_tested=True,
    )
    assert nobody.refused_by == "on-call"
    assert 'policy.on_call = "NAME"' in nobody.refusal  # type: ignore[operator]

    no_window = decide(config('mode = "brownfield-enterprise"\n[policy]\non_call = "bob"\n'), change_id="CHG-1")
    assert no_window.refused_by == "deploy-window"
    assert "[[policy.deploy_windows]]" in no_window.refusal  # type: ignore[operator]


def test_every_failing_rule_is_listed_not_only_the_first() -> None:
    decision = decide(config(ENTERPRISE), succeeded_in=set(), now=datetime(2026, 11, 29, 3, 0, tzinfo=UTC))
    failing = {c.name for c in decision.checks if not c.passed}
    assert {"requires-staging", "deploy-window", "change-approval", "rollback-tested"} <= failing
    assert decision.refused_by == "requires-staging"


def test_enterprise_rules_bind_production_deploys_not_staging_or_rollback() -> None:
    assert decide(config(ENTERPRISE), environment="staging").allowed
    sunday = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    assert decide(config(ENTERPRISE), "rollback", version=None, now=sunday).allowed


def test_no_refusal_invites_the_agent_to_approve() -> None:
    decisions = [
        enterprise(change_id=None, approval=None),
        enterprise(approval=None),
        decide(config("[policy]\nread_only = true\n")),
        decide(config(), strategy="recreate"),
    ]
    for decision in decisions:
        text = decision.refusal or ""
        assert "a person" in text.lower() or "person's" in text
        if "deploy-mcp approve" in text:
            assert "must not run" in text


# -- brownfield-polish -------------------------------------------------------------------------------------------


def test_polish_mode_gives_advice_that_never_blocks() -> None:
    decision = decide(config('mode = "brownfield-polish"\n'))
    assert decision.allowed
    flags = next(c for c in decision.checks if c.name == "flags-for-new-features")
    assert not flags.passed and not flags.blocking
    assert "[services.web.flag]" in flags.detail
    assert "/" in check(decision, "smoke-existing-functionality")


# -- the policy agrees with the plan -----------------------------------------------------------------------------


def test_every_blocking_plan_gate_that_can_fail_has_a_policy_check_of_the_same_name() -> None:
    cfg = config(ENTERPRISE)
    plan = build_plan(cfg, "web", "2.0.0", "production", current_version="1.0.0")
    checked = {c.name for c in enterprise().checks}
    enforced_elsewhere = {"production-confirmation"}  # the consent gate, not a policy check
    gates = {g.name for g in plan.gates if g.blocking and g.kind != "advice"} - enforced_elsewhere
    assert gates <= checked


# -- facts read from the ledger ---------------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    (tmp_path / "deploy.toml").write_text(ENTERPRISE + BASE, encoding="utf-8")
    loaded = App.load(tmp_path / "deploy.toml")
    yield loaded
    loaded.close()


def test_check_policy_reads_successes_rehearsals_and_approvals_from_the_ledger(app: App) -> None:
    def production_deploy() -> PolicyDecision:
        return check_policy(
            app,
            action="deploy",
            service="web",
            environment="production",
            version="2.0.0",
            change_id="CHG-7",
            now=THU_NOON,
        )

    first = production_deploy()
    assert {c.name for c in first.checks if not c.passed} == {"requires-staging", "change-approval", "rollback-tested"}

    ledger = app.ledger()
    ledger.create(service="web", version="2.0.0", environment="staging", strategy="rolling", status=Status.SUCCEEDED)
    bad = ledger.create(service="web", version="2.0.1", environment="staging", strategy="rolling")
    ledger.create(
        service="web",
        version="2.0.0",
        environment="staging",
        strategy="rolling",
        status=Status.SUCCEEDED,
        rollback_of=bad.id,
    )
    approve(app, "CHG-7", "web", "production", "change-board")
    assert production_deploy().allowed


def test_approve_validates_what_a_person_types(app: App) -> None:
    with pytest.raises(PlanError, match="known services: web"):
        approve(app, "CHG-1", "api", "production", "alice")
    with pytest.raises(PlanError, match="known environments: staging, production"):
        approve(app, "CHG-1", "web", "prod", "alice")
    with pytest.raises(Exception, match="change request"):
        approve(app, "  ", "web", "production", "alice")
    with pytest.raises(Exception, match="contains spaces"):
        approve(app, "CHG 1", "web", "production", "alice")
    with pytest.raises(Exception, match="--approved-by"):
        approve(app, "CHG-1", "web", "production", " ")
    with pytest.raises(Exception, match="--expires-in"):
        approve(app, "CHG-1", "web", "production", "alice", expires_in=0)
    made = approve(app, " CHG-1 ", "web", "production", "alice", expires_in=3600)
    assert made.change_id == "CHG-1" and made.expires_at is not None
    assert app.ledger().find_approval("CHG-1", "web", "production") == made
