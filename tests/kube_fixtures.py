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
