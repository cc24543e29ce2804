"""The Kubernetes driver against the API emulator: workload, both routers, the proxy prober and ConfigMap flags.

Every check reads the cluster back the way a user would (kubectl, real requests through the Service's port),
not the driver's own idea of what it did.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from kube_emulator import Cluster
from kube_fixtures import kube_cluster, kube_project, kubectl

from deploy_mcp.core.target import ErrorCode, Release, TargetError
from deploy_mcp.targets.kubernetes import names
from deploy_mcp.targets.kubernetes.parts import Parts, parts
from deploy_mcp.targets.local.loadgen import BackgroundLoad

__all__ = ["kube_cluster"]

pytestmark = pytest.mark.timeout(240)


def driver(cluster: Cluster, folder: Path, *, router: str = "service", extra: str = "") -> tuple[Any, Parts]:
    project = kube_project(cluster, folder, router=router, extra=extra)
    return project, parts(project, gateway=router == "gateway-api")


def release(project: Any, version: str) -> Release:
    return Release.resolve("hello", project.config.services["hello"], version)


def versions_served(cluster: Cluster, name: str, requests: int = 60) -> Counter[str]:
    port = cluster.service_port("default", name)
    seen: Counter[str] = Counter()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        for _ in range(requests):
            seen[client.get("/health").json()["version"]] += 1
    return seen


def test_service_router_first_version_takes_all_then_splits_by_replicas_and_pins(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    project, made = driver(kube_cluster, tmp_path)
    workload, router = made.workload, made.router
    assert router.capabilities.exact_weights is False
    workload.start_version("hello", "production", release(project, "1.0.0"), 2, timeout=60)
    state = workload.state("hello", "production")
    assert [(v.version, v.ready, v.weight) for v in state.versions] == [("1.0.0", 2, 100)]

    workload.start_version("hello", "production", release(project, "2.0.0"), 1, timeout=60)
    assert router.verify_weights("hello", "production") == {"1.0.0": 100, "2.0.0": 0}
    assert versions_served(kube_cluster, "hello-production") == {"1.0.0": 60}, "a new version takes no traffic"

    with pytest.raises(TargetError) as inexact:
        router.set_weights("hello", "production", {"1.0.0": 50, "2.0.0": 50})
    assert inexact.value.code is ErrorCode.INVALID_WEIGHTS and "1.0.0=67%, 2.0.0=33%" in str(inexact.value)
    # no router: the Service selects both versions and traffic follows pods, 2 to 1
    router.set_weights("hello", "production", {"1.0.0": 67, "2.0.0": 33})
    assert router.verify_weights("hello", "production") == {"1.0.0": 67, "2.0.0": 33}
    kube_cluster.wait(lambda: len(versions_served(kube_cluster, "hello-production", 30)) == 2, 10, "both serving")

    router.set_weights("hello", "production", {"2.0.0": 100})
    selector = json.loads(kubectl(kube_cluster, "get", "svc", "hello-production", "-o", "json").stdout)["spec"][
        "selector"
    ]
    assert selector[names.VERSION] == "2.0.0"
    kube_cluster.wait(lambda: versions_served(kube_cluster, "hello-production", 20) == {"2.0.0": 20}, 10, "pinned")
    with pytest.raises(TargetError) as refused:
        router.set_weights("hello", "production", {"3.0.0": 100})
    assert refused.value.code is ErrorCode.NO_INSTANCES

    workload.stop_version("hello", "production", "1.0.0", drain_timeout=2)
    assert [v.version for v in workload.state("hello", "production").versions] == ["2.0.0"]
    owned = kubectl(kube_cluster, "get", "deploy,svc", "-l", "app.kubernetes.io/managed-by=deploy-mcp", "-o", "name")
    assert sorted(owned.stdout.split()) == [
        "deployment.apps/hello-production-v2-0-0",
        "service/hello-production",
        "service/hello-production-v2-0-0",
    ]
    labels = json.loads(kubectl(kube_cluster, "get", "deploy", "hello-production-v2-0-0", "-o", "json").stdout)
    assert {names.NAME: "hello", names.ENVIRONMENT: "production", names.VERSION: "2.0.0"}.items() <= labels["metadata"][
        "labels"
    ].items()


def test_gateway_router_splits_by_exact_httproute_weights(kube_cluster: Cluster, tmp_path: Path) -> None:
    project, made = driver(kube_cluster, tmp_path, router="gateway-api")
    workload, router = made.workload, made.router
    assert router.capabilities.exact_weights is True
    workload.start_version("hello", "production", release(project, "1.0.0"), 2, timeout=60)
    workload.start_version("hello", "production", release(project, "2.0.0"), 1, timeout=60)
    assert router.verify_weights("hello", "production") == {"1.0.0": 100, "2.0.0": 0}
    router.set_weights("hello", "production", {"1.0.0": 90, "2.0.0": 10})
    assert router.verify_weights("hello", "production") == {"1.0.0": 90, "2.0.0": 10}
    route = json.loads(kubectl(kube_cluster, "get", "httproute", "hello-production", "-o", "json").stdout)
    refs = {r["name"]: r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]}
    assert refs == {"hello-production-v1-0-0": 90, "hello-production-v2-0-0": 10}
    assert route["spec"]["parentRefs"][0] == {"group": "", "kind": "Service", "name": "hello-production", "port": 80}
    time.sleep(0.5)  # the emulated mesh picks the route up on its next pass
    assert versions_served(kube_cluster, "hello-production", 100) == {"1.0.0": 90, "2.0.0": 10}
    state = workload.state("hello", "production")
    assert {v.version: v.weight for v in state.versions} == {"1.0.0": 90, "2.0.0": 10}
    with pytest.raises(TargetError) as refused:
        workload.stop_version("hello", "production", "2.0.0")
    assert refused.value.code is ErrorCode.STILL_SERVING


def test_prober_goes_through_the_api_server_proxy_with_the_kubeconfig_credentials(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    project, made = driver(kube_cluster, tmp_path)
    made.workload.start_version("hello", "production", release(project, "1.0.0"), 2, timeout=60)
    made.workload.start_version("hello", "production", release(project, "2.0.0"), 1, timeout=60)
    with made.prober.http_client("hello", "production") as client:
        assert client.get("/health").json()["version"] == "1.0.0"
        assert "/api/v1/namespaces/default/services/hello-production:http/proxy" in str(client.base_url)
    with made.prober.http_client("hello", "production", "2.0.0") as client:
        assert client.get("/health").json()["version"] == "2.0.0", "the preview reaches the version without traffic"
        assert client.get("/nonexistent").status_code == 404
    assert kube_cluster.api is not None
    health = made.prober.health("hello", "production", "1.0.0")
    assert [(h.version, h.healthy, h.status) for h in health] == [("1.0.0", True, "ok")] * 2


def test_native_rolling_release_and_undo_agree_with_kubectl(kube_cluster: Cluster, tmp_path: Path) -> None:
    project, made = driver(kube_cluster, tmp_path)
    workload = made.workload
    assert workload.rollout("hello", "staging", release(project, "1.0.0"), 2, timeout=60) == 1
    port = kube_cluster.service_port("default", "hello-staging")
    load = BackgroundLoad(f"http://127.0.0.1:{port}/", rate=80, concurrency=4).start()
    try:
        assert workload.rollout("hello", "staging", release(project, "2.0.0"), 2, timeout=60) == 2
        time.sleep(0.3)
    finally:
        result = load.stop()
    assert result.failures == 0 and result.versions["2.0.0"] > 0, result.summary()
    history = kubectl(kube_cluster, "rollout", "history", "deployment/hello-staging").stdout
    assert "deploy-mcp: hello 1.0.0" in history and "deploy-mcp: hello 2.0.0" in history
    kube_cluster.wait(
        lambda: [(v.version, v.ready) for v in workload.state("hello", "staging").versions] == [("2.0.0", 2)],
        20,
        "only 2.0.0 once the old pods drained",
    )

    assert workload.undo("hello", "staging", timeout=60) == "1.0.0"
    kubectl(kube_cluster, "rollout", "status", "deployment/hello-staging", "--timeout=30s")
    sets = json.loads(kubectl(kube_cluster, "get", "rs", "-o", "json").stdout)["items"]
    live = [rs for rs in sets if rs["spec"]["replicas"] > 0]
    assert len(sets) == 2 and len(live) == 1, "undo reuses the first ReplicaSet, as kubectl rollout undo does"
    assert live[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert live[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/hello:1.0.0"
    kube_cluster.wait(
        lambda: [(v.version, v.ready) for v in workload.state("hello", "staging").versions] == [("1.0.0", 2)],
        20,
        "only 1.0.0 once the 2.0.0 pods drained",
    )
    # and kubectl can undo what deploy-mcp rolled: the two speak the same revisions
    kubectl(kube_cluster, "rollout", "undo", "deployment/hello-staging")
    kubectl(kube_cluster, "rollout", "status", "deployment/hello-staging", "--timeout=30s")
    kube_cluster.wait(  # kubectl is done once the old pods are Terminating; they drain, then go
        lambda: [v.version for v in workload.state("hello", "staging").versions] == ["2.0.0"], 20, "1.0.0 gone"
    )


def test_a_crash_on_start_is_a_crash_loop_with_the_exit_code_and_leaves_nothing(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    project, made = driver(kube_cluster, tmp_path)
    workload = made.workload
    workload.start_version("hello", "production", release(project, "1.0.0"), 2, timeout=60)
    with pytest.raises(TargetError) as crashed:
        workload.start_version("hello", "production", release(project, "4.0.0"), 1, timeout=60)
    assert crashed.value.code is ErrorCode.CRASH_LOOP
    assert "CrashLoopBackOff" in str(crashed.value) and "exit code 3" in str(crashed.value)
    assert kubectl(kube_cluster, "get", "deploy", "-o", "name").stdout.split() == [
        "deployment.apps/hello-production-v1-0-0"
    ]
    assert [v.version for v in workload.state("hello", "production").versions] == ["1.0.0"]

    workload.rollout("hello", "staging", release(project, "1.0.0"), 2, timeout=60)
    with pytest.raises(TargetError) as native:
        workload.rollout("hello", "staging", release(project, "4.0.0"), 2, timeout=60)
    assert native.value.code is ErrorCode.CRASH_LOOP
    state = workload.state("hello", "staging")
    assert state.version("1.0.0").ready == 2, "maxUnavailable 0: the old pods kept serving"  # type: ignore[union-attr]
    assert state.version("4.0.0").crash_loop  # type: ignore[union-attr]
    assert workload.undo("hello", "staging", timeout=60) == "1.0.0"
    kube_cluster.wait(lambda: [v.version for v in workload.state("hello", "staging").versions] == ["1.0.0"], 20)


def test_a_namespace_outside_allowed_namespaces_is_refused_with_nothing_created(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    project, made = driver(kube_cluster, tmp_path)
    before = kube_cluster.store.revision
    for call in (
        lambda: made.workload.start_version("hello", "forbidden", release(project, "1.0.0"), 1),
        lambda: made.workload.rollout("hello", "forbidden", release(project, "1.0.0"), 1),
        lambda: made.router.set_weights("hello", "forbidden", {"1.0.0": 100}),
        lambda: made.flags.set_flag("hello", "forbidden", "new-greeting", 50),
        lambda: made.workload.state("hello", "forbidden"),
    ):
        with pytest.raises(TargetError) as refused:
            call()
        message = str(refused.value)
        assert "services.hello.environments.forbidden.namespace" in message
        assert "'kube-system' is not in targets.kubernetes.allowed_namespaces" in message
    changes = [e for e in kube_cluster.store.events_since(before) if e.kind.kind != "Endpoints"]
    assert changes == [], "a refused call must create nothing"


def test_a_manifest_keeps_what_the_user_wrote_and_flags_reach_the_pods(kube_cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "web.yaml").write_text(
        """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: whatever
  annotations: {team: payments}
