"""Our tools, and a server that builds each one only when it is first called.

Building a tool means importing its module (the domain models, the ledger) and generating its JSON schemas with
pydantic, about 25 ms a tool; eleven tools would double the server's start-up. So `tools/list` is answered from
`tool_schemas.json`, the listing the eager build produces, and a tool is built for real the first time it is
called. A test rebuilds the listing eagerly and fails when the file is stale; `python -m
deploy_mcp.server.toolset` rewrites it.
"""

from __future__ import annotations

import importlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from mcp_types import Tool as MCPTool
from pydantic import BaseModel

SCHEMA_FILE = Path(__file__).with_name("tool_schemas.json")

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)
CHANGING = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    target: str  # "module:function"; the function takes the App first
    annotations: ToolAnnotations

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("plan_deployment", "deploy_mcp.tools.planning:plan_deployment", READ_ONLY),
    ToolSpec("preflight", "deploy_mcp.tools.preflight:preflight", READ_ONLY),
    ToolSpec("lint_migrations", "deploy_mcp.tools.migrations:lint_migrations", READ_ONLY),
    ToolSpec("deploy", "deploy_mcp.tools.deploying:deploy", DESTRUCTIVE),
    ToolSpec("deployment_status", "deploy_mcp.tools.steering:deployment_status", READ_ONLY),
    ToolSpec("promote", "deploy_mcp.tools.steering:promote", DESTRUCTIVE),
    ToolSpec("pause", "deploy_mcp.tools.steering:pause", CHANGING),
    ToolSpec("resume", "deploy_mcp.tools.steering:resume", DESTRUCTIVE),
    ToolSpec("abort", "deploy_mcp.tools.steering:abort", DESTRUCTIVE),
    ToolSpec("validate", "deploy_mcp.tools.validation:validate", READ_ONLY),
    ToolSpec("rollback", "deploy_mcp.tools.rollback:rollback", DESTRUCTIVE),
    ToolSpec("deployment_history", "deploy_mcp.tools.history:deployment_history", READ_ONLY),
    ToolSpec("generate_monitoring", "deploy_mcp.tools.monitoring:generate_monitoring", READ_ONLY),
    ToolSpec("generate_deploy_md", "deploy_mcp.tools.deploy_md:generate_deploy_md", CHANGING),
)

CONTRACT_TOOLS: frozenset[str] = frozenset(
    {
        "plan_deployment",
        "preflight",
        "deploy",
        "deployment_status",
        "promote",
        "pause",
        "resume",
        "abort",
        "validate",
        "rollback",
        "deployment_history",
        "generate_deploy_md",
        "generate_monitoring",
        "lint_migrations",
    }
)
"""The tools the design's MCP contract promises, written out apart from TOOLS: the reference names any this
version lacks, and prompts and references may name no others."""


class DeployServer(MCPServer):
    """An MCPServer whose tools are listed from a cached listing and built on first call."""

    def __init__(self, app: Any, **settings: Any) -> None:
        from deploy_mcp.server.apps import rollout_extension

        settings.setdefault("extensions", [rollout_extension()])  # the live rollout view (MCP Apps)
        super().__init__(**settings)
        self.app = app
        self._pending = {spec.name: spec for spec in TOOLS}
        self.full_output_schemas: dict[str, dict[str, Any]] = {}
        """Each built tool's output schema as pydantic writes it, every nested model spelled out (the reference)."""
        self._listing = _cached_listing()
        if set(self._listing) != set(self._pending):  # no listing, or one from another set of tools
            self.build_all()

    def build_all(self) -> None:
        for name in list(self._pending):
            self._build(name)

    def _build(self, name: str) -> None:
        from deploy_mcp.server.binding import bind

        spec = self._pending.pop(name, None)
        if spec is not None:
            from deploy_mcp.server.apps import ui_meta

            tool = bind(spec.load(), self.app)
            self.add_tool(tool, name=spec.name, annotations=spec.annotations, meta=ui_meta(spec.name))
            self._shorten_schemas(spec.name)

    def _shorten_schemas(self, name: str) -> None:
        """The listing's schemas without what pydantic repeats (server/schemas.py says what goes and why)."""
        from deploy_mcp.server.schemas import OUTPUT_DEPTH, collapse_nested, compact_input, compact_output

        tool = self._tool_manager.get_tool(name)
        assert tool is not None
        tool.parameters = compact_input(tool.parameters)
        metadata = tool.fn_metadata
        if metadata.output_schema is not None:
            self.full_output_schemas[name] = metadata.output_schema
            metadata.output_schema = collapse_nested(compact_output(metadata.output_schema), OUTPUT_DEPTH)

    async def list_tools(self) -> list[MCPTool]:
        built = {tool.name: tool for tool in await super().list_tools()}
        return [built[spec.name] if spec.name in built else self._listing[spec.name] for spec in TOOLS]

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        self._build(name)
        spec = next((spec for spec in TOOLS if spec.name == name), None)
        if spec is not None:
            from deploy_mcp.server.arguments import unknown_arguments_message

            changing = not spec.annotations.read_only_hint
            refusal = unknown_arguments_message(name, arguments, self._tool_input_schema(name), changing=changing)
            if refusal is not None:
                raise ToolError(refusal)
        from deploy_mcp.server.identities import CALLER, caller_from_context

        caller = CALLER.set(caller_from_context(context) if context is not None else None)
        try:
            result = await super().call_tool(name, arguments, context)
        except ToolError as exc:
            from pydantic import ValidationError

            if type(exc) is not ToolError or not isinstance(exc.__cause__, ValidationError):
                raise
            from deploy_mcp.server.binding import describe_invalid_arguments

            schema = self._tool_input_schema(name)
            raise ToolError(describe_invalid_arguments(name, exc.__cause__, schema)) from None
        finally:
            CALLER.reset(caller)
        return self._summarized(name, result)

    def _summarized(self, name: str, result: Any) -> Any:
        """The result with the text an agent reads made a summary; structuredContent keeps the whole record."""
        if not isinstance(result, CallToolResult) or result.is_error or result.structured_content is None:
            return result
        tool = self._tool_manager.get_tool(name)
        model = tool.fn_metadata.output_model if tool is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return result
        from deploy_mcp.server.summaries import summary_for

        try:
            text = summary_for(model.model_validate(result.structured_content))
        except Exception:  # a summary that cannot be written must not turn a done deed into an error
            logging.getLogger(__name__).exception("summary of %s failed; sending the record as JSON", name)
            text = json.dumps(result.structured_content, separators=(",", ":"))
        return result.model_copy(update={"content": [TextContent(type="text", text=text)]})

    def _tool_input_schema(self, name: str) -> dict[str, Any] | None:
        self._build(name)
        return super()._tool_input_schema(name)


def _cached_listing() -> dict[str, MCPTool]:
    try:
        entries = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {entry["name"]: MCPTool.model_validate(entry) for entry in entries}


async def eager_listing(app: Any) -> list[dict[str, Any]]:
    """The listing as the SDK builds it from the functions themselves."""
    server = DeployServer(app, name="deploy-mcp")
    server.build_all()
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in await server.list_tools()]


def main() -> None:
    import anyio

    from deploy_mcp.app import App

    listing = anyio.run(eager_listing, App.load())
    SCHEMA_FILE.write_text(json.dumps(listing, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {SCHEMA_FILE.name} ({len(listing)} tools)")


if __name__ == "__main__":
    main()
