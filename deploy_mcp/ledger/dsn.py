"""Where a team ledger lives: a ``postgresql://`` URL, its password kept out of deploy.toml and out of every message.

deploy.toml is committed, so a URL there must not hold a password: it comes from ``PGPASSWORD`` (libpq reads it
itself) or from the file named by ``DEPLOY_MCP_LEDGER_PASSWORD_FILE`` (a mounted secret). ``DEPLOY_MCP_LEDGER``
overrides deploy.toml, so each replica can point at its database without editing the project. Pure text
handling: nothing here imports psycopg, so deploy.toml validates on a machine without it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from deploy_mcp.errors import UserError

ENV_LEDGER = "DEPLOY_MCP_LEDGER"
ENV_PASSWORD_FILE = "DEPLOY_MCP_LEDGER_PASSWORD_FILE"
SCHEMES = ("postgresql", "postgres")
MASK = "***"
INSTALL_HINT = "pip install 'deploy-mcp[postgresql]'"
_PASSWORD_PARAM = re.compile(r"(?i)([?&]password=)[^&]*")


def is_postgres_url(value: str) -> bool:
    return urlsplit(value).scheme.lower() in SCHEMES


def password_in(url: str) -> str | None:
    """The password a URL carries, in its user part or as a ``password=`` parameter; None when it has none."""
    parts = urlsplit(url)
    if parts.password:
        return unquote(parts.password)
    for piece in parts.query.split("&"):
        name, _, value = piece.partition("=")
        if name.lower() == "password" and value:
            return unquote(value)
    return None


def mask(url: str) -> str:
    """The URL as it may be shown anywhere: its password, if any, replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostinfo}"
    query = _PASSWORD_PARAM.sub(lambda match: match.group(1) + MASK, parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def check_config_url(value: str) -> str:
    """deploy.toml's ``ledger``: a PostgreSQL URL without a password (the error names the fix)."""
    if not is_postgres_url(value):
        raise ValueError(
            f"{value!r} is not a PostgreSQL URL; write it like 'postgresql://deploy@db.internal/deploy_mcp', or "
            "leave ledger out to keep the SQLite file .deploy/ledger.db"
        )
    if password_in(value) is not None:
        raise ValueError(
            f"{mask(value)}: a password does not belong in deploy.toml, which is committed; remove it from the URL "
            f"and give it through PGPASSWORD or {ENV_PASSWORD_FILE} (a file holding only the password)"
        )
    return value


@dataclass(frozen=True)
class LedgerUrl:
    """A PostgreSQL ledger to connect to: the URL (may hold a password when it came from the environment), the
    password from a file if one was given, and where the URL was set, for messages."""

    url: str
    password: str | None
    source: str

    @property
    def shown(self) -> str:
        return mask(self.url)

    def scrub(self, text: str) -> str:
        """``text`` (a driver's error, say) with any password of this ledger replaced by ``***``."""
        for secret in (self.password, password_in(self.url)):
            if secret:
                text = text.replace(secret, MASK)
        return text.replace(self.url, self.shown)


def resolve(configured: str | None, environ: Mapping[str, str] | None = None) -> LedgerUrl | None:
    """The team ledger this process uses, or None for the SQLite file beside deploy.toml."""
    env = os.environ if environ is None else environ
    url, source = env.get(ENV_LEDGER, "").strip(), ENV_LEDGER
    if not url:
        if not configured:
            return None
        url, source = configured, "ledger in deploy.toml"
    if not is_postgres_url(url):
        raise UserError(
            f"{source}: {mask(url)!r} is not a PostgreSQL URL; write it like "
            "'postgresql://deploy@db.internal/deploy_mcp', or unset it to keep the SQLite file .deploy/ledger.db"
        )
    return LedgerUrl(url=url, password=_password_from_file(env), source=source)


def _password_from_file(env: Mapping[str, str]) -> str | None:
    name = env.get(ENV_PASSWORD_FILE, "").strip()
    if not name:
        return None
    try:
        password = Path(name).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UserError(
            f"{ENV_PASSWORD_FILE}: cannot read {name}: {exc.strerror}; point it at a readable file holding only "
            "the ledger's password"
        ) from None
    if not password:
        raise UserError(f"{ENV_PASSWORD_FILE}: {name} is empty; write the ledger's password into it")
    return password
