"""The emulator is faithful where it matters: the real kubectl reads and drives it as it would a cluster.

kubectl is the reference client: if ``get``, ``describe``, ``rollout status``, ``rollout history``, ``rollout
undo``, ``set image`` and ``scale`` work against the emulator and report what the official Python client reads,
then a driver tested against the emulator is tested against the Kubernetes API, not against our idea of it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kube_emulator import Cluster
from kube_fixtures import kube_client, kube_cluster, kubectl

from deploy_mcp.targets.local.loadgen import BackgroundLoad

__all__ = ["kube_cluster"]

pytestmark = pytest.mark.timeout(180)


def deployment(name: str = "web", *, image: str = "hello:1.0.0", replicas: int = 2, **spec: Any) -> dict[str, Any]:
    env = spec.pop("env", {})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": spec.pop(
                "strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
            ),
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": name,
                            "image": image,
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                            "ports": [{"containerPort": 8080}],
                            "readinessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 1},
                        }
                    ]
                },
            },
            **spec,
        },
    }


def create(cluster: Cluster, body: dict[str, Any], service: bool = True) -> None:
    from kubernetes import client

    api = kube_client(cluster)
    client.AppsV1Api(api).create_namespaced_deployment("default", body)
    if service:
        name = body["metadata"]["name"]
        client.CoreV1Api(api).create_namespaced_service(
            "default",
            {
                "metadata": {"name": name},
                "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
            },
        )


def get_json(cluster: Cluster, *what: str) -> Any:
    return json.loads(kubectl(cluster, "get", *what, "-o", "json").stdout)


def test_get_shows_what_the_client_created_and_the_pods_really_serve(kube_cluster: Cluster) -> None:
    from kubernetes import client

    create(kube_cluster, deployment())
    kubectl(kube_cluster, "rollout", "status", "deployment/web", "--timeout=60s")
    table = kubectl(kube_cluster, "get", "deploy,rs,pods,svc").stdout
    assert "deployment.apps/web   2/2     2            2" in table
    assert table.count("pod/web-") == 2 and "Running" in table
    assert "service/web   ClusterIP" in table

    apps = client.AppsV1Api(kube_client(kube_cluster))
    seen_by_client = apps.read_namespaced_deployment("web", "default")
    seen_by_kubectl = get_json(kube_cluster, "deployment", "web")
    assert seen_by_kubectl["status"]["availableReplicas"] == seen_by_client.status.available_replicas == 2
    assert seen_by_kubectl["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    pods = get_json(kube_cluster, "pods", "-l", "app=web")["items"]
    hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in pods}
    (replicaset,) = get_json(kube_cluster, "rs")["items"]
    assert hashes == {replicaset["metadata"]["labels"]["pod-template-hash"]}
    # the services proxy reaches a real process of the example service
    health = json.loads(
        kubectl(kube_cluster, "get", "--raw", "/api/v1/namespaces/default/services/web:80/proxy/health").stdout
    )
    assert health["status"] == "ok" and health["version"] == "1.0.0"


def test_set_image_rolls_with_zero_failed_requests_and_undo_reuses_the_old_replicaset(kube_cluster: Cluster) -> None:
    create(kube_cluster, deployment())
    kubectl(kube_cluster, "rollout", "status", "deployment/web", "--timeout=60s")
    port = kube_cluster.service_port("default", "web")
    load = BackgroundLoad(f"http://127.0.0.1:{port}/", rate=100, concurrency=4).start()
    try:
        kubectl(kube_cluster, "set", "image", "deployment/web", "web=hello:2.0.0")
        status = kubectl(kube_cluster, "rollout", "status", "deployment/web", "--timeout=60s").stdout
        time.sleep(0.5)
    finally:
        result = load.stop()
    assert 'deployment "web" successfully rolled out' in status
    assert result.failures == 0, result.summary()
    assert result.versions["2.0.0"] > 0 and result.versions["1.0.0"] > 0, result.summary()

    history = kubectl(kube_cluster, "rollout", "history", "deployment/web").stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    first = kubectl(kube_cluster, "rollout", "history", "deployment/web", "--revision=1").stdout
    assert "hello:1.0.0" in first

    before = {rs["metadata"]["name"] for rs in get_json(kube_cluster, "rs")["items"]}
    assert "rolled back" in kubectl(kube_cluster, "rollout", "undo", "deployment/web").stdout
    kubectl(kube_cluster, "rollout", "status", "deployment/web", "--timeout=60s")
    sets = get_json(kube_cluster, "rs")["items"]
    assert {rs["metadata"]["name"] for rs in sets} == before, "undo must scale the old ReplicaSet back up, not make one"
    revived = next(rs for rs in sets if rs["spec"]["template"]["spec"]["containers"][0]["image"] == "hello:1.0.0")
    assert revived["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert revived["status"]["availableReplicas"] == 2
    history = kubectl(kube_cluster, "rollout", "history", "deployment/web").stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]
    health = json.loads(
        kubectl(kube_cluster, "get", "--raw", "/api/v1/namespaces/default/services/web:80/proxy/health").stdout
    )
    assert health["version"] == "1.0.0"


def test_describe_reports_strategy_replicas_conditions_and_replicasets(kube_cluster: Cluster) -> None:
    create(kube_cluster, deployment(replicas=3), service=False)
    kubectl(kube_cluster, "rollout", "status", "deployment/web", "--timeout=60s")
    text = kubectl(kube_cluster, "describe", "deployment", "web").stdout
    assert "Replicas:               3 desired | 3 updated | 3 total | 3 available | 0 unavailable" in text
    assert "RollingUpdateStrategy:  0 max unavailable, 1 max surge" in text
    assert "Available      True    MinimumReplicasAvailable" in text
    assert "Progressing    True    NewReplicaSetAvailable" in text
    assert "NewReplicaSet:   web-" in text and "(3/3 replicas created)" in text


def test_crash_loop_shows_as_crashloopbackoff_and_rollout_status_fails_at_the_deadline(kube_cluster: Cluster) -> None:
    create(kube_cluster, deployment(replicas=2, progressDeadlineSeconds=4), service=False)
    kubectl(kube_cluster, "rollout", "status", "deployment/web", "--timeout=60s")
    patch = {
        "spec": {
            "template": {"spec": {"containers": [{"name": "web", "env": [{"name": "CRASH_ON_START", "value": "1"}]}]}}
        }
    }
    kubectl(kube_cluster, "patch", "deployment/web", "-p", json.dumps(patch))
    failed = kubectl(kube_cluster, "rollout", "status", "deployment/web", "--timeout=60s", check=False)
    assert failed.returncode != 0
    assert 'deployment "web" exceeded its progress deadline' in failed.stderr
    kube_cluster.wait(
        lambda: "CrashLoopBackOff" in kubectl(kube_cluster, "get", "pods").stdout, 20, "CrashLoopBackOff in kubectl"
    )
    restarts = [
        c["restartCount"] for p in get_json(kube_cluster, "pods")["items"] for c in p["status"]["containerStatuses"]
    ]
    assert max(restarts) >= 2
    # maxUnavailable 0: the old pods kept serving the whole time
    assert get_json(kube_cluster, "deployment", "web")["status"]["availableReplicas"] == 2
    condition = next(
        c for c in get_json(kube_cluster, "deployment", "web")["status"]["conditions"] if c["type"] == "Progressing"
    )
    assert (condition["status"], condition["reason"]) == ("False", "ProgressDeadlineExceeded")


def test_recreate_stops_every_old_pod_before_a_new_one_starts(kube_cluster: Cluster) -> None:
    create(kube_cluster, deployment(strategy={"type": "Recreate"}), service=False)
    kubectl(kube_cluster, "rollout", "status", "deployment/web", "--timeout=60s")
    start_revision = kube_cluster.store.revision
    kubectl(kube_cluster, "set", "image", "deployment/web", "web=hello:2.0.0")
    kubectl(kube_cluster, "rollout", "status", "deployment/web", "--timeout=60s")
    pods = [e for e in kube_cluster.store.events_since(start_revision) if e.kind.kind == "Pod"]
    first_new = next(i for i, e in enumerate(pods) if e.type == "ADDED")
    last_old_gone = max(i for i, e in enumerate(pods) if e.type == "DELETED")
    assert last_old_gone < first_new, "Recreate started a new pod while an old one still existed"


def test_scale_and_patch_types_kubectl_sends(kube_cluster: Cluster) -> None:
    create(kube_cluster, deployment(replicas=1), service=False)
    kubectl(kube_cluster, "scale", "deployment/web", "--replicas=3")
    kubectl(kube_cluster, "rollout", "status", "deployment/web", "--timeout=60s")
    assert get_json(kube_cluster, "deployment", "web")["status"]["readyReplicas"] == 3
    kubectl(kube_cluster, "patch", "deployment/web", "--type=merge", "-p", '{"metadata":{"labels":{"tier":"front"}}}')
    kubectl(
        kube_cluster,
        "patch",
        "deployment/web",
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/replicas","value":2}]',
    )
    body = get_json(kube_cluster, "deployment", "web")
    assert body["metadata"]["labels"]["tier"] == "front" and body["spec"]["replicas"] == 2
    kubectl(kube_cluster, "rollout", "status", "deployment/web", "--timeout=60s")
    kube_cluster.wait(lambda: len(get_json(kube_cluster, "pods")["items"]) == 2, 20, "the third pod terminated")
    kubectl(kube_cluster, "delete", "deployment", "web")
    kube_cluster.wait(lambda: not kube_cluster.store.list(kube_cluster.store.kind("Pod")), 30, "every pod gone")
    assert get_json(kube_cluster, "rs")["items"] == []
