"""Plans and recommendations, built from deploy.toml text the way a user writes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from deploy_mcp.app import App
from deploy_mcp.config.loader import parse_config
from deploy_mcp.config.schema import DeployConfig, StrategyName
from deploy_mcp.core.plans import START_ALLOWANCE_SECONDS, CheckVia, Plan, PlanError, PlanStep, build_plan
from deploy_mcp.core.platform import EXACT, RouterCapabilities, replica_split
from deploy_mcp.core.recommend import recommend_strategy
from deploy_mcp.server.app import build_server

BASE = """
[services.web]
command = ["python", "-m", "examples.hello", "--port", "{port}"]
replicas = 4
health = "/health"
smoke = ["/health", "/", "!/nonexistent"]

[services.web.environments.staging]
strategy = "rolling"

[services.web.environments.production]
strategy = "canary"
requires = ["staging"]

[services.api]
command = ["python", "-m", "examples.hello", "--port", "{port}"]
replicas = 2
[services.api.environments.staging]
"""


def config(extra: str = "", *, head: str = "", base: str = BASE) -> DeployConfig:
    return parse_config(head + base + extra)


def actions(plan: Plan) -> list[str]:
    return [step.action for step in plan.steps]


def of(plan: Plan, action: str) -> list[PlanStep]:
    return [step for step in plan.steps if step.action == action]


def simulate(plan: Plan) -> list[dict[str, int]]:
    """Instances per version after every step, as a platform would hold them."""
    running: dict[str, int] = {plan.current_version: plan.replicas} if plan.current_version else {}
    states = []
    for step in plan.steps:
        if step.action in ("start", "scale"):
            running[step.version] = step.replicas
        elif step.action == "stop":
            running.pop(step.version)
        states.append(dict(running))
    return states


# -- canary ------------------------------------------------------------------------------------------------------


def test_canary_ramps_5_25_50_100_by_default_and_keeps_the_old_version_until_the_end() -> None:
    plan = build_plan(config(), "web", "2.0.0", "production", current_version="1.0.0")

    assert plan.strategy == StrategyName.CANARY and plan.chosen_by == "configured"
    weights = [step.weights for step in of(plan, "set_weights")]
    assert weights == [
        {"1.0.0": 95, "2.0.0": 5},
        {"1.0.0": 75, "2.0.0": 25},
        {"1.0.0": 50, "2.0.0": 50},
        {"1.0.0": 0, "2.0.0": 100},
    ]
    # every weight change is judged before the next one
    for step in of(plan, "set_weights"):
        assert plan.steps[step.index].action == "analyze"  # index counts from 1: this is the next step
    # canary size: ceil(4 * w / 100), at least 1, full size at 100
    sizes = [step.replicas for step in plan.steps if step.action in ("start", "scale")]
    assert sizes == [1, 2, 4]
    # the new version is checked directly before it takes any traffic
    assert actions(plan).index("check") < actions(plan).index("set_weights")
    # the old version runs at full size right up to the last step
    states = simulate(plan)
    assert all(state["1.0.0"] == 4 for state in states[:-1])
    assert plan.steps[-1].action == "stop" and plan.steps[-1].version == "1.0.0"
    assert "weight goes to 0" in plan.rollback and "started again at full size" in plan.rollback
    assert any("baseline" in check for check in plan.checks)


def test_canary_custom_steps_gain_a_final_100() -> None:
    cfg = config(
        base=BASE.replace('requires = ["staging"]', 'requires = ["staging"]\nsteps = [10, 50]'),
    )
    plan = build_plan(cfg, "web", "2.0.0", "production", current_version="1.0.0")

    assert [step.weights["2.0.0"] for step in of(plan, "set_weights")] == [10, 50, 100]
    assert len(of(plan, "analyze")) == 3


def test_canary_with_one_replica_still_gets_one_instance() -> None:
    cfg = config(base=BASE.replace("replicas = 4", "replicas = 1"))
    plan = build_plan(cfg, "web", "2.0.0", "production", current_version="1.0.0")

    assert of(plan, "start")[0].replicas == 1
    assert of(plan, "scale") == []


def test_canary_estimate_is_bake_times_plus_start_allowance() -> None:
    cfg = config(
        base=BASE.replace(
            'requires = ["staging"]',
            'requires = ["staging"]\nsteps = [25, 50, 75, 100]\nanalysis = { interval = "1m", bake = "1m" }',
        )
    )
    plan = build_plan(cfg, "web", "2.0.0", "production", current_version="1.0.0")

    # Flagger's time to promote: interval x maxWeight / stepWeight = 60 x 100 / 25
    assert plan.estimated_duration_seconds >= 60 * 100 / 25
    assert plan.estimated_duration_seconds == 4 * 60 + START_ALLOWANCE_SECONDS * len(of(plan, "wait_ready"))
    assert plan.expected_downtime_seconds == 0


def test_first_deployment_degrades_canary_and_says_so() -> None:
    plan = build_plan(config(), "web", "1.0.0", "production")

    assert actions(plan) == ["start", "wait_ready", "check", "set_weights", "analyze"]
    assert plan.steps[0].replicas == 4
    assert plan.steps[3].weights == {"1.0.0": 100}
    assert any("first deployment" in warning for warning in plan.warnings)
    assert "no previous version" in plan.rollback


# -- what the platform's router can do ------------------------------------------------------------------------------

REPLICA_RATIOS = RouterCapabilities(exact_weights=False, preview=False)
"""Kubernetes with no traffic router: the stable Service selects every version's pods."""


