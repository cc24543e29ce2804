"""A real container registry on 127.0.0.1, and a way to push an image to it without docker.

The registry is Debian's ``docker-registry`` (the CNCF distribution registry, the server Docker Hub and most
private registries run), started with its storage in a temporary folder. ``push`` uploads a minimal OCI image the
way ``docker push`` does over the distribution API: a config blob and one layer blob (POST to open an upload, PUT
with the digest to finish it), then the manifest under the tag. Nothing runs the image; the registry only has to
hold it, which is all preflight asks about.

``RegistryServer(token_realm=..., token_service=..., token_issuer=..., token_certificate=...)`` starts it with token
authentication, as public registries run: every request without a token answers 401 with a Bearer challenge.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import free_port, require_component

REGISTRY_BINARY = "docker-registry"
START_TIMEOUT = 20.0

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class TokenAuth:
    """Where the registry sends clients for a token, and the certificate whose key signs the tokens."""

    realm: str
    service: str
    issuer: str
    certificate: Path


class RegistryServer:
    """One registry process; ``address`` is host:port as it appears in an image reference."""

    def __init__(self, folder: Path, *, token_auth: TokenAuth | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self.token_auth = token_auth
        self.token: str | None = None  # a push token, for registries behind token auth
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> RegistryServer:
        storage = self.folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = self.folder / "config.yml"
        config.write_text(self._config(storage), encoding="utf-8")
        log = (self.folder / "registry.log").open("wb")
        self._process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=self.folder
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/v2/", timeout=1.0).status_code in (200, 401):
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer within {START_TIMEOUT:g} s: {self.log()}")

    def _config(self, storage: Path) -> str:
        auth = ""
        if self.token_auth is not None:
            auth = (
                "auth:\n  token:\n"
                f"    realm: {self.token_auth.realm}\n"
                f"    service: {self.token_auth.service}\n"
                f"    issuer: {self.token_auth.issuer}\n"
                f"    rootcertbundle: {self.token_auth.certificate}\n"
            )
        return (
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n"
            f"{auth}"
        )

    def log(self) -> str:
        path = self.folder / "registry.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    # -- pushing -------------------------------------------------------------------------------------------------

    def push(self, repository: str, tag: str) -> str:
        """Push a one-layer OCI image as ``repository:tag``; returns the manifest's digest."""
        layer = _layer(f"{repository}:{tag}\n".encode())
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [_digest(gzip.decompress(layer))]},
            }
        ).encode()
        with httpx.Client(base_url=self.url, timeout=10.0, headers=self._auth()) as client:
            for blob in (config, layer):
                _upload_blob(client, repository, blob)
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": _digest(config), "size": len(config)},
                    "layers": [{"mediaType": OCI_LAYER, "digest": _digest(layer), "size": len(layer)}],
                }
            ).encode()
            answer = client.put(
                f"/v2/{repository}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
            )
            answer.raise_for_status()
            return answer.headers["Docker-Content-Digest"]

    def delete(self, repository: str, tag: str) -> None:
        """Remove the manifest the tag points to (the registry has deletes enabled)."""
        with httpx.Client(base_url=self.url, timeout=10.0, headers=self._auth()) as client:
            head = client.head(f"/v2/{repository}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
            head.raise_for_status()
            client.delete(f"/v2/{repository}/manifests/{head.headers['Docker-Content-Digest']}").raise_for_status()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def _upload_blob(client: httpx.Client, repository: str, blob: bytes) -> None:
    opened = client.post(f"/v2/{repository}/blobs/uploads/")
    opened.raise_for_status()
    location = opened.headers["Location"]
    separator = "&" if "?" in location else "?"
    finished = client.put(
        f"{location}{separator}digest={_digest(blob)}",
        content=blob,
        headers={"Content-Type": "application/octet-stream"},
    )
    finished.raise_for_status()


def _layer(content: bytes) -> bytes:
    """A gzipped tar with one file: the smallest layer a registry accepts as a layer."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        info = tarfile.TarInfo("release.txt")
        info.size = len(content)
        info.mtime = 0
        archive.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def require_registry() -> None:
    require_component(
        "docker-registry",
        shutil.which(REGISTRY_BINARY) is not None,
        "install Debian's docker-registry package (scripts/setup.sh does)",
    )


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryServer]:
    """A running registry without authentication, like a team's private one on localhost."""
    require_registry()
    server = RegistryServer(tmp_path / "registry").start()
    try:
        yield server
    finally:
        server.stop()
