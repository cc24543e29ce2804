"""The `deploy-mcp` command: the MCP server and the same operations for people at a terminal.

Only argparse is imported at start; each command imports what it needs, so `deploy-mcp serve` starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from deploy_mcp import __version__
from deploy_mcp.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from deploy_mcp.app import App
    from deploy_mcp.core.records import Status
    from deploy_mcp.server.auth import AnyOf


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deploy-mcp", description="Ship services safely: an MCP server for coding agents, and its CLI."
    )
    parser.add_argument("--config", help="path to deploy.toml (default: $DEPLOY_MCP_CONFIG, then search upwards)")
    parser.add_argument("--version", action="version", version=f"deploy-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the MCP server (stdio by default)")
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    serve.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME[:PORT]",
        help="a Host name clients use to reach the server (repeatable); needed with --host 0.0.0.0 or ::",
    )
    serve.add_argument(
        "--token-file",
        help="identities and roles: a token file written by `deploy-mcp token add` (default: "
        "$DEPLOY_MCP_TOKEN_FILE); a file holding one bearer token is the single shared token, as $DEPLOY_MCP_TOKEN",
    )
    serve.add_argument(
        "--insecure-no-auth", action="store_true", help="serve HTTP without a token (loopback addresses only)"
    )
    serve.add_argument("--oidc-issuer", metavar="URL", help="also accept OIDC access tokens (JWT) of this issuer")
    serve.add_argument(
        "--oidc-resource",
        metavar="URL",
        help="with --oidc-issuer: this server's MCP URL as clients use it; tokens must be issued for it (aud)",
    )
    serve.add_argument(
        "--oidc-role-claim", default="roles", help="the claim holding viewer, deployer or releaser (default roles)"
    )

    init = commands.add_parser("init", help="write a commented starter deploy.toml here")
    init.add_argument("--service", default="web", help="name of the first service (default web)")
    init.add_argument("--force", action="store_true", help="overwrite an existing deploy.toml")

    history = commands.add_parser("history", help="show the deployment ledger")
    history.add_argument("--service")
    history.add_argument("--environment")
    history.add_argument("--limit", type=int, default=20)

    approve = commands.add_parser(
        "approve",
        help="approve a change for a service and environment (people only; for production, through --server)",
        description=_paragraphs(
            "Record a person's approval of a change. With --server it goes to the team server and is recorded "
            "under the identity of your token, which must have the releaser role: that approval lets another "
            "caller's production change go ahead. Without --server it is written to this project's ledger as a "
            "change record only: it never counts as consent for production, because a program running as you "
            "could run this command too.",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    approve.add_argument("change_id", metavar="CHANGE-ID")
    approve.add_argument("--service", required=True)
    approve.add_argument("--environment", required=True)
    approve.add_argument(
        "--approved-by", help="your name, as it goes into the record (local only; the server uses your identity)"
    )
    approve.add_argument("--server", metavar="URL", help="the team server, e.g. https://deploy.internal:8765")
    approve.add_argument(
        "--token-file", help="with --server: a file holding your own bearer token (default: $DEPLOY_MCP_TOKEN)"
    )
    approve.add_argument("--expires-in", type=float, default=24 * 3600, help="seconds the approval holds (24 h)")
    approve.add_argument(
        "--version",
        help="approve only this version (default: any version); either way one deployment can start under it",
    )

    token = commands.add_parser("token", help="identities of the HTTP server: add a token to a token file")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    add = token_commands.add_parser(
        "add", help="add an identity with a role; prints its token once, the file keeps only the hash"
    )
    add.add_argument("name", metavar="NAME", help="who holds it, as records will name them, e.g. alice or ci-agent")
    add.add_argument("--role", required=True, choices=["viewer", "deployer", "releaser"])
    add.add_argument("--token-file", help="the token file (default: $DEPLOY_MCP_TOKEN_FILE); created 0600")

    _add_deployment_commands(commands)

    demo = commands.add_parser("demo", help="watch the SHIP loop on the local platform, driven through MCP")
    demo.add_argument("--keep", action="store_true", help="leave the demo project and its services running")
    demo.add_argument(
        "--short", action="store_true", help="ship one release to staging only: a quick check that an install works"
    )

    local = commands.add_parser("local", help="the embedded local platform: what runs, and stopping it")
    local_commands = local.add_subparsers(dest="local_command", required=True, metavar="ACTION")
    local_commands.add_parser("status", help="versions, instances, weights and health of every service")
    stop = local_commands.add_parser("stop", help="stop a service's instances and router")
    stop.add_argument("service")
    stop.add_argument("--environment", help="only this environment (default: all)")
    return parser


EXIT_CODES = (
    "exit status: 0 when it reached what was asked (succeeded; for abort, aborted; for pause, paused), 3 when "
    "it paused for a decision, 1 when it ended otherwise (failed, rolled back, aborted), 2 for a mistake in the "
    "command (nothing changed), 130 after Ctrl-C."
)
WATCH_NOTE = (
    "A deployment runs in the process that drives it, so this command stays until the deployment succeeds, "
    "pauses or ends, showing each step as it happens. Ctrl-C (or SIGTERM) hands it back as interrupted with "
    "traffic as it is; `deploy-mcp resume ID` carries it on, `deploy-mcp abort ID --reason TEXT` undoes it. "
    "When it pauses, this command ends the same way and prints what to run next."
)
CONSENT_NOTE = (
    "A production change that policy.require_confirmation covers is not done from a terminal: no terminal can "
    "tell a person from a program running as the same user. It goes through an MCP client that asks its user, or "
    "the team server, where a releaser approves it with their own token."
)


def _paragraphs(*paragraphs: str) -> str:
    import textwrap

    return "\n\n".join(textwrap.fill(paragraph, 100) for paragraph in paragraphs)


def _add_deployment_commands(commands: argparse._SubParsersAction) -> None:
    """The mirrors of the MCP tools: the same plan, policy, consent rule and Runner, for a person."""
    detailed = {"formatter_class": argparse.RawDescriptionHelpFormatter}  # keeps the paragraphs of _paragraphs

    deploy = commands.add_parser(
        "deploy",
        help="ship a version and watch it step by step until it succeeds, pauses or ends (Ctrl-C hands it "
        "back as interrupted: resume it later)",
        description=_paragraphs(
            "Ship VERSION of SERVICE to an environment with its strategy's steps, gates and analysis.",
            WATCH_NOTE,
            CONSENT_NOTE,
            EXIT_CODES,
        ),
        **detailed,
    )
    deploy.add_argument("service", metavar="SERVICE", help="a service of deploy.toml")
    deploy.add_argument("version", metavar="VERSION", help="the version to ship, e.g. 2.1.0")
    deploy.add_argument("--environment", required=True, help="where to ship it, e.g. staging")
    deploy.add_argument("--strategy", help="override the environment's strategy (canary, blue-green, rolling, ...)")
    deploy.add_argument("--change-id", help="the approved change record, e.g. CHG-1234 (see `deploy-mcp approve`)")

    status = commands.add_parser(
        "status", help="a deployment's record: steps and times, verdicts with their numbers, live traffic weights"
    )
    status.add_argument("deployment_id", metavar="ID", help="a deployment id, as `deploy-mcp history` lists them")

    validate = commands.add_parser(
        "validate",
        help="check what serves now (health, smoke, metrics): pass, warn or fail, and what to do",
        description=_paragraphs(
            "Check what serves now and record the verdict on the deployment.",
            "exit status: 0 pass, 3 warn (investigate), 1 fail (roll back, or fix forward after an irreversible "
            "migration), 2 for a mistake in the command.",
        ),
        **detailed,
    )
    validate.add_argument("service", metavar="SERVICE")
    validate.add_argument("--environment", required=True)
    validate.add_argument(
        "--deployment",
        metavar="ID",
        help="the deployment to report on (default: the current one); the verdict is recorded only on the current "
        "deployment while its version serves",
    )

    rollback = commands.add_parser(
        "rollback",
        help="back to the last version that passed validation (or --to), as a deployment of its own",
        description=_paragraphs(
            "Return SERVICE to the last deployment that passed validation, or to --to.",
            WATCH_NOTE,
            CONSENT_NOTE,
            EXIT_CODES,
        ),
        **detailed,
    )
    rollback.add_argument("service", metavar="SERVICE")
    rollback.add_argument("--environment", required=True)
    rollback.add_argument("--reason", required=True, help="why, for the record and the incident")
    rollback.add_argument("--to", metavar="ID|VERSION", help="a deployment id or a version (default: last validated)")

    for verb, what in (
        ("promote", "go on past a paused step or the running analysis, and watch it to the end"),
        ("resume", "continue a paused or interrupted deployment (its analysis runs again), and watch it"),
        ("pause", "hold a deployment another process drives at its current step; traffic stays as it is"),
    ):
        steer = commands.add_parser(
            verb, help=what, description=_paragraphs(f"{what[0].upper()}{what[1:]}.", EXIT_CODES), **detailed
        )
        steer.add_argument("deployment_id", metavar="ID")
    abort = commands.add_parser(
        "abort",
        help="stop a deployment and undo it: traffic back to the version that served before",
        description=_paragraphs("Stop a deployment and undo it; never needs confirmation.", EXIT_CODES),
        **detailed,
    )
    abort.add_argument("deployment_id", metavar="ID")
    abort.add_argument("--reason", required=True, help="why, for the record")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except UserError as exc:
        print(f"deploy-mcp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("DEPLOY_MCP_DEBUG"):
            raise
        print(
            f"deploy-mcp: internal error: {type(exc).__name__}: {exc} (set DEPLOY_MCP_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(args)
    if args.command == "init":
        return _init(args)
    if args.command == "history":
        return _history(args)
    if args.command == "local":
        return _local(args)
    if args.command == "approve":
        return _approve(args)
    if args.command == "token":
        return _token(args)
    if args.command in _DEPLOYMENT_COMMANDS:
        return _DEPLOYMENT_COMMANDS[args.command](args)
    if args.command == "demo":
        from deploy_mcp.demo import run_demo

        return run_demo(keep=args.keep, short=args.short)
    raise AssertionError(args.command)


def _serve(args: argparse.Namespace) -> int:
    from deploy_mcp.app import App
    from deploy_mcp.server.app import build_server

    app = App.load(args.config)  # read on first use; an invalid deploy.toml is reported by every tool
    if not args.http:
        build_server(app).run("stdio")
        return 0
    from deploy_mcp.server.http import check_startup, resolve_token, serve_http

    verifier = _identities(args)
    token = None if verifier is not None else resolve_token(args.token_file)
    allowed_hosts = args.allowed_host or []
    check_startup(args.host, token, args.insecure_no_auth, allowed_hosts, identities=verifier is not None)
    how = "identities and roles" if verifier is not None else "one shared token"
    if verifier is not None and os.environ.get("DEPLOY_MCP_TOKEN"):
        print("deploy-mcp: DEPLOY_MCP_TOKEN is not accepted: callers are known by their own tokens", file=sys.stderr)
    print(f"deploy-mcp: serving MCP on http://{args.host}:{args.port}/mcp ({how})", file=sys.stderr)
    serve_http(build_server(app), args.host, args.port, token, allowed_hosts, verifier)
    return 0


def _identities(args: argparse.Namespace) -> AnyOf | None:
    """Who may call, when the server knows its callers: the token file (--token-file, else $DEPLOY_MCP_TOKEN_FILE)
    and OIDC access tokens (--oidc-issuer). None: the single shared token, as before identities; that is also
    what a --token-file holding one bearer token rather than [[tokens]] means."""
    from deploy_mcp.server.auth import AnyOf, IdentityVerifier, OidcMetadata, TokenFileVerifier
    from deploy_mcp.server.identities import TOKEN_FILE_ENV, TokenFile

    verifiers: list[IdentityVerifier] = []
    path_text = args.token_file or os.environ.get(TOKEN_FILE_ENV, "").strip()
    if path_text:
        path = Path(path_text).expanduser()
        where = "--token-file" if args.token_file else f"${TOKEN_FILE_ENV}"
        if not path.is_file():
            raise UserError(f"{where}: {path} does not exist; create it with `deploy-mcp token add NAME --role ROLE`")
        if TokenFile.is_token_file(path):
            verifiers.append(TokenFileVerifier(TokenFile(path)))
        elif not args.token_file:
            raise UserError(f"{where}: {path} has no [[tokens]]; write it with `deploy-mcp token add NAME --role ROLE`")
    if bool(args.oidc_issuer) != bool(args.oidc_resource):
        raise UserError("--oidc-issuer and --oidc-resource go together: the issuer, and this server's MCP URL")
    metadata = None
    if args.oidc_issuer:
        from deploy_mcp.server.oidc import OidcSettings, OidcVerifier, check_issuer

        check_issuer(args.oidc_issuer)
        settings = OidcSettings(args.oidc_issuer.rstrip("/"), args.oidc_resource, args.oidc_role_claim)
        verifiers.append(OidcVerifier(settings))
        metadata = OidcMetadata(settings.resource, settings.issuer)
    return AnyOf(verifiers, metadata) if verifiers else None


def _token(args: argparse.Namespace) -> int:
    from deploy_mcp.server.identities import TOKEN_FILE_ENV, add_token

    path_text = args.token_file or os.environ.get(TOKEN_FILE_ENV, "").strip()
    if not path_text:
        raise UserError(f"--token-file: say which token file to add to (or set ${TOKEN_FILE_ENV})")
    path = Path(path_text).expanduser()
    token = add_token(path, args.name, args.role)
    print(token)
    print(
        f"added {args.name} ({args.role}) to {path}. This is the only time the token is shown: the file keeps its "
        "hash. Give it to its holder, who sends it as `Authorization: Bearer TOKEN`.",
        file=sys.stderr,
    )
    return 0


def _init(args: argparse.Namespace) -> int:
    from deploy_mcp.config.loader import CONFIG_NAME, parse_config
    from deploy_mcp.config.starter import starter_config

    target = Path(args.config) if args.config else Path.cwd() / CONFIG_NAME
    if target.exists() and not args.force:
        raise UserError(f"{target} already exists; pass --force to overwrite it")
    text = starter_config(project=target.resolve().parent.name, service=args.service)
    parse_config(text)  # never write a starter that would not load
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}: edit the command, health path and environments, then run `deploy-mcp serve`")
    return 0


def _history(args: argparse.Namespace) -> int:
    from rich.console import Console

    from deploy_mcp.app import App
    from deploy_mcp.server.render import history_table
    from deploy_mcp.tools.history import deployment_history

    app = App.load(args.config)
    result = deployment_history(app, service=args.service, environment=args.environment, limit=args.limit)
    console = Console()
    if result.hint:
        console.print(result.hint)
    if result.records:
        console.print(history_table(result.records))
    return 0


def _approve(args: argparse.Namespace) -> int:
    """An approval through the team server counts for production; a local one is a change record only."""
    if args.server:
        return _approve_on_server(args)
    from deploy_mcp.app import App
    from deploy_mcp.tools.approvals import approve, describe_approval

    if not args.approved_by:
        raise UserError("--approved-by: give your name (or use --server URL, where your token names you)")
    if not sys.stdin.isatty():  # a courtesy to well-meaning agents, not a security boundary (see below)
        raise UserError(
            "approve must be run by a person in an interactive terminal; an agent may not approve its own changes"
        )
    app = App.load(args.config)
    approval = approve(
        app, args.change_id, args.service, args.environment, args.approved_by, args.expires_in, version=args.version
    )
    print(describe_approval(approval))
    if app.config.is_production(args.service, args.environment):
        print(
            "note: recorded as a change record only. It does not let a production change go ahead by itself: a "
            "program running as you could have run this command. The person confirms in their MCP client, or a "
            "releaser approves through the team server (`deploy-mcp approve ... --server URL`).",
            file=sys.stderr,
        )
    return 0


def _approve_on_server(args: argparse.Namespace) -> int:
    import httpx

    from deploy_mcp.server.http import require_private_transport, resolve_token

    if args.approved_by:
        raise UserError("--approved-by: not with --server; the server records the identity your token belongs to")
    token = resolve_token(args.token_file)
    if token is None:
        raise UserError("--server: needs your own bearer token: set $DEPLOY_MCP_TOKEN or pass --token-file FILE")
    require_private_transport(args.server, "--server")
    base = args.server.rstrip("/").removesuffix("/mcp")
    body: dict[str, object] = {
        "change_id": args.change_id,
        "service": args.service,
        "environment": args.environment,
        "expires_in": args.expires_in,
    }
    if args.version:
        body["version"] = args.version
    try:
        response = httpx.post(
            f"{base}/approvals", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
        )
    except httpx.HTTPError as exc:
        raise UserError(f"--server: cannot reach {base}: {exc}") from None
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code == 404:
        raise UserError(
            f"--server: {base} has no approvals endpoint: it serves one shared token, not identities; its "
            "operator gives it a token file with roles (`deploy-mcp token add NAME --role releaser`)"
        )
    if response.status_code != 200:
        detail = answer.get("error_description") or response.text[:300]
        raise UserError(f"the server refused the approval ({response.status_code}): {detail}")
    print(answer.get("approved", "approved"))
    return 0


# -- the mirrors of the MCP tools ---------------------------------------------------------------------------------


def _deploy(args: argparse.Namespace) -> int:
    from deploy_mcp.app import App

    app = App.load(args.config)
    _known(app, args.service, args.environment)

    from deploy_mcp.server import terminal
    from deploy_mcp.tools.launch import require_preflight, start_deployment
    from deploy_mcp.tools.subjects import deploy_subject

    console = _console()
    try:
        # The MCP tool's gates in its order: the checklist, then the policy and consent, so nobody is asked to
        # confirm what preflight refuses. The subject is the resolver's own: the same plan, decision and approval.
        names = (args.service, args.version, args.environment, args.strategy, args.change_id)
        preflight = require_preflight(app, *names)
        console.print(f"preflight: {preflight.summary}", soft_wrap=True)
        subject = deploy_subject(app, *names)
        person = terminal.consent(subject)
        record = start_deployment(
            app,
            args.service,
            args.version,
            args.environment,
            args.strategy,
            deployed_by=person.by,
            change_id=args.change_id or person.change_id,
        )
        console.print(f"started {record.id}: {subject.headline} ({person.how}); Ctrl-C hands it back", soft_wrap=True)
        return _watch_to_end(app, record.id, console)
    finally:
        app.close()


def _rollback(args: argparse.Namespace) -> int:
    from deploy_mcp.app import App

    reason = _reason(args.reason)
    app = App.load(args.config)
    _known(app, args.service, args.environment)

    from deploy_mcp.server import terminal
    from deploy_mcp.tools.subjects import rollback_subject

    console = _console()
    try:
        subject = rollback_subject(app, args.service, args.environment, args.to, reason)
        person = terminal.consent(subject)
        agreed = (subject.reverts, subject.restores) if subject.reverts else None
        record = app.runner().rollback(
            args.service, args.environment, args.to, reason, requested_by=person.by, expect=agreed
        )
        console.print(f"started {record.id}: {subject.headline} ({person.how})", soft_wrap=True)
        return _watch_to_end(app, record.id, console)
    finally:
        app.close()


def _steer(args: argparse.Namespace) -> int:
    """promote, resume, pause and abort: the Runner's own calls, with the policy and consent of the tools."""
    from deploy_mcp.app import App
    from deploy_mcp.core.records import Status
    from deploy_mcp.server import terminal
    from deploy_mcp.tools.subjects import deployment_subject

    action = args.command
    reason = _reason(args.reason) if action == "abort" else None
    app = App.load(args.config)
    console = _console()
    try:
        deployment_id = _existing_deployment(app, args.deployment_id)
        subject = deployment_subject(app, action, deployment_id)
        person = terminal.consent(subject)
        runner = app.runner()  # marks it interrupted if no process drives it any more
        since = terminal.last_seq(app, deployment_id)
        if action == "pause":
            return terminal.conclude(runner.pause(deployment_id, by=person.by), console, goal=Status.PAUSED)
        if action == "abort":
            runner.abort(deployment_id, reason or "", by=person.by)
        elif action == "resume":
            runner.resume(deployment_id, by=person.by)
        elif runner.get(deployment_id).status is Status.INTERRUPTED:
            _take_over_and_promote(app, deployment_id, person.by, console)
        else:
            runner.promote(deployment_id, by=person.by)
        goal = Status.ABORTED if action == "abort" else Status.SUCCEEDED
        return _watch_to_end(app, deployment_id, console, since=since, goal=goal)
    finally:
        app.close()