def test_with_exact_weights_the_plan_asks_for_5_95_and_says_nothing_about_replicas() -> None:
    plan = build_plan(config(), "web", "2.0.0", "production", current_version="1.0.0", capabilities=EXACT)

    assert of(plan, "set_weights")[0].weights == {"1.0.0": 95, "2.0.0": 5}
    assert plan.capabilities == EXACT
    assert not any("traffic router" in warning for warning in plan.warnings)
    assert all(step.via is None for step in of(plan, "check"))


def test_without_a_router_a_canary_shows_the_split_the_replica_count_can_make() -> None:
    plan = build_plan(config(), "web", "2.0.0", "production", current_version="1.0.0", capabilities=REPLICA_RATIOS)

    # 4 replicas: 1 pod is 25%, so 5% becomes 25% and the 25% step, the same split, is left out
    weights = [step.weights for step in of(plan, "set_weights")]
    assert weights == [{"1.0.0": 75, "2.0.0": 25}, {"1.0.0": 50, "2.0.0": 50}, {"1.0.0": 0, "2.0.0": 100}]
    first = of(plan, "set_weights")[0]
    assert "5% requested, 25% possible with 4 replicas (1 instance)" in first.description
    assert "5% requested, 25% possible with 4 replicas (1 instance)" in of(plan, "start")[0].description
    # the service keeps its size: the old version shrinks as the canary grows, and every split is a real ratio
    for state, step in zip(simulate(plan), plan.steps, strict=True):
        if step.action == "set_weights":
            assert step.weights is not None
            share = step.weights["2.0.0"]
            if share < 100:
                assert state["2.0.0"] + state["1.0.0"] == 4
                assert share == round(100 * state["2.0.0"] / 4)
    warning = next(w for w in plan.warnings if "no traffic router" in w)
    assert "25% requested: left out, since with 4 replicas it is 25% again, the step before" in warning
    assert "scaled back to full size" in plan.rollback
    assert len(of(plan, "analyze")) == 3


def test_replica_splits_round_up_keep_one_stable_instance_and_run_beside_a_single_one() -> None:
    assert (replica_split(5, 4).new, replica_split(5, 4).share) == (1, 25)
    assert (replica_split(50, 4).new, replica_split(50, 4).old) == (2, 2)
    assert (replica_split(95, 4).new, replica_split(95, 4).old, replica_split(95, 4).share) == (3, 1, 75)
    assert (replica_split(5, 1).new, replica_split(5, 1).old, replica_split(5, 1).share) == (1, 1, 50)
    assert replica_split(10, 10).exact and not replica_split(5, 10).exact


