"""One masking function for everything deploy-mcp shows or records: commands, configuration and process output.

Why one: deploy://config, DEPLOY.md, preflight's evidence and the CLI each printed commands their own way, and
the one that forgot to mask leaked the password the others hid. ``mask_secrets`` masks configuration values and
commands (secret-looking keys, flags and assignments, passwords in URLs); ``mask_command`` is it for one command;
``redact_output`` cleans free text a process printed (a crashing instance's stderr, a test run's output) before it
is shown to an agent or written to the ledger: the values of the service's own env, passwords in URLs, and
well-known token shapes. Masking too much costs a look at deploy.toml; masking too little leaks a credential to
every agent.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from typing import Any, overload

# Keys whose values are secrets wherever they appear; env tables are masked whole (see mask_secrets).
_SECRET_KEY = re.compile(
    r"secret|token|passw|passphrase|pwd|credential|api[_-]?key|private|auth|signing|session|cookie|salt|dsn"
    r"|(?:^|[_.-])(?:pass|key)(?:$|[_.-])",
    re.IGNORECASE,
)
# Words that make a flag secret; `pass` and `auth` only as whole words, so --bypass and --oauth-scopes stay readable.
_SECRET_FLAG_WORDS = r"(?:password|passwd|passphrase|pwd|token|secret|key|credentials?|(?<![a-z0-9])(?:pass|auth))"
# A secret flag's name: --db-password, --api-key, --pass, --auth.
_FLAG_NAME = rf"-{{1,2}}[\w.-]*?{_SECRET_FLAG_WORDS}"
# A quoted value, masked whole so `--password "hunter 2"` leaks no part of it: "..." (backslash escapes) or '...'.
_QUOTED = r""""(?:\\.|[^"\\])*"|'[^']*'"""
# --db-password=VALUE or --db-password VALUE inside one command string; VALUE may be quoted or start with `-`,
# but a following secret flag is not a value (`--password --token X` masks X).
_SECRET_FLAG = re.compile(
    rf"(?<![\w-])(?P<flag>{_FLAG_NAME})(?P<sep>=|\s+)(?!{_FLAG_NAME}(?:[=\s]|$))(?P<value>{_QUOTED}|[^\s'\"]+)",
    re.IGNORECASE,
)
# --db-password as one list item: the next item is its value, whatever it looks like.
_SECRET_FLAG_ALONE = re.compile(_FLAG_NAME, re.IGNORECASE)
# NAME=VALUE, as in `DB_PASSWORD="x y" ./run` or a query string (a bare value stops at `&`); masked if NAME is secret.
_ASSIGNMENT = re.compile(rf"(?<![\w.-])(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>{_QUOTED}|[^\s'\"&]+)")
# mysql's -p takes the password glued on (-phunter2, -p"hunter 2"). Elsewhere -p is mostly a port or a path, so this
# applies only when the command's program is one of these. Case-sensitive: mysql's -P is the port.
_GLUED_PASSWORD_PROGRAMS = frozenset({"mysql", "mysqldump", "mysqladmin", "mariadb", "mariadb-dump"})
_GLUED_PASSWORD = re.compile(rf"(?<![\w-])-p(?P<value>{_QUOTED}|[^\s'\"]+)")
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
MASK = "****"


def mask_secrets(value: Any, key: str = "") -> Any:
    """Secrets never leave the server.

    Masked: every value of an ``env`` table (any of them may be a secret, and its name is enough to plan with),
    values under secret-looking keys, passwords in URLs, and secret-looking flags and assignments inside commands.
    Masking too much costs a look at deploy.toml; masking too little leaks a credential to every agent.
    """
    if isinstance(value, dict):
        if key == "env" and all(isinstance(v, str) for v in value.values()):
            return {name: MASK if text else text for name, text in value.items()}
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return _mask_flag_values([mask_secrets(v, key) for v in value])
    if isinstance(value, str):
        if key and _SECRET_KEY.search(key):
            return MASK
        return _mask_text(value)
    return value


def _mask_text(text: str) -> str:
    text = _URL_USERINFO.sub(rf"\g<scheme>{MASK}@", text)
    text = _SECRET_FLAG.sub(lambda m: f"{m['flag']}{m['sep']}{_masked(m['value'])}", text)
    text = _ASSIGNMENT.sub(
        lambda m: f"{m['name']}={_masked(m['value'])}" if _SECRET_KEY.search(m["name"]) else m[0], text
    )
    if _program(text) in _GLUED_PASSWORD_PROGRAMS:
        text = _GLUED_PASSWORD.sub(lambda m: f"-p{_masked(m['value'])}", text)
    return text


