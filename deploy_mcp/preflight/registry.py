"""Does an image exist in its registry? One HEAD request over the OCI distribution API answers it.

``docker manifest inspect`` needs a docker CLI and a daemon-era login; the registry itself answers the same
question with ``HEAD /v2/<name>/manifests/<tag>``: 200 means the tag resolves to a manifest (its digest comes back
in ``Docker-Content-Digest``), 404 means nothing was pushed under that tag. The Accept header lists both OCI and
Docker manifest types, single-platform and multi-platform, because a registry answers 404 for a manifest whose
type the client did not say it accepts.

Public registries (Docker Hub, GHCR, Quay, ECR Public) answer an anonymous request with 401 and a challenge
``WWW-Authenticate: Bearer realm="...",service="...",scope="..."``: the client fetches a token from the realm
for a pull scope and asks again with it. Credentials never come from deploy.toml or a tool argument: the token is
anonymous, unless ``docker login`` stored a user and password for that registry in docker's config file
(``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``), which is then used as docker itself would (basic
auth to the realm, or to the registry for a Basic challenge). Credential helpers (``credsStore``) are not run.

Nothing here raises for network trouble: a registry that is down, slow or answers nonsense is a lookup whose
``exists`` is None, with a sentence that says what happened. Preflight turns that into a failed check; a crash
would turn "the registry is down" into "the tool is broken".
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
TIMEOUT_SECONDS = 5.0

_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


class ImageRefError(ValueError):
    """An image reference that cannot name a manifest; the message says what is wrong with it."""


@dataclass(frozen=True)
class ImageRef:
    """``registry/repository:tag`` or ``registry/repository@digest``, split the way docker splits it."""

    registry: str
    repository: str
    reference: str

    @property
    def api_host(self) -> str:
        """Where the API lives: Docker Hub's images are named docker.io but served from another host."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def is_local(self) -> bool:
        host = self.registry.rsplit(":", 1)[0] if not self.registry.startswith("[") else self.registry.split("]")[0]
        return host.strip("[]") in {h.strip("[]") for h in LOCAL_HOSTS}

    def manifest_url(self, *, insecure: bool = False) -> str:
        scheme = "http" if insecure or self.is_local else "https"
        return f"{scheme}://{self.api_host}/v2/{self.repository}/manifests/{self.reference}"

    def __str__(self) -> str:
        separator = "@" if _DIGEST.match(self.reference) else ":"
        return f"{self.registry}/{self.repository}{separator}{self.reference}"


def parse_image_ref(text: str) -> ImageRef:
    """Split an image reference: ``127.0.0.1:5000/web:1.2``, ``registry.example.com/team/web@sha256:...``, or a
    Docker Hub short name such as ``nginx:1.27`` (``docker.io/library/nginx``).

    The first path component is a registry when it has a dot or a port, or is ``localhost``, as docker decides.
    A reference without tag or digest means ``latest``, which preflight reports: a deploy must name a release.
    """
    ref = text.strip()
    if not ref or any(ch.isspace() for ch in ref):
        raise ImageRefError(f"{text!r} is not an image reference; write it like registry.example.com/web:1.2.0")
    name, reference = ref, "latest"
    if "@" in ref:
        name, reference = ref.split("@", 1)
        if not _DIGEST.match(reference):
            raise ImageRefError(f"{text!r}: {reference!r} is not a digest (sha256:...)")
    else:
        last = ref.rsplit("/", 1)[-1]
        if ":" in last:
            name, reference = ref.rsplit(":", 1)
            if not _TAG.match(reference):
                raise ImageRefError(f"{text!r}: {reference!r} is not a valid tag (letters, digits, '.', '_', '-')")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB, name
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if not _REPOSITORY.match(repository):
        raise ImageRefError(
            f"{text!r}: {repository!r} is not a repository name (lowercase letters, digits, '.', '_', '-', '/')"
        )
    return ImageRef(registry=registry, repository=repository, reference=reference)


@dataclass(frozen=True)
class ManifestLookup:
    """What the registry said. ``exists`` is None when it could not tell (down, refused, unexpected answer)."""

    image: str
    url: str
    exists: bool | None
    status_code: int | None
    detail: str
    digest: str | None = None
    media_type: str | None = None