def test_without_a_preview_blue_green_probes_instances_first_and_smoke_tests_after_the_switch() -> None:
    plan = build_plan(
        config(), "web", "2.0.0", "production", "blue-green", current_version="1.0.0", capabilities=REPLICA_RATIOS
    )

    assert actions(plan) == ["start", "wait_ready", "check", "set_weights", "check", "analyze", "pause", "stop"]
    before, after = of(plan, "check")
    assert before.via is CheckVia.INSTANCES and "health of every instance" in before.description
    assert after.via is CheckVia.SERVICE and "through the service" in after.description
    assert after.index == of(plan, "set_weights")[0].index + 1  # checked before the old side is let go
    assert any(
        "no preview" in warning and "smoke tests run through the service" in warning for warning in plan.warnings
    )


def test_the_plan_with_capabilities_round_trips_as_json() -> None:
    plan = build_plan(config(), "web", "2.0.0", "production", current_version="1.0.0", capabilities=REPLICA_RATIOS)
    assert Plan.model_validate_json(plan.model_dump_json()) == plan


# -- rolling -----------------------------------------------------------------------------------------------------


def test_rolling_defaults_replace_one_instance_at_a_time_without_losing_capacity() -> None:
    plan = build_plan(config(), "web", "2.0.0", "staging", current_version="1.0.0")

    assert plan.strategy == StrategyName.ROLLING
    states = simulate(plan)
    assert max(sum(state.values()) for state in states) == 4 + 1  # max_surge 1
    # capacity never drops below 4 once the new instances are ready (max_unavailable 0)
    ready = [state for step, state in zip(plan.steps, states, strict=True) if step.action != "start"]
    assert min(sum(state.values()) for state in ready) >= 4
    assert len(of(plan, "analyze")) == 4  # one per batch
    assert states[-1] == {"2.0.0": 4}


def test_rolling_with_surge_2_uses_batches_of_two() -> None:
    cfg = config(base=BASE.replace('strategy = "rolling"', 'strategy = "rolling"\nmax_surge = 2\nreplicas = 5'))
    plan = build_plan(cfg, "web", "2.0.0", "staging", current_version="1.0.0")

    new_counts = [step.replicas for step in plan.steps if step.action in ("start", "scale") and step.version == "2.0.0"]
    assert new_counts == [2, 4, 5]
    assert len(of(plan, "analyze")) == 3
    states = simulate(plan)
    assert max(sum(state.values()) for state in states) <= 5 + 2
    assert states[-1] == {"2.0.0": 5}
    assert "Not batch by batch" in plan.rollback and "all traffic at once" in plan.rollback


def test_rolling_with_max_unavailable_takes_old_instances_out_first() -> None:
    cfg = config(base=BASE.replace('strategy = "rolling"', 'strategy = "rolling"\nmax_surge = 0\nmax_unavailable = 1'))
    plan = build_plan(cfg, "web", "2.0.0", "staging", current_version="1.0.0")

    assert plan.steps[0].action == "scale" and plan.steps[0].version == "1.0.0" and plan.steps[0].replicas == 3
    states = simulate(plan)
    assert max(sum(state.values()) for state in states) == 4
    assert min(sum(state.values()) for state in states) >= 3
    assert states[-1] == {"2.0.0": 4}


# -- blue-green --------------------------------------------------------------------------------------------------


def test_blue_green_switches_once_and_keeps_the_old_side_warm_for_the_scale_down_delay() -> None:
    cfg = config(base=BASE.replace('requires = ["staging"]', 'requires = ["staging"]\nscale_down_delay = "45s"'))
    plan = build_plan(cfg, "web", "2.0.0", "production", "blue-green", current_version="1.0.0")

    assert plan.chosen_by == "requested"
    assert actions(plan) == ["start", "wait_ready", "check", "set_weights", "analyze", "pause", "stop"]
    assert plan.steps[0].replicas == 4 and plan.steps[0].version == "2.0.0"
    assert plan.steps[3].weights == {"1.0.0": 0, "2.0.0": 100}
    assert plan.steps[5].seconds == 45
    assert plan.steps[6].version == "1.0.0"
    assert "switch" in plan.rollback.lower() and "45 s" in plan.rollback