def _mask_flag_values(items: list[Any]) -> list[Any]:
    """In an argument list, the item after a secret flag such as ``--db-password`` is its value.

    Even when it starts with `-`: ``-x9!`` is a fine password, and masking a flag by mistake costs only readability.
    For mysql-like programs the rest of a ``-p<password>`` item is a password too.
    """
    masked = list(items)
    for index, (item, following) in enumerate(itertools.pairwise(items)):
        if isinstance(item, str) and isinstance(following, str) and _SECRET_FLAG_ALONE.fullmatch(item):
            masked[index + 1] = MASK
    if items and isinstance(items[0], str) and _program(items[0]) in _GLUED_PASSWORD_PROGRAMS:
        masked[1:] = [_mask_glued_password(item) for item in masked[1:]]
    return masked


def _mask_glued_password(item: Any) -> Any:
    """One list item is one argument, so everything after ``-p`` is the password, spaces included."""
    if isinstance(item, str) and item.startswith("-p") and len(item) > len("-p"):
        return f"-p{MASK}"
    return item


def _masked(value: str) -> str:
    """The mask inside the value's own quotes, so the command still reads as written."""
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{quote}{MASK}{quote}"


def _program(command: str) -> str:
    """The program a command runs: its first word without a directory (mysql for ``/usr/bin/mysql -u root``)."""
    words = command.split(maxsplit=1)
    return words[0].rsplit("/", 1)[-1] if words else ""


# Free text a process printed: things that are secrets whatever surrounds them.
_TOKEN_SHAPES = re.compile(
    r"(?P<bearer>\bBearer\s+)[A-Za-z0-9._~+/=-]{8,}"  # Authorization: Bearer ...
    r"|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"  # AWS access key ids
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}\b"  # GitHub tokens
    r"|\bgithub_pat_[A-Za-z0-9_]{30,}\b"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}\b"  # Slack tokens
    r"|\bsk-[A-Za-z0-9_-]{20,}\b"  # API keys of the sk- kind (OpenAI, Stripe, Anthropic)
    r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWTs
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"
)
# NAME: VALUE or NAME=VALUE in output, masked when NAME looks secret (password=..., "api_key": "...").
_OUTPUT_ASSIGNMENT = re.compile(
    r"""(?P<name>[A-Za-z_][\w.-]*)(?P<sep>["']?\s*[:=]\s*)(?P<value>"[^"\n]*"|'[^'\n]*'|[^\s,;&"'}]+)"""
)
MIN_SECRET_LENGTH = 4
"""Shorter env values (ports, "1", "on") are not hidden in output: masking them would garble every line."""


@overload
def mask_command(command: str) -> str: ...
@overload
def mask_command(command: list[str] | None) -> list[str] | None: ...
def mask_command(command: list[str] | str | None) -> list[str] | str | None:
    """A command as it may be shown: the same words with secret values replaced by ****."""
    if command is None:
        return None
    masked: list[str] | str = mask_secrets(command, "command")  # the same shape it was given
    return masked


def redact_output(text: str, secrets: Iterable[str] = ()) -> str:
    """Process output as it may be recorded: ``secrets`` (the service's env values) and known shapes masked."""
    values = sorted({s for s in secrets if isinstance(s, str) and len(s.strip()) >= MIN_SECRET_LENGTH}, key=len)
    for value in reversed(values):  # longest first, so a value containing another is masked whole
        text = text.replace(value, MASK)
    text = _URL_USERINFO.sub(rf"\g<scheme>{MASK}@", text)
    text = _TOKEN_SHAPES.sub(lambda m: f"{m['bearer']}{MASK}" if m["bearer"] else MASK, text)
    text = _OUTPUT_ASSIGNMENT.sub(
        lambda m: f"{m['name']}{m['sep']}{_masked(m['value'])}" if _SECRET_KEY.search(m["name"]) else m[0], text
    )
    return _mask_text(text)


def service_secrets(service: Any) -> list[str]:
    """The values a service's answers may echo that are its own secrets: its env (every version's too) and what it
    inherits from deploy-mcp's environment (``inherit_env``). ``service``: a config ``Service``."""
    import os

    values = [*service.env.values()]
    for override in service.versions.values():
        values.extend(override.env.values())
    values.extend(os.environ[name] for name in service.inherit_env if name in os.environ)
    return values


def redact_strings(value: Any, secrets: Iterable[str] = ()) -> Any:
    """``value`` (a dict, list or text, as a model dumps) with every text passed through `redact_output`."""
    secrets = list(secrets)
    if isinstance(value, str):
        return redact_output(value, secrets)
    if isinstance(value, dict):
        return {key: redact_strings(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_strings(item, secrets) for item in value]
    return value