def _take_over_and_promote(app: App, deployment_id: str, by: str, console: Console) -> None:
    """Promote a deployment no process drives (a paused `deploy-mcp deploy` that ended): take it over, and once
    it is back at the step it paused on, go on past it. Only a driving process can skip a step."""
    import time

    from deploy_mcp.core.records import Status
    from deploy_mcp.core.runner import RunnerError

    runner = app.runner()
    runner.resume(deployment_id, by=by)
    deadline = time.monotonic() + 90.0  # a take-over may start the new version again first
    while time.monotonic() < deadline:
        record = runner.wait(deployment_id, 0.2)
        step = record.steps[record.current_step - 1] if record.current_step else None
        if record.status is not Status.IN_PROGRESS or (
            step is not None and step.name in ("analyze", "pause") and step.status == "running"
        ):
            break
    try:
        runner.promote(deployment_id, by=by)
    except RunnerError as exc:  # it moved on or ended by itself meanwhile: watching it says how
        console.print(f"not promoted: {exc}", soft_wrap=True)


def _watch_to_end(app: App, deployment_id: str, console: Console, *, since: int = 0, goal: Status | None = None) -> int:
    from deploy_mcp.core.records import Status
    from deploy_mcp.server import terminal

    try:
        record = terminal.watch(app, deployment_id, console, since=since)
    except KeyboardInterrupt:
        return terminal.hand_back(app, deployment_id, console)
    driving = deployment_id in app.runner().running()  # paused here: handed back when this command ends
    return terminal.conclude(record, console, goal=goal or Status.SUCCEEDED, handed_back=driving)