# -- recreate ----------------------------------------------------------------------------------------------------


def test_recreate_states_its_downtime_and_is_refused_in_production_by_default() -> None:
    staging = build_plan(config(), "web", "2.0.0", "staging", "recreate", current_version="1.0.0")
    assert actions(staging) == ["stop", "start", "wait_ready", "analyze"]
    assert staging.expected_downtime_seconds > 0
    assert any("downtime" in warning for warning in staging.warnings)

    production = build_plan(config(), "web", "2.0.0", "production", "recreate", current_version="1.0.0")
    refused = [gate for gate in production.gates if gate.name == "recreate-in-production"]
    assert refused and refused[0].blocking and refused[0].kind == "refusal"
    assert "allow_recreate_in_production" in refused[0].description


def test_recreate_allowed_in_production_becomes_a_downtime_gate() -> None:
    cfg = config(head="[policy]\nallow_recreate_in_production = true\n")
    plan = build_plan(cfg, "web", "2.0.0", "production", "recreate", current_version="1.0.0")

    gate = next(gate for gate in plan.gates if gate.kind == "downtime")
    assert gate.blocking and f"{plan.expected_downtime_seconds:g} s" in gate.description
    assert not any(gate.name == "recreate-in-production" for gate in plan.gates)


# -- feature flag ------------------------------------------------------------------------------------------------


def test_feature_flag_ships_dark_then_ramps_the_flag() -> None:
    cfg = config('\n[services.web.flag]\nname = "new-checkout"\n')
    plan = build_plan(cfg, "web", "2.0.0", "production", "feature-flag", current_version="1.0.0")

    assert plan.steps[0].action == "flag" and plan.steps[0].percentage == 0
    assert actions(plan).index("flag") < actions(plan).index("start")
    dark = of(plan, "set_weights")
    assert dark == [of(plan, "set_weights")[0]] and dark[0].weights == {"1.0.0": 0, "2.0.0": 100}
    ramp = [step.percentage for step in of(plan, "flag")][1:]
    assert ramp == [5, 25, 50, 100]
    for step in of(plan, "flag")[1:]:
        assert plan.steps[step.index].action == "analyze"
    assert "new-checkout" in plan.rollback and "off" in plan.rollback
    assert any(gate.name == "flag-cleanup" and not gate.blocking for gate in plan.gates)


def test_feature_flag_without_a_flag_is_a_clear_error() -> None:
    with pytest.raises(PlanError, match=r"\[services\.web\.flag\]"):
        build_plan(config(), "web", "2.0.0", "production", "feature-flag", current_version="1.0.0")


# -- recommendation ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service_lines", "breaking", "expected", "rule"),
    [
        ("", True, StrategyName.BLUE_GREEN, "migration window"),
        ("requests_per_second = 1500", True, StrategyName.BLUE_GREEN, "not backward compatible"),
        ("requests_per_second = 1500", False, StrategyName.CANARY, "1000 requests/s"),
        ("requests_per_second = 1000", False, StrategyName.ROLLING, "default rule"),
        ("instant_rollback_critical = true", False, StrategyName.BLUE_GREEN, "instant rollback critical"),
        (
            'instant_rollback_critical = true\nflag = { name = "f" }',
            False,
            StrategyName.FEATURE_FLAG,
            "instant rollback critical",
        ),
        ("", False, StrategyName.ROLLING, "default rule"),
    ],
)
def test_recommendation_follows_the_decision_flow(
    service_lines: str, breaking: bool, expected: StrategyName, rule: str
) -> None:
    cfg = config(base=BASE.replace("replicas = 4\n", f"replicas = 4\n{service_lines}\n", 1))
    recommendation = recommend_strategy(cfg, "web", "production", breaking_schema_change=breaking)

    assert recommendation.strategy == expected
    assert rule in recommendation.reason and recommendation.reason.endswith(".")
    assert expected not in recommendation.alternatives
    assert StrategyName.RECREATE not in recommendation.alternatives