def find_manifest(image: str, *, insecure: bool = False, timeout: float = TIMEOUT_SECONDS) -> ManifestLookup:
    """HEAD the manifest of ``image``; answers a Bearer challenge with a pull token (see the module's notes).

    ``insecure`` speaks plain http to a registry that is not on localhost (a lab registry without TLS).
    """
    import httpx

    try:
        ref = parse_image_ref(image)
    except ImageRefError as exc:
        return ManifestLookup(image=image, url="", exists=None, status_code=None, detail=str(exc))
    url = ref.manifest_url(insecure=insecure)
    headers = {"Accept": ", ".join(MANIFEST_TYPES)}
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            answer = client.head(url, headers=headers)
            if answer.status_code == 401:
                authorization, problem = _authorization(client, answer, ref)
                if authorization is None:
                    return ManifestLookup(image, url, None, 401, problem)
                answer = client.head(url, headers={**headers, "Authorization": authorization})
            if answer.status_code == 405:  # a registry (or proxy) without HEAD: GET says the same
                answer = client.get(url, headers=headers)
    except httpx.TimeoutException:
        return ManifestLookup(image, url, None, None, f"the registry did not answer HEAD {url} within {timeout:g} s")
    except httpx.TransportError as exc:
        return ManifestLookup(image, url, None, None, f"could not reach the registry for HEAD {url}: {_reason(exc)}")
    return _interpret(image, url, answer)


def _interpret(image: str, url: str, answer: httpx.Response) -> ManifestLookup:
    code = answer.status_code
    if 200 <= code < 300:
        digest = answer.headers.get("Docker-Content-Digest")
        media_type = answer.headers.get("Content-Type", "").split(";")[0] or None
        what = f"digest {digest}" if digest else "no digest header"
        return ManifestLookup(
            image, url, True, code, f"HEAD {url} answered {code}: {what}, {media_type}", digest, media_type
        )
    if code == 404:
        return ManifestLookup(image, url, False, code, f"HEAD {url} answered 404: the registry has no such manifest")
    if code in (401, 403):
        return ManifestLookup(
            image,
            url,
            None,
            code,
            f"HEAD {url} answered {code}: the registry refuses anonymous pulls of this repository",
        )
    return ManifestLookup(image, url, None, code, f"HEAD {url} answered {code}, which says neither yes nor no")


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def _authorization(client: httpx.Client, challenged: httpx.Response, ref: ImageRef) -> tuple[str | None, str]:
    """The Authorization header that answers the 401's challenge; (None, why) when none can."""
    import httpx

    challenge = challenged.headers.get("WWW-Authenticate", "")
    scheme, _, params_text = challenge.partition(" ")
    url = str(challenged.request.url)
    login = docker_login(ref.registry)
    basic = httpx.BasicAuth(*login) if login else None
    if scheme.lower() == "basic" and login is not None:
        return _basic_header(*login), ""
    if scheme.lower() != "bearer":
        how = f"a {scheme} challenge" if scheme else "no challenge"
        return None, (
            f"HEAD {url} answered 401 with {how}: the registry wants credentials, and none are stored for "
            f"{ref.registry} in docker's config file"
        )
    params = dict(_CHALLENGE_PARAM.findall(params_text))
    realm = params.get("realm", "")
    if not realm.startswith(("https://", "http://")):
        return None, f"HEAD {url} answered 401 with a Bearer challenge that names no token realm ({challenge!r})"
    query = {"scope": params.get("scope") or f"repository:{ref.repository}:pull"}
    if params.get("service"):
        query["service"] = params["service"]
    who = "with the login stored for it" if basic else "anonymously"
    try:
        answer = client.get(realm, params=query, auth=basic) if basic else client.get(realm, params=query)
    except httpx.TransportError as exc:
        return None, f"HEAD {url} needs a token, and its realm {realm} could not be reached: {_reason(exc)}"
    if answer.status_code != 200:
        return None, (
            f"HEAD {url} needs a token, and the realm {realm} refused one {who} ({answer.status_code}): the "
            "repository is private or the login is wrong"
        )
    try:
        body = answer.json()
    except ValueError:
        body = None
    token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        return None, f"HEAD {url} needs a token, and the realm {realm} answered without one"
    return f"Bearer {token}", ""


def docker_login(registry: str) -> tuple[str, str] | None:
    """The user and password ``docker login`` stored for ``registry``, if any (never logged or shown)."""
    folder = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    try:
        document = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    auths = document.get("auths") if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        return None
    names = {
        registry,
        f"https://{registry}",
        f"http://{registry}",
        f"https://{registry}/v1/",
        f"https://{registry}/v2/",
    }
    if registry == DOCKER_HUB:
        names |= {"https://index.docker.io/v1/", "index.docker.io", DOCKER_HUB_API}
    for name, entry in auths.items():
        if name.rstrip("/") not in {n.rstrip("/") for n in names} or not isinstance(entry, dict):
            continue
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return entry["username"], entry["password"]
        try:
            user, _, password = base64.b64decode(entry.get("auth") or "").decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            continue
        if user and password:
            return user, password
    return None


def _basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _reason(exc: Exception) -> str:
    """The innermost reason, e.g. "[Errno 111] Connection refused", not the wrapper's repr."""
    text = str(exc) or type(exc).__name__
    return text.rsplit("] ", 1)[-1] if text.count("[Errno") == 1 else text