def _status(args: argparse.Namespace) -> int:
    from deploy_mcp.app import App
    from deploy_mcp.server.terminal import record_view
    from deploy_mcp.tools.views import view

    app = App.load(args.config)
    try:
        deployment_id = _existing_deployment(app, args.deployment_id)
        # deployment_status's own body: its module would load the MCP SDK, seconds for a read.
        _console().print(record_view(view(app, app.runner().get(deployment_id))))
        return 0
    finally:
        app.close()


def _validate(args: argparse.Namespace) -> int:
    from deploy_mcp.app import App
    from deploy_mcp.server.terminal import EXIT_PAUSED, validation_view
    from deploy_mcp.tools.validation import validate

    app = App.load(args.config)
    try:
        report = validate(app, args.service, args.environment, args.deployment)
        _console().print(validation_view(report))
        return {"pass": 0, "warn": EXIT_PAUSED, "fail": 1}[report.verdict]
    finally:
        app.close()


def _known(app: App, service: str, environment: str) -> None:
    """A typo is answered before the MCP SDK that the shared code path needs is loaded (about a second)."""
    from deploy_mcp.core.recommend import lookup

    lookup(app.require_config(), service, environment)


def _existing_deployment(app: App, deployment_id: str) -> str:
    """The id if the ledger has it; checked before anything else so a typo creates nothing."""
    app.require_config()
    ledger = app.existing_ledger()
    if ledger is None or ledger.get(deployment_id) is None:
        raise UserError(f"ID: no deployment {deployment_id!r} in the ledger; `deploy-mcp history` lists the ids")
    return deployment_id


def _reason(text: str) -> str:
    reason = text.strip()
    if len(reason) < 3:
        raise UserError("--reason: say why in a few words; it goes into the record, e.g. --reason 'errors at 5%'")
    return reason


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


_DEPLOYMENT_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "deploy": _deploy,
    "status": _status,
    "validate": _validate,
    "rollback": _rollback,
    "promote": _steer,
    "resume": _steer,
    "pause": _steer,
    "abort": _steer,
}


def _local(args: argparse.Namespace) -> int:
    from deploy_mcp.app import App
    from deploy_mcp.targets.local import cli

    app = App.load(args.config)
    app.require_config()
    if args.local_command == "status":
        print(cli.status(app.project))
    else:
        print(cli.stop(app.project, args.service, args.environment))
    return 0


if __name__ == "__main__":
    sys.exit(main())
