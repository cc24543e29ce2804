"""Who is calling the HTTP server, and what their role lets them do.

A team server knows its callers by the bearer token they send. The token file holds one entry per person or agent:
a name, a role and the SHA-256 of the token, never the token itself, so a copy of the file lets nobody in. Tokens
are 32 random bytes, so a plain hash is as strong as a slow one here; only a password would need key stretching.

Roles, from least to most:

- ``viewer`` reads (plans, status, history, validation) and changes nothing;
- ``deployer`` changes non-production environments; production only under a releaser's approval;
- ``releaser`` changes production (the person confirms in the client, or another releaser approved) and records
  approvals through the server (``deploy-mcp approve --server URL``).

An identity is written into records as its label (``token:alice``, ``oidc:alice@example.com``): deployed_by and
approved_by name who the server authenticated, never a name an argument claims. The local ``deploy-mcp approve``
refuses such labels, so an approval carrying one was recorded by a server for a releaser.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import sys
import tempfile
import tomllib
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import tomli_w

from deploy_mcp.errors import UserError

TOKEN_FILE_ENV = "DEPLOY_MCP_TOKEN_FILE"
TOKEN_PREFIX = "dmcp_"
IDENTITY_SOURCES = ("token", "oidc")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


class Role(StrEnum):
    VIEWER = "viewer"
    DEPLOYER = "deployer"
    RELEASER = "releaser"


@dataclass(frozen=True)
class Identity:
    """A caller the server authenticated. ``source``: how (a token of the token file, or an OIDC bearer token)."""

    name: str
    role: Role
    source: str = "token"

    @property
    def label(self) -> str:
        """How records name this identity; the prefix says it was authenticated, not claimed."""
        return f"{self.source}:{self.name}"

    def claims(self) -> dict[str, str]:
        """What the SDK's AccessToken carries for the tools (see `identity_from_claims`)."""
        return {"deploy_mcp_name": self.name, "deploy_mcp_role": self.role.value, "deploy_mcp_source": self.source}


def identity_from_claims(claims: dict[str, Any] | None) -> Identity | None:
    """The identity an AccessToken of ours carries; None for the single shared token, which names nobody."""
    if not claims or "deploy_mcp_role" not in claims:
        return None
    return Identity(
        name=str(claims["deploy_mcp_name"]),
        role=Role(claims["deploy_mcp_role"]),
        source=str(claims.get("deploy_mcp_source", "token")),
    )


CALLER: ContextVar[Identity | None] = ContextVar("deploy_mcp_caller", default=None)
"""The identity of the tool call being served (set by DeployServer.call_tool): what a tool that writes outside the
consent gate (generate_deploy_md, validate's verdict) checks so that a viewer changes nothing."""


def caller_from_context(ctx: Any) -> Identity | None:
    """Who the HTTP server authenticated for this MCP request (server/auth.py puts an AuthenticatedUser in the
    request's scope), or None: stdio, in-memory, a shared token or no auth, where nobody is known by name."""
    try:
        request = ctx.request_context.request
    except (ValueError, AttributeError):
        return None
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    token = getattr(user, "access_token", None)
    return identity_from_claims(getattr(token, "claims", None))


def caller_is_viewer() -> bool:
    caller = CALLER.get()
    return caller is not None and caller.role is Role.VIEWER


def is_identity_label(text: str) -> bool:
    """Whether ``text`` is written as a server-authenticated identity (``token:NAME`` or ``oidc:NAME``)."""
    source, sep, name = text.partition(":")
    return bool(sep) and source.strip().lower() in IDENTITY_SOURCES and bool(name.strip())


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenEntry:
    name: str
    role: Role
    sha256: str


