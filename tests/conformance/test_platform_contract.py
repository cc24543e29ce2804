"""The platform contract (deploy_mcp/core/platform.py), checked against every driver.

Every test here runs once per driver listed in ``platform_drivers.DRIVERS``: the in-memory fake platform with
exact weights and a preview ("fake"), the fake with replica-ratio weights and no preview ("fake-replicas", what
Kubernetes without a traffic router can do), and the local platform ("local", real processes behind the weighted
router). What the runner relies on is what is checked: start, scale and stop semantics, the first version takes
all traffic and a new one none, weights refused for a version with no ready instance, weights set and read back
(exactly, or as replica ratios when the router says so), starting and stopping twice (the platform's codes, and
the runner's idempotent start and stop on top of them), probes that reach the service
and one version (when the router has a preview), flags set and read back, and errors that are TargetErrors with
their codes.

Adding a driver (Kubernetes, ECS): write a factory in tests/conformance/platform_drivers.py that yields a
``Driver`` for a fresh, empty environment (see ``local_driver``: the platform, the project whose deploy.toml
declares the service, the service and environment to use, a good release and a crashing release of any version)
and cleans up after itself, then add it to ``DRIVERS``.
Nothing else changes: the tests read the router's capabilities and expect what the driver declares. Run with
``python -m pytest tests/conformance -q -k <name>``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from platform_drivers import Driver, driver_fixture

from deploy_mcp.core.platform import FlagProvider, Prober, TrafficRouter, Workload, proportional
from deploy_mcp.core.runner.actions import Actions
from deploy_mcp.core.runner.base import Context
from deploy_mcp.core.target import ErrorCode, TargetError, TargetState
from deploy_mcp.signals.health import check_health

__all__ = ["driver_fixture"]  # the ``driver`` fixture: imported for pytest, not used by name

V1, V2 = "1.0.0", "2.0.0"


def start(driver: Driver, version: str, replicas: int = 1) -> None:
    driver.platform.workload.start_version(driver.service, driver.environment, driver.release(version), replicas)


def state(driver: Driver) -> TargetState:
    return driver.platform.workload.state(driver.service, driver.environment)


def weights(driver: Driver) -> dict[str, int]:
    return driver.platform.router.verify_weights(driver.service, driver.environment)


def set_weights(driver: Driver, split: dict[str, int]) -> None:
    driver.platform.router.set_weights(driver.service, driver.environment, split)


@contextlib.contextmanager
def refused(code: ErrorCode) -> Iterator[None]:
    """The block raises a TargetError with ``code`` (the runner branches on codes, never on messages)."""
    with pytest.raises(TargetError) as caught:
        yield
    assert caught.value.code is code, f"expected {code.value}, got {caught.value.code.value}: {caught.value}"


# -- the parts ----------------------------------------------------------------------------------------------------


def test_the_platform_is_made_of_the_four_parts(driver: Driver) -> None:
    platform = driver.platform
    assert isinstance(platform.workload, Workload)
    assert isinstance(platform.router, TrafficRouter)
    assert isinstance(platform.prober, Prober)
    assert isinstance(platform.flags, FlagProvider)
    assert platform.kind == platform.workload.kind and platform.kind
    assert platform.capabilities is platform.router.capabilities


def test_nothing_runs_in_a_fresh_environment(driver: Driver) -> None:
    current = state(driver)
    assert current.versions == [] and current.serving == []
    assert (current.service, current.environment) == (driver.service, driver.environment)


# -- the workload -------------------------------------------------------------------------------------------------


def test_the_first_version_takes_all_traffic_and_a_new_one_none(driver: Driver) -> None:
    start(driver, V1)
    assert state(driver).serving == [V1]
    assert weights(driver) == {V1: 100}

    start(driver, V2)
    current = state(driver)
    assert current.version(V2) is not None and current.version(V2).ready == 1  # type: ignore[union-attr]
    assert current.weights == {V1: 100, V2: 0}
    assert weights(driver) == {V1: 100, V2: 0}


def test_start_scale_and_stop_change_the_size_and_return_when_done(driver: Driver) -> None:
    start(driver, V1, replicas=2)
    first = state(driver).version(V1)
    assert first is not None and (first.replicas, first.ready) == (2, 2)

    workload = driver.platform.workload
    workload.scale(driver.service, driver.environment, V1, 3)
    grown = state(driver).version(V1)
    assert grown is not None and (grown.replicas, grown.ready) == (3, 3)
    workload.scale(driver.service, driver.environment, V1, 1)
    shrunk = state(driver).version(V1)
    assert shrunk is not None and (shrunk.replicas, shrunk.ready) == (1, 1)

    start(driver, V2)
    workload.stop_version(driver.service, driver.environment, V2, drain_timeout=1.0)
    assert state(driver).version(V2) is None
    assert state(driver).serving == [V1]


def test_starting_twice_and_stopping_twice_are_refused_with_codes_and_change_nothing(driver: Driver) -> None:
    """The runner's start and stop are idempotent on top of these answers (it scales a running version and skips a
    gone one), so a driver must give exactly these codes."""
    start(driver, V1)
    with refused(ErrorCode.ALREADY_RUNNING):
        start(driver, V1)
    assert state(driver).version(V1).replicas == 1  # type: ignore[union-attr]

    start(driver, V2)
    workload = driver.platform.workload
    workload.stop_version(driver.service, driver.environment, V2, drain_timeout=1.0)
    with refused(ErrorCode.UNKNOWN_VERSION):
        workload.stop_version(driver.service, driver.environment, V2, drain_timeout=1.0)
    with refused(ErrorCode.UNKNOWN_VERSION):
        workload.scale(driver.service, driver.environment, V2, 2)
    assert [v.version for v in state(driver).versions] == [V1]


def test_a_version_that_still_serves_cannot_be_stopped_while_another_could_take_it(driver: Driver) -> None:
    start(driver, V1)
    start(driver, V2)
    with refused(ErrorCode.STILL_SERVING):
        driver.platform.workload.stop_version(driver.service, driver.environment, V1, drain_timeout=1.0)
    assert state(driver).serving == [V1]


def test_a_release_that_crashes_at_start_is_refused_and_leaves_nothing_of_it(driver: Driver) -> None:
    start(driver, V1)
    with refused(ErrorCode.CRASH_LOOP):
        driver.platform.workload.start_version(driver.service, driver.environment, driver.crashing(V2), 1)
    assert state(driver).version(V2) is None
    assert weights(driver) == {V1: 100}


def test_bad_sizes_and_unknown_environments_are_target_errors_with_codes(driver: Driver) -> None:
    workload = driver.platform.workload
    with pytest.raises(TargetError):
        workload.start_version(driver.service, driver.environment, driver.release(V1), 0)
    assert state(driver).versions == []
    with refused(ErrorCode.UNKNOWN_ENVIRONMENT):
        workload.start_version(driver.service, driver.unknown_environment, driver.release(V1), 1)
    start(driver, V1)
    with pytest.raises(TargetError):
        workload.scale(driver.service, driver.environment, V1, -1)


def test_environments_are_apart(driver: Driver) -> None:
    if driver.other_environment is None:
        pytest.skip(f"{driver.name} gives no second environment")
    start(driver, V1)
    other = driver.platform.workload.state(driver.service, driver.other_environment)
    assert other.versions == []


def test_the_runners_start_and_stop_are_idempotent_on_the_driver(driver: Driver) -> None:
    """What makes resuming safe: a step re-run after a crash tops up, or finds nothing to do."""
    ctx = Context(
        project=driver.project,
        ledger=None,  # type: ignore[arg-type]  # actions never touch the ledger
        platforms=lambda _service: driver.platform,
        metrics=lambda _service, _environment: None,  # type: ignore[arg-type,return-value]
        holder="conformance",
        lease_seconds=30.0,
        ready_timeout=20.0,
        drain_timeout=1.0,
    )
    actions = Actions(ctx, driver.service, driver.environment, follow_instances=False)
    said: list[str] = []
    actions.start(V1, 1, said.append)
    actions.start(V1, 1, said.append)
    assert said == [f"{V1} already runs 1 ready instance(s); nothing to start"]
    actions.start(V1, 2, said.append)  # a re-run with more tops it up
    assert state(driver).version(V1).ready == 2  # type: ignore[union-attr]
    actions.start(V2, 1, said.append)
    assert weights(driver) == {V1: 100, V2: 0}
    assert actions.stop(V2) is True
    assert actions.stop(V2) is False
    assert actions.set_weights({V1: 100}) == {V1: 100}
    assert [v.version for v in state(driver).versions] == [V1]


# -- the traffic router -------------------------------------------------------------------------------------------


def test_weights_are_refused_for_a_version_with_no_ready_instance(driver: Driver) -> None:
    start(driver, V1)
    with refused(ErrorCode.NO_INSTANCES):
        set_weights(driver, {V1: 50, V2: 50})  # never started
    start(driver, V2)
    driver.platform.workload.scale(driver.service, driver.environment, V2, 0)
    with refused(ErrorCode.NO_INSTANCES):
        set_weights(driver, {V2: 100})
    with refused(ErrorCode.INVALID_WEIGHTS):
        set_weights(driver, {V1: 90})  # not 100 in all
    assert weights(driver) == {V1: 100, V2: 0}


def test_weights_set_are_the_weights_read_back(driver: Driver) -> None:
    start(driver, V1, replicas=3)
    start(driver, V2)
    if driver.platform.capabilities.exact_weights:
        set_weights(driver, {V1: 95, V2: 5})
        assert weights(driver) == {V1: 95, V2: 5}
        assert state(driver).weights == {V1: 95, V2: 5}
    else:  # the only mixed split is the ready-instance ratio: 1 of 4 is 25%
        ratio = proportional({V1: 3, V2: 1})
        assert ratio == {V1: 75, V2: 25}
        with refused(ErrorCode.INVALID_WEIGHTS):
            set_weights(driver, {V1: 95, V2: 5})
        assert weights(driver) == {V1: 100, V2: 0}
        set_weights(driver, ratio)
        assert weights(driver) == ratio
    set_weights(driver, {V2: 100})  # versions left out get 0
    assert weights(driver) == {V1: 0, V2: 100}
    assert state(driver).serving == [V2]
    driver.platform.workload.stop_version(driver.service, driver.environment, V1, drain_timeout=1.0)
    assert weights(driver) == {V2: 100}


def test_setting_the_same_weights_twice_changes_nothing(driver: Driver) -> None:
    start(driver, V1)
    start(driver, V2)
    set_weights(driver, {V1: 0, V2: 100})
    set_weights(driver, {V1: 0, V2: 100})
    assert weights(driver) == {V1: 0, V2: 100}


# -- the prober ---------------------------------------------------------------------------------------------------


def test_the_prober_reaches_the_service_as_users_do(driver: Driver) -> None:
    start(driver, V1)
    with driver.platform.prober.http_client(driver.service, driver.environment) as client:
        health = check_health(client, driver.health_path)
        assert health.healthy, health.detail
        assert health.version == V1
        assert client.get("/").status_code == 200
    probes = driver.platform.prober.health(driver.service, driver.environment)
    assert [p.version for p in probes] == [V1] and all(p.healthy for p in probes)


def test_the_prober_reaches_one_version_alone_when_the_router_has_a_preview(driver: Driver) -> None:
    start(driver, V1)
    start(driver, V2, replicas=2)
    prober = driver.platform.prober
    if driver.platform.capabilities.preview:
        with prober.http_client(driver.service, driver.environment, V2) as client:
            answers = {check_health(client, driver.health_path).version for _ in range(5)}
        assert answers == {V2}, "the preview reached another version"
    else:
        with pytest.raises(TargetError):
            prober.http_client(driver.service, driver.environment, V2)
    # whatever the router, instance health of one version is there
    probes = prober.health(driver.service, driver.environment, V2)
    assert len(probes) == 2 and {p.version for p in probes} == {V2} and all(p.healthy for p in probes)
    # and the service still answers from the version that takes the traffic
    with prober.http_client(driver.service, driver.environment) as client:
        assert {check_health(client, driver.health_path).version for _ in range(5)} == {V1}


# -- flags --------------------------------------------------------------------------------------------------------


def test_flags_set_are_the_flags_read_back(driver: Driver) -> None:
    flags = driver.platform.flags
    assert flags.get_flag(driver.service, driver.environment, "new-greeting") is None
    for percentage in (0, 25, 100, 0):
        where = flags.set_flag(driver.service, driver.environment, "new-greeting", percentage)
        assert where and isinstance(where, str)
        assert flags.get_flag(driver.service, driver.environment, "new-greeting") == percentage
    with pytest.raises(TargetError):
        flags.set_flag(driver.service, driver.environment, "new-greeting", 101)
    assert flags.get_flag(driver.service, driver.environment, "new-greeting") == 0
