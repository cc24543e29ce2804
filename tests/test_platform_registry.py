"""Which platform runs a service, and what an agent sees of it through the protocol.

A service's ``target`` names a driver module, ``deploy_mcp.targets.<kind>``, imported only when that service is
first used. These tests stand in for the Kubernetes driver with the in-memory fake platform in replica-ratio mode
(a Kubernetes Service with no traffic router), so plan_deployment, deploy and validate are exercised end to end
through MCP on a platform whose split is the replica count and which has no preview.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from registry_fixture import RegistryServer, registry  # noqa: F401 (fixture)

from deploy_mcp.app import App
from deploy_mcp.config.loader import Project
from deploy_mcp.core.target import ErrorCode, TargetError
from deploy_mcp.server.app import build_server
from deploy_mcp.targets.fake import FakePlatform, create_fake_platform
from deploy_mcp.targets.registry import Targets

DRIVER = "deploy_mcp.targets.kubernetes"
CONFIG = """\
[services.web]
target = "kubernetes"
image = "REGISTRY/web:{version}"
replicas = 4
health = "/health"
smoke = ["/health", "/", "!/nonexistent"]

[services.web.environments.staging]
strategy = "canary"
analysis = { interval = "100ms", bake = "300ms", min_requests = 5 }

[services.site]
command = ["{python}", "-m", "hello"]
[services.site.environments.staging]
"""


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    (tmp_path / "deploy.toml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


@pytest.fixture
def driver(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Project, str, FakePlatform]]]:
    """A stand-in ``deploy_mcp.targets.kubernetes`` whose create_platform hands out a replica-ratio fake."""
    made: list[tuple[Project, str, FakePlatform]] = []

    def create_platform(project: Project, service_name: str) -> FakePlatform:
        services = {name: list(svc.environments) for name, svc in project.config.services.items()}
        platform = create_fake_platform(exact_weights=False, preview=False, services=services)
        platform.metrics.requests_per_second = 2000.0  # type: ignore[union-attr]
        made.append((project, service_name, platform))
        return platform

    module = types.ModuleType(DRIVER)
    module.__spec__ = importlib.machinery.ModuleSpec(DRIVER, loader=None)
    module.create_platform = create_platform  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, DRIVER, module)
    yield made


def test_a_driver_that_is_not_built_is_refused_naming_the_field(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, DRIVER, None)  # as if the module did not exist
    app = App.load(project_dir / "deploy.toml")
    with pytest.raises(TargetError, match=r"services\.web\.target: the kubernetes target is not built yet") as caught:
        Targets(app.project)("web")
    assert caught.value.code is ErrorCode.UNAVAILABLE


def test_the_driver_module_is_imported_lazily_and_its_platform_kept_per_service(
    project_dir: Path, driver: list[tuple[Project, str, FakePlatform]]
) -> None:
    app = App.load(project_dir / "deploy.toml")
    targets = Targets(app.project)
    local = targets("site")
    assert local.kind == "local" and targets("site") is local
    assert driver == []  # the local service did not load the other driver
    web = targets("web")
    assert [(service, platform) for _, service, platform in driver] == [("web", web)]
    assert driver[0][0] is app.project
    assert targets("web") is web  # created once


@pytest.mark.anyio
async def test_plan_deploy_and_validate_through_mcp_on_a_platform_without_a_router(
    project_dir: Path,
    driver: list[tuple[Project, str, FakePlatform]],
    registry: RegistryServer,  # noqa: F811 (the fixture)
) -> None:
    """The release's image is in a real registry (preflight looks it up); the platform is the stand-in driver."""
    toml = project_dir / "deploy.toml"
    toml.write_text(CONFIG.replace("REGISTRY", registry.address), encoding="utf-8")
    registry.push("web", "2.0.0")
    app = App.load(toml)
    platform = app.platform("web")
    assert isinstance(platform, FakePlatform)
    seed = platform.workload
    from deploy_mcp.core.target import Release

    seed.start_version("web", "staging", Release(service="web", version="1.0.0"), 4)
    try:
        async with Client(build_server(app)) as client:
            arguments: dict[str, Any] = {"service": "web", "version": "2.0.0", "environment": "staging"}
            planned = await client.call_tool("plan_deployment", arguments)
            assert not planned.is_error, planned.content
            plan = planned.structured_content
            assert plan["capabilities"] == {"exact_weights": False, "preview": False}
            shifts = [s for s in plan["steps"] if s["action"] == "set_weights"]
            assert [s["weights"]["2.0.0"] for s in shifts] == [25, 50, 100]
            assert "5% requested, 25% possible with 4 replicas (1 instance)" in shifts[0]["description"]
            assert any("no traffic router" in w for w in plan["warnings"])

            started = await client.call_tool("deploy", {**arguments, "wait_seconds": 20})
            assert not started.is_error, started.content
            view = started.structured_content
            for _ in range(200):
                if view["record"]["status"] not in ("pending", "in_progress"):
                    break
                await anyio.sleep(0.1)
                status = await client.call_tool("deployment_status", {"deployment_id": view["record"]["id"]})
                view = status.structured_content
            record = view["record"]
            assert record["status"] == "succeeded", record["reason"]
            applied = [c[1] for c in platform.calls if c[0] == "set_weights"]
            assert applied == [
                '{"1.0.0": 75, "2.0.0": 25}',
                '{"1.0.0": 50, "2.0.0": 50}',
                '{"1.0.0": 0, "2.0.0": 100}',
            ], "what ran is what the plan showed"

            validated = await client.call_tool("validate", {"service": "web", "environment": "staging"})
            assert not validated.is_error, validated.content
            report = validated.structured_content
            assert report["verdict"] == "pass", report["reasons"]
            assert report["smoke"]["passed"] and report["smoke"]["base_url"] == "http://web.staging.fake"
            assert report["health"]["healthy"] and report["health"]["total"] == 4
    finally:
        app.close()
