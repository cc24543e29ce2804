"""A rolling release on Kubernetes: deploy-mcp against `kubectl set image` + `kubectl rollout status`.

Both run on the same Kubernetes API emulator (tests/kube_emulator: the real REST API, pods as real processes of
the example service), on two Deployments of the same shape (3 replicas, maxSurge 1, maxUnavailable 0, the same
readiness probe), alternately in one run, each under steady load through its own Service. Printed: the median
wall time of each and their ratio (goal: deploy-mcp within 1.10x of kubectl), and the failed requests of each
(goal: 0 for both).

deploy-mcp's side is the whole rolling step the runner performs: the Deployment's template set through the
official client, then kubectl's rollout-status semantics until done, plus the crash-loop watch kubectl lacks.

    python bench/kubernetes.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# this file is named like the client package: keep its folder off the path so `import kubernetes` finds the client
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO / "tests"))

REPLICAS = 3
LOAD_RATE = 60.0


def kubectl(server: str, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["kubectl", "--server", server, *args], input=stdin, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    if shutil.which("kubectl") is None:
        raise SystemExit("kubectl is not installed (scripts/setup.sh installs it)")

    from kube_emulator import Cluster
    from kube_fixtures import kube_project

    from deploy_mcp.core.target import Release
    from deploy_mcp.targets.kubernetes.parts import parts
    from deploy_mcp.targets.local.loadgen import BackgroundLoad

    folder = Path(tempfile.mkdtemp(prefix="bench-kubernetes-"))
    cluster = Cluster(workdir=folder / "cluster").start()
    try:
        project = kube_project(cluster, folder)
        service = project.config.services["hello"]
        made = parts(project, gateway=False)
        workload = made.workload

        def release(version: str) -> Release:
            return Release.resolve("hello", service, version)

        workload.rollout("hello", "staging", release("1.0.0"), REPLICAS, timeout=120)
        # kubectl's Deployment: the same object under another name and selector
        body = json.loads(kubectl(cluster.url, "get", "deployment", "hello-staging", "-o", "json"))
        labels = {"app": "kubectl-hello"}
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "kubectl-hello", "labels": labels},
            "spec": {
                **{k: v for k, v in body["spec"].items() if k != "selector"},
                "selector": {"matchLabels": labels},
                "template": {**body["spec"]["template"], "metadata": {"labels": labels}},
            },
        }
        kubectl(cluster.url, "create", "--validate=false", "-f", "-", stdin=json.dumps(body))
        kubectl(cluster.url, "expose", "deployment", "kubectl-hello", "--port=80", "--target-port=8080")
        kubectl(cluster.url, "rollout", "status", "deployment/kubectl-hello", "--timeout=120s")
        container = body["spec"]["template"]["spec"]["containers"][0]["name"]

        def ours(version: str) -> None:
            workload.rollout("hello", "staging", release(version), REPLICAS, timeout=120)

        def theirs(version: str) -> None:
            kubectl(
                cluster.url, "set", "image", "deployment/kubectl-hello", f"{container}=registry.example/hello:{version}"
            )
            kubectl(cluster.url, "rollout", "status", "deployment/kubectl-hello", "--timeout=120s")

        def port(name: str) -> int:
            deadline = time.monotonic() + 30
            while (found := cluster.service_port("default", name)) is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert found is not None, f"service {name} has no port"
            return found

        sides = {"deploy-mcp": (ours, port("hello-staging")), "kubectl": (theirs, port("kubectl-hello"))}
        times: dict[str, list[float]] = {name: [] for name in sides}
        failures: dict[str, int] = dict.fromkeys(sides, 0)
        requests: dict[str, int] = dict.fromkeys(sides, 0)
        for run in range(options.runs):
            version = f"1.0.{run + 1}"
            order = list(sides) if run % 2 == 0 else list(reversed(sides))
            for name in order:
                action, service_port = sides[name]
                load = BackgroundLoad(f"http://127.0.0.1:{service_port}/", rate=LOAD_RATE, concurrency=4).start()
                try:
                    started = time.perf_counter()
                    action(version)
                    times[name].append(time.perf_counter() - started)
                    time.sleep(0.5)  # requests in flight at the end count too
                finally:
                    result = load.stop()
                failures[name] += result.failures
                requests[name] += result.requests
                print(f"run {run + 1} {name:<10} {times[name][-1]:6.2f} s  {result.summary()}", flush=True)
        ours_median = statistics.median(times["deploy-mcp"])
        theirs_median = statistics.median(times["kubectl"])
        print()
        print(f"rolling release of {REPLICAS} replicas (maxSurge 1, maxUnavailable 0), {options.runs} runs each")
        for name, median in (("deploy-mcp", ours_median), ("kubectl", theirs_median)):
            print(f"{name:<11} median {median:6.2f} s   failed requests {failures[name]} of {requests[name]}")
        ratio = ours_median / theirs_median
        print(f"wall-time ratio deploy-mcp / kubectl: {ratio:.3f} (goal <= 1.10)")
        ok = ratio <= 1.10 and failures["deploy-mcp"] == 0 and failures["kubectl"] == 0
        print("PASS" if ok else "MISS")
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