def test_recreate_is_only_ever_an_alternative_outside_production() -> None:
    cfg = config()
    assert StrategyName.RECREATE in recommend_strategy(cfg, "web", "staging").alternatives
    assert StrategyName.RECREATE not in recommend_strategy(cfg, "web", "production").alternatives


def test_enterprise_mode_recommends_canary_for_production_unless_the_schema_breaks() -> None:
    cfg = config(head='mode = "brownfield-enterprise"\n')

    production = recommend_strategy(cfg, "web", "production")
    assert production.strategy == StrategyName.CANARY and "surgical" in production.reason
    assert recommend_strategy(cfg, "web", "staging").strategy == StrategyName.ROLLING
    schema = recommend_strategy(cfg, "web", "production", breaking_schema_change=True)
    assert schema.strategy == StrategyName.BLUE_GREEN


def test_strategy_comes_from_the_argument_then_the_config_then_the_recommendation() -> None:
    cfg = config("\n[services.api.environments.production]\n", base=BASE.replace("replicas = 4\n", "replicas = 4\n"))
    assert build_plan(cfg, "web", "2", "production", "rolling", current_version="1").chosen_by == "requested"
    assert build_plan(cfg, "web", "2", "production", current_version="1").chosen_by == "configured"
    recommended = build_plan(cfg, "api", "2", "production", current_version="1")
    assert recommended.chosen_by == "recommended"
    assert recommended.strategy == recommended.recommendation.strategy == StrategyName.ROLLING


def test_choosing_a_riskier_strategy_than_recommended_is_a_warning() -> None:
    cfg = config(base=BASE.replace("replicas = 4\n", "replicas = 4\nrequests_per_second = 5000\n", 1))
    plan = build_plan(cfg, "web", "2.0.0", "staging", "rolling", current_version="1.0.0")

    assert plan.recommendation.strategy == StrategyName.CANARY
    assert any("riskier" in warning and "canary" in warning for warning in plan.warnings)
    safer = build_plan(cfg, "web", "2.0.0", "staging", "blue-green", current_version="1.0.0")
    assert not any("riskier" in warning for warning in safer.warnings)


# -- gates -------------------------------------------------------------------------------------------------------


def gate_names(plan: Plan) -> set[str]:
    return {gate.name for gate in plan.gates}


def test_greenfield_production_needs_confirmation_and_staging_first() -> None:
    plan = build_plan(config(), "web", "2.0.0", "production", current_version="1.0.0")

    assert plan.production
    assert gate_names(plan) == {"production-confirmation", "requires-staging"}
    assert all(gate.blocking for gate in plan.gates)
    staging = build_plan(config(), "web", "2.0.0", "staging", current_version="1.0.0")
    assert staging.gates == []


def test_read_only_and_allowlist_refuse() -> None:
    cfg = config(head='[policy]\nread_only = true\nallowed_environments = ["staging"]\n')
    plan = build_plan(cfg, "web", "2.0.0", "production", current_version="1.0.0")

    refusals = {gate.name for gate in plan.gates if gate.kind == "refusal"}
    assert refusals == {"read-only", "environment-allowlist"}
    assert "read-only" in gate_names(build_plan(cfg, "web", "2.0.0", "staging", current_version="1.0.0"))
    assert "environment-allowlist" not in gate_names(
        build_plan(cfg, "web", "2.0.0", "staging", current_version="1.0.0")
    )


