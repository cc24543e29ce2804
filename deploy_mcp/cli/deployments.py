"""The mirrors of the MCP tools for a person at a terminal: deploy, status, validate, rollback, promote, resume,
pause and abort. The same services (plan, policy, consent rule, Runner) as the tools; the person at the terminal is
asked instead of the MCP client's user, and the command watches the deployment until it settles."""

from __future__ import annotations

import argparse

from deploy_mcp.cli.common import (
    CONSENT_NOTE,
    EXIT_CODES,
    WATCH_NOTE,
    check_reason,
    existing_deployment,
    known,
    make_console,
    paragraphs,
    watch_to_end,
)


def register(commands: argparse._SubParsersAction) -> None:
    detailed = {"formatter_class": argparse.RawDescriptionHelpFormatter}  # keeps the paragraphs of `paragraphs`

    deploy = commands.add_parser(
        "deploy",
        help="ship a version and watch it step by step until it succeeds, pauses or ends (Ctrl-C hands it "
        "back as interrupted: resume it later)",
        description=paragraphs(
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
    deploy.set_defaults(func=_deploy)

    status = commands.add_parser(
        "status", help="a deployment's record: steps and times, verdicts with their numbers, live traffic weights"
    )
    status.add_argument("deployment_id", metavar="ID", help="a deployment id, as `deploy-mcp history` lists them")
    status.set_defaults(func=_status)

    validate = commands.add_parser(
        "validate",
        help="check what serves now (health, smoke, metrics): pass, warn or fail, and what to do",
        description=paragraphs(
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
    validate.set_defaults(func=_validate)

    rollback = commands.add_parser(
        "rollback",
        help="back to the last version that passed validation (or --to), as a deployment of its own",
        description=paragraphs(
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
    rollback.set_defaults(func=_rollback)

    for verb, what in (
        ("promote", "go on past a paused step or the running analysis, and watch it to the end"),
        ("resume", "continue a paused or interrupted deployment (its analysis runs again), and watch it"),
        ("pause", "hold a deployment another process drives at its current step; traffic stays as it is"),
    ):
        steer = commands.add_parser(
            verb, help=what, description=paragraphs(f"{what[0].upper()}{what[1:]}.", EXIT_CODES), **detailed
        )
        steer.add_argument("deployment_id", metavar="ID")
        steer.set_defaults(func=_steer)
    abort = commands.add_parser(
        "abort",
        help="stop a deployment and undo it: traffic back to the version that served before",
        description=paragraphs("Stop a deployment and undo it; never needs confirmation.", EXIT_CODES),
        **detailed,
    )
    abort.add_argument("deployment_id", metavar="ID")
    abort.add_argument("--reason", required=True, help="why, for the record")
    abort.set_defaults(func=_steer)


def _deploy(args: argparse.Namespace) -> int:
    from deploy_mcp.app import App

    app = App.load(args.config)
    known(app, args.service, args.environment)

    from deploy_mcp.cli import terminal
    from deploy_mcp.services.launch import require_preflight, start_deployment
    from deploy_mcp.services.subjects import deploy_subject

    console = make_console()
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
            agreed=subject.plan,
        )
        console.print(f"started {record.id}: {subject.headline} ({person.how}); Ctrl-C hands it back", soft_wrap=True)
        return watch_to_end(app, record.id, console)
    finally:
        app.close()


def _rollback(args: argparse.Namespace) -> int:
    from deploy_mcp.app import App

    reason = check_reason(args.reason)
    app = App.load(args.config)
    known(app, args.service, args.environment)

    from deploy_mcp.cli import terminal
    from deploy_mcp.services.subjects import rollback_subject

    console = make_console()
    try:
        subject = rollback_subject(app, args.service, args.environment, args.to, reason)
        person = terminal.consent(subject)
        agreed = (subject.reverts, subject.restores) if subject.reverts else None
        record = app.runner().rollback(
            args.service, args.environment, args.to, reason, requested_by=person.by, expect=agreed
        )
        console.print(f"started {record.id}: {subject.headline} ({person.how})", soft_wrap=True)
        return watch_to_end(app, record.id, console)
    finally:
        app.close()


def _steer(args: argparse.Namespace) -> int:
    """promote, resume, pause and abort: the Runner's own calls, with the policy and consent of the tools."""
    from deploy_mcp.app import App
    from deploy_mcp.cli import terminal
    from deploy_mcp.core.records import Status
    from deploy_mcp.services.steering import promote
    from deploy_mcp.services.subjects import deployment_subject

    action = args.command
    reason = check_reason(args.reason) if action == "abort" else None
    app = App.load(args.config)
    console = make_console()
    try:
        deployment_id = existing_deployment(app, args.deployment_id)
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
        else:  # the promote tool's own path: an interrupted deployment is taken over first
            promoted = promote(app, deployment_id, by=person.by)
            if promoted.not_promoted:
                console.print(f"not promoted: {promoted.not_promoted}", soft_wrap=True)
        goal = Status.ABORTED if action == "abort" else Status.SUCCEEDED
        return watch_to_end(app, deployment_id, console, since=since, goal=goal)
    finally:
        app.close()


def _status(args: argparse.Namespace) -> int:
    from deploy_mcp.app import App
    from deploy_mcp.cli.terminal import record_view
    from deploy_mcp.tools.views import view

    app = App.load(args.config)
    try:
        deployment_id = existing_deployment(app, args.deployment_id)
        # deployment_status's own body: its module would load the MCP SDK, seconds for a read.
        make_console().print(record_view(view(app, app.runner().get(deployment_id))))
        return 0
    finally:
        app.close()


def _validate(args: argparse.Namespace) -> int:
    from deploy_mcp.app import App
    from deploy_mcp.cli.terminal import EXIT_PAUSED, validation_view
    from deploy_mcp.tools.validation import validate

    app = App.load(args.config)
    try:
        report = validate(app, args.service, args.environment, args.deployment)
        make_console().print(validation_view(report))
        return {"pass": 0, "warn": EXIT_PAUSED, "fail": 1}[report.verdict]
    finally:
        app.close()