class TokenFile:
    """The identities of a token file; re-read when the file changes, so an added or removed token takes effect
    without a restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._entries: tuple[TokenEntry, ...] = ()
        self._load()

    @classmethod
    def is_token_file(cls, path: Path) -> bool:
        """A TOML file with ``[[tokens]]``, as opposed to a file that holds one shared bearer token."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return False
        return "tokens" in data

    def _load(self) -> None:
        try:
            stat = self.path.stat()
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"token file {self.path}: cannot read it: {exc.strerror}") from None
        self._entries = parse_token_file(text, self.path)
        self._stamp = (stat.st_mtime_ns, stat.st_size)

    def _refresh(self) -> None:
        """Follow the file. A file gone (deleted to lock everyone out) or that no longer parses (a revoking edit
        with a typo) lets nobody in until it is readable again: keeping the identities read before would keep the
        revoked ones too. Said once per change on the server's log, naming the file."""
        try:
            stat = self.path.stat()
        except OSError as exc:
            self._refuse_all(None, f"cannot read it: {exc.strerror}")
            return
        if (stat.st_mtime_ns, stat.st_size) != self._stamp:
            try:
                self._load()
            except UserError as exc:
                self._refuse_all((stat.st_mtime_ns, stat.st_size), str(exc))

    def _refuse_all(self, stamp: tuple[int, int] | None, why: str) -> None:
        if self._entries or stamp != self._stamp:
            print(
                f"deploy-mcp: token file {self.path}: {why.removeprefix(f'token file {self.path}: ')}; "
                "every token is refused until it is readable",
                file=sys.stderr,
                flush=True,
            )
        self._entries, self._stamp = (), stamp

    def verify(self, token: str) -> Identity | None:
        """The identity holding ``token``, or None. Every entry is compared, in constant time each."""
        self._refresh()
        digest = token_digest(token)
        found = None
        for entry in self._entries:
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        return Identity(found.name, found.role) if found else None

    def role_of(self, name: str) -> Role | None:
        self._refresh()
        return next((entry.role for entry in self._entries if entry.name == name), None)


def parse_token_file(text: str, path: Path) -> tuple[TokenEntry, ...]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"token file {path}: not valid TOML: {exc}") from None
    raw = data.get("tokens", [])
    if not isinstance(raw, list):
        raise UserError(f"token file {path}: tokens must be a list of [[tokens]] tables")
    entries: list[TokenEntry] = []
    for number, item in enumerate(raw, start=1):
        where = f"token file {path}: tokens entry {number}"
        if not isinstance(item, dict):
            raise UserError(f"{where}: must be a table with name, role and sha256")
        name, role, digest = item.get("name"), item.get("role"), item.get("sha256")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise UserError(f"{where}: name {name!r}: use letters, digits, '.', '_', '-' or '@' (up to 64)")
        if role not in tuple(Role):
            raise UserError(f"{where} ({name}): role {role!r}: must be one of {', '.join(Role)}")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise UserError(f"{where} ({name}): sha256 must be 64 hex digits; add tokens with `deploy-mcp token add`")
        if any(entry.name == name for entry in entries):
            raise UserError(f"{where}: name {name!r} appears twice; each identity has one entry")
        entries.append(TokenEntry(name, Role(role), digest))
    return tuple(entries)


def add_token(path: Path, name: str, role: Role | str) -> str:
    """Add an identity to the token file (created 0600 if missing) and return its new token, which is not kept:
    the file stores only its hash. An existing name is refused; remove its entry first to replace it."""
    if not _NAME.fullmatch(name):
        raise UserError(f"NAME: {name!r}: use letters, digits, '.', '_', '-' or '@' (up to 64)")
    if role not in tuple(Role):
        raise UserError(f"--role: {role!r}: must be one of {', '.join(Role)}")
    existing: list[dict[str, Any]] = []
    if path.exists():
        text = path.read_text(encoding="utf-8")
        entries = parse_token_file(text, path)
        if any(entry.name == name for entry in entries):
            raise UserError(f"{path} already has a token for {name!r}; remove its [[tokens]] entry to replace it")
        existing = list(tomllib.loads(text).get("tokens", []))
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    created = datetime.now(UTC).replace(microsecond=0).isoformat()
    existing.append({"name": name, "role": str(Role(role)), "sha256": token_digest(token), "created": created})
    _write_private(path, tomli_w.dumps({"tokens": existing}))
    return token


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a file only its owner can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