def test_enterprise_production_needs_approval_window_tested_rollback_and_a_human_pause() -> None:
    head = (
        'mode = "brownfield-enterprise"\n[policy]\non_call = "alice"\n'
        '[[policy.deploy_windows]]\ndays = ["tue", "wed"]\nstart = "10:00"\nend = "14:00"\n'
    )
    plan = build_plan(config(head=head), "web", "2.0.0", "production", current_version="1.0.0")

    assert {"change-approval", "deploy-window", "rollback-tested", "on-call"} <= gate_names(plan)
    window = next(gate for gate in plan.gates if gate.name == "deploy-window")
    assert "tue, wed 10:00-14:00 UTC" in window.description
    assert "staging" in next(gate for gate in plan.gates if gate.name == "rollback-tested").description
    assert "alice" in next(gate for gate in plan.gates if gate.name == "on-call").description
    assert any("4 h" in check for check in plan.checks)
    # a human decides before the last shift to 100%
    human = [step for step in of(plan, "pause") if step.seconds is None]
    assert len(human) == 1
    last_weights = of(plan, "set_weights")[-1]
    assert human[0].index < last_weights.index and last_weights.weights["2.0.0"] == 100
    assert any("excludes" in warning for warning in plan.warnings)

    staging = build_plan(config(head=head), "web", "2.0.0", "staging", current_version="1.0.0")
    assert staging.gates == [] and of(staging, "pause") == []


def test_enterprise_without_a_window_says_how_to_add_one() -> None:
    plan = build_plan(
        config(head='mode = "brownfield-enterprise"\n'), "web", "2.0.0", "production", current_version="1"
    )
    window = next(gate for gate in plan.gates if gate.name == "deploy-window")
    assert window.blocking and "policy.deploy_windows" in window.description


def test_brownfield_polish_advises_flags_without_blocking() -> None:
    plan = build_plan(config(head='mode = "brownfield-polish"\n'), "web", "2.0.0", "staging", current_version="1")

    advice = [gate for gate in plan.gates if gate.kind == "advice"]
    assert {gate.name for gate in advice} == {"flags-for-new-features", "no-breaking-api-changes"}
    assert not any(gate.blocking for gate in advice)


def test_production_without_a_staging_requirement_is_warned() -> None:
    cfg = config(base=BASE.replace('requires = ["staging"]\n', ""))
    plan = build_plan(cfg, "web", "2.0.0", "production", current_version="1.0.0")
    assert any("requires = ['staging']" in warning for warning in plan.warnings)


# -- checks, thresholds, warnings --------------------------------------------------------------------------------


def test_checks_and_thresholds_are_the_effective_ones() -> None:
    cfg = config(
        "\n[services.web.environments.production.thresholds]\nerror_rate = { warn = 0.005, critical = 0.02 }\n",
        head="[thresholds]\nlatency_p95_ms = { warn = 300, critical = 900 }\n",
    )
    plan = build_plan(cfg, "web", "2.0.0", "production", current_version="1.0.0")

    assert plan.thresholds.error_rate.critical == 0.02 and plan.thresholds.latency_p95_ms.warn == 300
    assert "health: GET /health on every new instance answers 200 with status ok or healthy" in plan.checks
    assert "smoke: GET /nonexistent answers 404" in plan.checks
    assert any("error rate: warn above 0.5%" in check and "critical above 2%" in check for check in plan.checks)
    assert any("latency p95: warn above 300 ms" in check for check in plan.checks)
    assert plan.analysis.min_requests == 50


def test_too_little_traffic_for_the_minimum_sample_is_warned() -> None:
    cfg = config(base=BASE.replace("replicas = 4\n", "replicas = 4\nrequests_per_second = 10\n", 1))
    plan = build_plan(cfg, "web", "2.0.0", "production", current_version="1.0.0")

    warning = next(warning for warning in plan.warnings if "min_requests" in warning)
    first_analysis = of(plan, "analyze")[0].index
    assert f"step {first_analysis} (~15)" in warning  # 10 req/s x 5% x 30 s


def test_irreversible_migrations_mean_fix_forward() -> None:
    cfg = config('\n[services.web.versions."2.0.0"]\nmigrations_irreversible = true\n')
    plan = build_plan(cfg, "web", "2.0.0", "production", current_version="1.0.0")
    assert plan.rollback.startswith("Fix forward")
    assert any("fix forward" in warning for warning in plan.warnings)


