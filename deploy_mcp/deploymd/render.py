"""Filling the DEPLOY.md templates, and refusing a document that lacks its rollback procedure.

jinja2 is imported here, inside the function, because the MCP server imports tool modules on first call and
start-up time matters. Undefined names are errors (StrictUndefined): a typo in a template must fail the test
suite, not print an empty command into someone's runbook. ``trim_blocks``/``lstrip_blocks`` keep the template
readable without leaking its indentation into the Markdown.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from pathlib import Path
from typing import Any

from deploy_mcp.core.units import percent
from deploy_mcp.errors import UserError

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "deploy_md"
MAIN_TEMPLATE = "DEPLOY.md.j2"
ROLLBACK_HEADING = "## Rollback"


class RenderError(UserError):
    """The document could not be produced complete; nothing is written."""


def render(context: dict[str, Any]) -> str:
    import jinja2

    try:
        text = _environment().get_template(MAIN_TEMPLATE).render(**context)
    except jinja2.TemplateError as exc:  # a bug in our templates, reported with where it is
        where = f"{getattr(exc, 'filename', None) or MAIN_TEMPLATE}:{getattr(exc, 'lineno', '?')}"
        raise RenderError(f"the DEPLOY.md template failed ({where}): {exc}") from None
    return tidy(text)


@functools.cache
def _environment() -> Any:
    """One jinja2 environment per process: it caches the compiled templates."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Markdown, not HTML
    )
    environment.filters.update(
        sh=_shell,
        json=json.dumps,
        percent=percent,
        num=lambda value: f"{value:g}",
        cell=lambda text: str(text).replace("|", "\\|"),
        image=image_reference,
    )
    environment.globals.update(selector_patch=selector_patch, listener_weights=listener_weights, flag_off=flag_off)
    return environment


def tidy(text: str) -> str:
    """At most one blank line in a row, no trailing spaces, exactly one newline at the end."""
    lines = [line.rstrip() for line in text.splitlines()]
    kept: list[str] = []
    for line in lines:
        if line == "" and (not kept or kept[-1] == ""):
            continue
        kept.append(line)
    while kept and kept[-1] == "":
        kept.pop()
    return "\n".join(kept) + "\n"


def sections(text: str) -> list[str]:
    """The second-level headings, in order: what the document is made of."""
    return [line[3:].strip() for line in _outside_fences(text) if line.startswith("## ")]


def require_rollback(text: str, environments: list[tuple[str, str]]) -> None:
    """The skill's one hard rule: DEPLOY.md documents the rollback, for every service and environment, with
    commands. Checked on the final text, so neither a template change nor a merge can drop it silently."""
    lines = _outside_fences(text, keep_fences=True)
    try:
        start = lines.index(ROLLBACK_HEADING)
    except ValueError:
        raise RenderError("the generated DEPLOY.md has no Rollback section; nothing was written") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    section = lines[start:end]
    missing = []
    for service, environment in environments:
        heading = rollback_heading(service, environment)
        if heading not in section:
            missing.append(f"{service}/{environment}")
            continue
        at = section.index(heading)
        following = next((i for i in range(at + 1, len(section)) if section[i].startswith("### ")), len(section))
        if not any(line.startswith("```") for line in section[at:following]):
            missing.append(f"{service}/{environment} (no commands)")
    if missing:
        raise RenderError(
            "the generated DEPLOY.md lacks the rollback procedure for " + ", ".join(missing) + "; nothing was written"
        )


def rollback_heading(service: str, environment: str) -> str:
    return f"### Roll back {service} in {environment}"


def _outside_fences(text: str, keep_fences: bool = False) -> list[str]:
    """The lines of ``text`` outside fenced code blocks (fence lines themselves kept when asked)."""
    result: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        match = re.match(r"^(`{3,}|~{3,})", line)
        if match:
            if fence is None:
                fence = match.group(1)
            elif line.strip() == fence or (line.startswith(fence) and not line[len(fence) :].strip()):
                fence = None
            if keep_fences:
                result.append(line)
            continue
        if fence is None:
            result.append(line)
        elif keep_fences:
            result.append("")
    return result


def _shell(value: object) -> str:
    return shlex.quote(str(value))


def image_reference(image: str) -> str:
    """A configured image with the shell's $VERSION for the version: `{version}` replaced, or a tag added."""
    if "{version}" in image:
        return image.replace("{version}", "${VERSION}")
    name = image.rsplit("/", 1)[-1]
    return image if ":" in name or "@" in name else f"{image}:${{VERSION}}"


def selector_patch(service: str, slot: str) -> str:
    """The JSON patch that points a Kubernetes Service at one blue-green slot."""
    return json.dumps({"spec": {"selector": {"app": service, "slot": slot}}}, separators=(",", ":"))


def listener_weights(stable: int, new: int) -> str:
    """An ALB forward action splitting traffic between $STABLE_TG and $NEW_TG, escaped for double quotes."""
    action = [
        {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [
                    {"TargetGroupArn": "$STABLE_TG", "Weight": stable},
                    {"TargetGroupArn": "$NEW_TG", "Weight": new},
                ]
            },
        }
    ]
    return json.dumps(action, separators=(",", ":")).replace('"', '\\"')


def flag_off(name: str) -> str:
    """The jq program that turns a flagd flag off: default variant off, no fractional targeting."""
    key = json.dumps(name)
    return f'.flags[{key}].defaultVariant = "off" | del(.flags[{key}].targeting)'
