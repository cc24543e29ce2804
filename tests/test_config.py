"""deploy.toml: discovery, defaults, and an error for every kind of mistake that names the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy_mcp.config.loader import ConfigError, discover, load_project, parse_config
from deploy_mcp.config.schema import Mode, StrategyName, parse_duration
from deploy_mcp.config.starter import starter_config


def error_for(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return str(caught.value)


def test_sample_config_loads_with_defaults(project_dir: Path) -> None:
    project = load_project(project_dir / "deploy.toml")
    config = project.config
    assert project.state_dir == project_dir / ".deploy"
    assert config.mode is Mode.GREENFIELD
    production = config.services["web"].environments["production"]
    assert production.strategy is StrategyName.CANARY
    assert production.analysis.interval == 30 and production.analysis.bake == 120
    assert production.analysis.consecutive_error_limit == 4
    assert config.services["web"].versions["3.0.0"].env == {"ERROR_RATE": "0.3"}
    assert config.is_production("web", "production") and not config.is_production("web", "staging")


def test_one_service_calling_its_production_a_sandbox_leaves_the_others_in_production(tmp_path: Path) -> None:
    (tmp_path / "deploy.toml").write_text(
        """
[services.sandbox]
command = ["./sandbox", "--port", "{port}"]
[services.sandbox.environments.production]
production = false

[services.shop]
command = ["./shop", "--port", "{port}"]
[services.shop.environments.production]

[services.shop.environments.live]
production = true