@pytest.mark.anyio
async def test_plan_deployment_recommends_blue_green_for_a_release_declared_irreversible(tmp_path: Path) -> None:
    """The decision flow's first rule, through the tool an agent calls: a release whose migrations the old version
    cannot run against is recommended blue-green, and no reason calls a schema change compatible unasked."""
    toml = BASE + '\n[services.api.versions."2.0.0"]\nmigrations_irreversible = true\n'
    (tmp_path / "deploy.toml").write_text(toml, encoding="utf-8")
    app = App.load(tmp_path / "deploy.toml")
    try:
        async with Client(build_server(app)) as client:
            plans = {}
            for version in ("2.0.0", "2.1.0"):
                arguments = {"service": "api", "version": version, "environment": "staging"}
                result = await client.call_tool("plan_deployment", arguments)
                assert not result.is_error, result.content
                plans[version] = result.structured_content
    finally:
        app.close()
    breaking, plain = plans["2.0.0"], plans["2.1.0"]
    assert breaking["strategy"] == "blue-green" and breaking["chosen_by"] == "recommended"
    assert "not backward compatible" in breaking["recommendation"]["reason"]
    assert "migration window" in breaking["recommendation"]["reason"]
    assert plain["strategy"] == "rolling"
    assert "backward compatible" not in plain["recommendation"]["reason"]
    assert "no breaking schema change is declared" in plain["recommendation"]["reason"]


def test_a_configured_strategy_over_a_declared_irreversible_release_is_called_riskier() -> None:
    cfg = config('\n[services.web.versions."2.0.0"]\nmigrations_irreversible = true\n')
    plan = build_plan(cfg, "web", "2.0.0", "staging", current_version="1.0.0")  # staging says rolling
    assert plan.strategy == StrategyName.ROLLING and plan.recommendation.strategy == StrategyName.BLUE_GREEN
    assert any("riskier" in warning and "not backward compatible" in warning for warning in plan.warnings)


def test_the_canary_step_at_100_percent_claims_no_baseline() -> None:
    """The runner compares with the old version only while it takes traffic (and compare_baseline is on)."""
    plan = build_plan(config(), "web", "2.0.0", "production", current_version="1.0.0")
    analyses = [step.description for step in of(plan, "analyze")]
    assert all("against 1.0.0 as the baseline" in text for text in analyses[:-1])
    assert "at 100% of traffic against the thresholds alone" in analyses[-1]
    assert "as the baseline" not in analyses[-1]

    off = config(
        base=BASE.replace('strategy = "canary"\n', 'strategy = "canary"\nanalysis = { compare_baseline = false }\n')
    )
    plan = build_plan(off, "web", "2.0.0", "production", current_version="1.0.0")
    assert not any("as the baseline" in step.description for step in of(plan, "analyze"))


# -- errors ------------------------------------------------------------------------------------------------------


def test_unknown_names_are_clear_errors() -> None:
    cfg = config()
    with pytest.raises(PlanError, match=r"service 'webb' is not in deploy.toml; known services: api, web"):
        build_plan(cfg, "webb", "2.0.0", "production")
    with pytest.raises(PlanError, match=r"environment 'prod' .* known environments: staging, production"):
        build_plan(cfg, "web", "2.0.0", "prod")
    with pytest.raises(PlanError, match=r"strategy 'canery' .* allowed: rolling, blue-green, canary"):
        build_plan(cfg, "web", "2.0.0", "production", "canery")
    with pytest.raises(
        PlanError, match=r"environment 'production' is not configured for service 'api'; known environments: staging"
    ):
        recommend_strategy(cfg, "api", "production")
    with pytest.raises(PlanError, match="already the current version"):
        build_plan(cfg, "web", "1.0.0", "production", current_version="1.0.0")
    assert issubclass(PlanError, ValueError)


def test_a_service_without_environments_says_how_to_add_one() -> None:
    cfg = parse_config('[services.solo]\ncommand = ["python", "-m", "solo"]\n')
    with pytest.raises(PlanError, match=r"add a \[services\.solo\.environments\.staging\] section"):
        build_plan(cfg, "solo", "1.0.0", "staging")


def test_plan_round_trips_as_json() -> None:
    plan = build_plan(config(), "web", "2.0.0", "production", current_version="1.0.0")
    assert Plan.model_validate_json(plan.model_dump_json()) == plan