spec:
  replicas: 7
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
    spec:
      serviceAccountName: web
      containers:
      - name: app
        image: placeholder
        env: [{name: GREETING_STYLE, value: warm}]
        resources: {limits: {memory: 128Mi}}
""",
        encoding="utf-8",
    )
    extra = '\n[services.hello.flag]\nname = "new-greeting"\n'
    project, made = driver(kube_cluster, tmp_path, extra=extra)
    project.config.services["hello"].manifest = "k8s/web.yaml"
    project.config.services["hello"].image = None
    project.config.services["hello"].versions["1.0.0"] = (
        project.config.services["hello"]
        .versions["3.0.0"]
        .model_copy(update={"env": {}, "image": "registry.example/web:1.0.0"})
    )
    made.workload.start_version("hello", "production", release(project, "1.0.0"), 2, timeout=60)
    body = json.loads(kubectl(kube_cluster, "get", "deploy", "hello-production-v1-0-0", "-o", "json").stdout)
    container = body["spec"]["template"]["spec"]["containers"][0]
    assert body["metadata"]["annotations"]["team"] == "payments"
    assert body["spec"]["replicas"] == 2 and body["spec"]["template"]["spec"]["serviceAccountName"] == "web"
    assert container["image"] == "registry.example/web:1.0.0" and container["resources"]["limits"]["memory"] == "128Mi"
    assert {"name": "GREETING_STYLE", "value": "warm"} in container["env"]
    assert body["spec"]["template"]["metadata"]["labels"]["app"] == "web"

    where = made.flags.set_flag("hello", "production", "new-greeting", 100)
    assert "configmap/hello-production-flags" in where
    assert made.flags.get_flag("hello", "production", "new-greeting") == 100

    def flag_on_everywhere() -> bool:
        with made.prober.http_client("hello", "production") as client:
            return all(client.get("/api/status").json()["flags"].get("new-greeting") for _ in range(6))

    kube_cluster.wait(flag_on_everywhere, 15, "the flag on in every pod")
    made.flags.set_flag("hello", "production", "new-greeting", 25)
    assert made.flags.get_flag("hello", "production", "new-greeting") == 25


def test_a_broken_kubeconfig_is_a_clear_error_naming_the_setting(tmp_path: Path) -> None:
    from deploy_mcp.config.loader import load_project
    from deploy_mcp.targets.kubernetes import create_platform

    (tmp_path / "deploy.toml").write_text(
        '[targets.kubernetes]\nkubeconfig = "no-such-kubeconfig"\n\n'
        '[services.web]\ntarget = "kubernetes"\nimage = "web:{version}"\n[services.web.environments.staging]\n',
        encoding="utf-8",
    )
    with pytest.raises(TargetError) as broken:
        create_platform(load_project(tmp_path / "deploy.toml"), "web")
    message = str(broken.value)
    assert message.startswith("targets.kubernetes: could not load the kubeconfig")
    assert "no-such-kubeconfig" in message and "in_cluster = true" in message
