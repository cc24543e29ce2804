"""Fixtures for tests against the Kubernetes API emulator (tests/kube_emulator).

Import them into a test module (``from kube_fixtures import kube_cluster``). Teardown stops the cluster and then
checks the processes themselves: every pod process the emulator started must be gone, even when the test failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import require_component
from kube_emulator import Cluster

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie waiting for its parent counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.fixture
def kube_cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(workdir=tmp_path / "cluster").start()
    pids: set[int] = set()

    def remember() -> None:
        pids.update(pod.instance.pid for pod in cluster.pods.values() if pod.instance.pid)

    cluster.remember_pids = remember  # type: ignore[attr-defined]
    try:
        yield cluster
    finally:
        remember()
        cluster.stop()
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [p for p in pids if _alive(p)]
        assert not left, f"pod processes left running after the emulator stopped: {left}"


def kube_client(cluster: Cluster) -> Any:
    from kubernetes import client

    return client.ApiClient(client.Configuration(host=cluster.url))


def kubectl(
    cluster: Cluster, *args: str, timeout: float = 90.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real kubectl against the emulator (no kubeconfig: --server only)."""
    require_component("kubectl", os.path.exists(KUBECTL), "install kubectl (scripts/setup.sh)")
    result = subprocess.run(
        [KUBECTL, "--server", cluster.url, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "KUBECONFIG": "/dev/null"},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr or result.stdout}")
    return result


def kubeconfig(cluster: Cluster, folder: Path, token: str = "test-token") -> Path:
    """A kubeconfig for the emulator with a bearer token, as a real cluster's would carry one."""
    path = folder / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: emulator
  cluster:
    server: {cluster.url}
users:
- name: deployer
  user:
    token: {token}
contexts:
- name: emulator
  context:
    cluster: emulator
    user: deployer
current-context: emulator
""",
        encoding="utf-8",
    )
    return path


def kube_project_config(cluster: Cluster, folder: Path, *, router: str = "service", extra: str = "") -> str:
    config = kubeconfig(cluster, folder)
    return f"""\
[targets.kubernetes]
kubeconfig = "{config}"
namespace = "default"
allowed_namespaces = ["default", "shop"]
router = "{router}"

[services.hello]
target = "kubernetes"
image = "registry.example/hello:{{version}}"
replicas = 2
health = "/health"
smoke = ["/health", "/", "!/nonexistent"]

[services.hello.versions."3.0.0"]
env = {{ ERROR_RATE = "0.3" }}

[services.hello.versions."4.0.0"]
env = {{ CRASH_ON_START = "1" }}

[services.hello.versions."5.0.0"]
env = {{ LATENCY_MS = "2500" }}

[services.hello.environments.staging]
strategy = "rolling"

[services.hello.environments.production]
strategy = "canary"
steps = [25, 50, 100]

[services.hello.environments.forbidden]
namespace = "kube-system"
{extra}"""


def kube_project(cluster: Cluster, folder: Path, *, router: str = "service", extra: str = "") -> Any:
    from deploy_mcp.config.loader import load_project

    (folder / "deploy.toml").write_text(
        kube_project_config(cluster, folder, router=router, extra=extra), encoding="utf-8"
    )
    return load_project(folder / "deploy.toml")
