"""The drivers the conformance suite runs against, one factory each: the only place a new driver is added.

A factory is a context manager taking the test's temporary folder and yielding a `Driver`: a fresh, empty platform
plus what the suite needs to exercise it (the service and environment to use, good releases, a release that
crashes at start) and whatever it must clean up afterwards. Add yours to ``DRIVERS``; every test in the suite then
runs against it. A factory that needs a component this machine may lack (a cluster, an emulator) calls
``require_component`` from tests/conftest.py first, so it skips on a laptop and fails under CI=true.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deploy_mcp.config.loader import Project, load_project
from deploy_mcp.core.platform import Platform
from deploy_mcp.core.target import Release


@dataclass
class Driver:
    """One driver under test, in a fresh environment where nothing runs yet."""

    name: str
    platform: Platform
    project: Project
    """A deploy.toml declaring the service and its environments, as the runner reads them."""
    service: str
    environment: str
    health_path: str
    release: Callable[[str], Release]
    """A good release of the given version."""
    crashing: Callable[[str], Release]
    """A release of the given version whose instances exit right after they start, every time."""
    other_environment: str | None = None
    """Another environment of the same service, to prove that environments are apart (None: not tested)."""
    unknown_environment: str = "no-such-environment"
    notes: dict[str, str] = field(default_factory=dict)


# -- the in-memory fake platform ----------------------------------------------------------------------------------


@contextlib.contextmanager
def fake_driver(folder: Path, *, exact_weights: bool, preview: bool) -> Iterator[Driver]:
    from deploy_mcp.targets.fake import create_fake_platform

    platform = create_fake_platform(
        exact_weights=exact_weights, preview=preview, services={"hello": ["staging", "production"]}
    )
    (folder / "deploy.toml").write_text(
        '[services.hello]\ncommand = ["hello"]\nhealth = "/health"\n'
        "[services.hello.environments.staging]\n[services.hello.environments.production]\n",
        encoding="utf-8",
    )
    project = load_project(folder / "deploy.toml")

    def crashing(version: str) -> Release:
        platform.behave(version, crash_loop=True)
        return Release(service="hello", version=version)

    yield Driver(
        name="fake" if exact_weights else "fake-replicas",
        platform=platform,
        project=project,
        service="hello",
        environment="staging",
        health_path="/health",
        release=lambda version: Release(service="hello", version=version),
        crashing=crashing,
        other_environment="production",
    )


# -- the local platform: processes behind the weighted router -------------------------------------------------------


@contextlib.contextmanager
def local_driver(folder: Path) -> Iterator[Driver]:
    from local_fixtures import free_port, teardown, write_project

    from deploy_mcp.targets.local.platform import create_platform

    project = write_project(folder, staging_port=free_port())
    platform = create_platform(project, health_interval=0.5, start_timeout=20.0, kill_timeout=3.0)
    service = project.config.services["hello"]

    def release(version: str) -> Release:
        return Release.resolve("hello", service, version)

    def crashing(version: str) -> Release:
        good = release(version)
        return good.model_copy(update={"env": {**good.env, "CRASH_ON_START": "1"}})

    try:
        yield Driver(
            name="local",
            platform=platform,
            project=project,
            service="hello",
            environment="staging",
            health_path=service.health,
            release=release,
            crashing=crashing,
            other_environment="production",
        )
    finally:
        teardown(platform)


# -- ECS: services behind an ALB on moto, with the fleet harness running tasks and the load balancer -------------


@contextlib.contextmanager
def ecs_driver(folder: Path) -> Iterator[Driver]:
    import importlib.util

    from conftest import require_component

    require_component("moto", importlib.util.find_spec("moto") is not None, 'pip install "moto[server]"')
    from ecs_fixtures import aws_credentials, build_world, write_project
    from ecs_fleet import EcsFleet

    from deploy_mcp.targets.ecs import create_platform

    with aws_credentials(), EcsFleet(workdir=folder / "fleet") as fleet:
        world = build_world(fleet, ["staging", "production"])
        project = write_project(folder, world)
        platform = create_platform(project, "hello")
        service = project.config.services["hello"]

        def release(version: str) -> Release:
            return Release.resolve("hello", service, version)

        def crashing(version: str) -> Release:
            good = release(version)
            return good.model_copy(update={"env": {**good.env, "CRASH_ON_START": "1"}})

        try:
            yield Driver(
                name="ecs",
                platform=platform,
                project=project,
                service="hello",
                environment="staging",
                health_path=service.health,
                release=release,
                crashing=crashing,
                other_environment="production",
            )
        finally:
            platform.close()


DRIVERS: dict[str, Callable[[Path], contextlib.AbstractContextManager[Driver]]] = {
    "fake": lambda folder: fake_driver(folder, exact_weights=True, preview=True),
    "fake-replicas": lambda folder: fake_driver(folder, exact_weights=False, preview=False),
    "local": local_driver,
    "kubernetes": lambda folder: kubernetes_driver(folder, router="service"),
    "kubernetes-gateway": lambda folder: kubernetes_driver(folder, router="gateway-api"),
    "ecs": ecs_driver,
}
"""Every driver the suite runs against. Kubernetes and ECS join here with one line each."""


@pytest.fixture(name="driver", params=sorted(DRIVERS))
def driver_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    """Each test that takes ``driver`` runs once per entry of DRIVERS, on a fresh, empty platform.

    Defined here and imported by the test module, not in a conftest.py: the test modules import helpers from
    tests/conftest.py by the name ``conftest``, which a second conftest.py would shadow.
    """
    with DRIVERS[request.param](tmp_path) as made:
        yield made


# -- Kubernetes on the API emulator: Deployments, the stable Service or a Gateway API route -----------------------


@contextlib.contextmanager
def kubernetes_driver(folder: Path, *, router: str) -> Iterator[Driver]:
    from kube_emulator import Cluster
    from kube_fixtures import kube_project

    from deploy_mcp.targets.kubernetes import create_platform

    cluster = Cluster(workdir=folder / "cluster").start()
    try:
        project = kube_project(cluster, folder, router=router)
        platform = create_platform(project, "hello")
        service = project.config.services["hello"]

        def release(version: str) -> Release:
            return Release.resolve("hello", service, version)

        def crashing(version: str) -> Release:
            good = release(version)
            return good.model_copy(update={"env": {**good.env, "CRASH_ON_START": "1"}})

        yield Driver(
            name=f"kubernetes-{router}",
            platform=platform,
            project=project,
            service="hello",
            environment="staging",
            health_path=service.health,
            release=release,
            crashing=crashing,
            other_environment="production",
        )
        platform.close()
    finally:
        cluster.stop()