[services.sandbox.environments.live]
""",
        "utf-8",
    )
    config = load_project(tmp_path / "deploy.toml").config
    assert not config.is_production("sandbox", "production")
    assert config.is_production("shop", "production")  # confirmation, windows and approvals still apply to it
    assert config.is_production("shop", "live") and not config.is_production("sandbox", "live")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[services.web.environments.production]\nstrategy = "canery"',
            "services.web.environments.production.strategy: 'canery' is not one of rolling, blue-green, canary, "
            "recreate, feature-flag",
        ),
        ('[services.web]\ncomand = ["x"]', "services.web.comand: unknown key in services.web; allowed keys: target"),
        ("stratgy = 1", "stratgy: unknown key in the top level"),
        ('mode = "yolo"', "mode: 'yolo' is not one of greenfield, brownfield-polish, brownfield-enterprise"),
        ("[thresholds]\nerror_rate = { warn = 0.1, critical = 0.05 }", "critical (0.05) must be at least warn (0.1)"),
        ("[thresholds]\nerror_rate = { warn = 1, critical = 5 }", "fractions between 0 and 1"),
        ('[services.web.environments.p]\nanalysis = { bake = "2 fortnights" }', "analysis.bake: '2 fortnights' is not"),
        ("[services.web]\nreplicas = 0", "services.web.replicas: 0 is out of range"),
        ("[services.web.environments.p]\nsteps = [50, 25]", "steps must increase"),
        ("[services.web]\nsmoke = ['health']", "must be a path starting with '/'"),
        ('[services.web.environments.production]\nrequires = ["stagin"]', "'stagin' is not an environment of web"),
        ("[services.web.environments.p]\nmax_surge = 0", "cannot both be 0"),
        ('[[policy.deploy_windows]]\nstart = "25:00"', "policy.deploy_windows.0.start: '25:00' is not a time of day"),
        ("[services.web]\nreplicas = 'three'", "services.web.replicas"),
        ("mode = ", "not valid TOML"),
    ],
)
def test_each_kind_of_mistake_names_the_key(text: str, expected: str) -> None:
    assert expected in error_for(text)


def test_steps_always_end_at_full_traffic() -> None:
    config = parse_config('[services.web]\ncommand = ["./web"]\n[services.web.environments.p]\nsteps = [10, 50]')
    assert config.services["web"].environments["p"].steps == [10, 50, 100]


def test_durations() -> None:
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2m") == 120
    assert parse_duration("1h") == 3600
    assert parse_duration(15) == 15
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_thresholds_layer_global_service_environment() -> None:
    config = parse_config(
        """
        [thresholds]
        error_rate = { warn = 0.02, critical = 0.1 }
        [services.web]
        command = ["./web"]
        [services.web.thresholds]
        latency_p95_ms = { warn = 300, critical = 900 }
        [services.web.environments.production.thresholds]
        error_rate = { warn = 0.001, critical = 0.01 }
        [services.web.environments.staging]
        """
    )
    prod = config.thresholds_for("web", "production")
    staging = config.thresholds_for("web", "staging")
    assert (prod.error_rate.warn, prod.latency_p95_ms.critical) == (0.001, 900)
    assert (staging.error_rate.warn, staging.latency_p95_ms.warn) == (0.02, 300)


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outer = tmp_path / "repo"
    nested = outer / "src" / "pkg"
    nested.mkdir(parents=True)
    (outer / "deploy.toml").write_text('mode = "greenfield"\n')
    other = tmp_path / "other.toml"
    other.write_text('mode = "brownfield-polish"\n')
    monkeypatch.delenv("DEPLOY_MCP_CONFIG", raising=False)

    assert discover(start=nested) == (outer / "deploy.toml").resolve()
    monkeypatch.setenv("DEPLOY_MCP_CONFIG", str(other))
    assert discover(start=nested) == other.resolve()
    explicit = tmp_path / "explicit.toml"
    explicit.write_text("")
    assert discover(explicit, start=nested) == explicit.resolve()
    monkeypatch.setenv("DEPLOY_MCP_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"DEPLOY_MCP_CONFIG points to .*missing\.toml"):
        discover(start=nested)


def test_no_config_is_an_empty_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPLOY_MCP_CONFIG", raising=False)
    project = load_project(start=tmp_path)
    assert not project.configured
    assert project.config.services == {}


def test_starter_config_is_valid_and_explained() -> None:
    text = starter_config("shop", "api")
    config = parse_config(text)
    assert set(config.services["api"].environments) == {"staging", "production"}
    assert text.count("#") > 15


def test_a_local_service_without_a_command_is_refused_when_deploy_toml_loads() -> None:
    message = error_for("[services.api]\nreplicas = 2\n[services.api.environments.staging]\n")
    assert "services.api.command: required key is missing" in message
    assert 'command = ["{python}", "-m", "myapp", "--port", "{port}"]' in message, "the fix, ready to paste"
    assert 'target = "kubernetes"' in message
    kubernetes = parse_config('[services.api]\ntarget = "kubernetes"\nimage = "registry.example/api"\n')
    assert kubernetes.services["api"].command is None, "other platforms run an image, not a command"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[services."bad name!"]\ncommand = ["x"]', 'services."bad name!": a service name may hold only letters'),
        ('[services."bad name!"]\ncommand = ["x"]', "rename it, e.g. services.bad-name"),
        ('[services."../etc"]\ncommand = ["x"]', 'services."../etc": a service name'),
        ('[services."-web"]\ncommand = ["x"]', "start with a letter or digit"),
    ],
)
def test_a_service_name_that_cannot_be_used_everywhere_is_refused(text: str, expected: str) -> None:
    assert expected in error_for(text)


def test_service_names_in_use_stay_valid() -> None:
    text = "".join(f'[services."{name}"]\ncommand = ["x"]\n' for name in ("web", "deploy-mcp", "api_v2", "docs.site"))
    assert list(parse_config(text).services) == ["web", "deploy-mcp", "api_v2", "docs.site"]


def test_a_missing_config_file_is_reported_as_not_found_not_invalid(tmp_path: Path) -> None:
    from deploy_mcp.app import App
    from deploy_mcp.errors import UserError
    from deploy_mcp.tools.history import deployment_history

    missing = tmp_path / "nope.toml"
    with pytest.raises(UserError) as caught:
        deployment_history(App.load(missing))  # what `deploy-mcp --config nope.toml history` runs
    message = str(caught.value)
    assert message.startswith("deploy.toml not found: --config points to ")
    assert str(missing) in message and "invalid" not in message
    assert f"deploy-mcp --config {missing} init" in message

    (tmp_path / "deploy.toml").write_text('mode = "yolo"\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"^deploy.toml is invalid, fix it first: .*mode: 'yolo'"):
        deployment_history(App.load(tmp_path / "deploy.toml"))


def test_an_env_value_is_not_echoed_in_a_config_error() -> None:
    message = error_for('[services.web]\ncommand = ["x"]\nenv = { DB_PASS = 904511 }\n')
    assert "services.web.env.DB_PASS" in message
    assert "904511" not in message


def test_a_command_given_only_per_version_counts(tmp_path: Path) -> None:
    (tmp_path / "deploy.toml").write_text(
        """
[services.web.versions."1.0.0"]
command = ["./web-1", "--port", "{port}"]

[services.web.environments.staging]
""",
        "utf-8",
    )
    config = load_project(tmp_path / "deploy.toml").config
    assert config.services["web"].versions["1.0.0"].command == ["./web-1", "--port", "{port}"]
