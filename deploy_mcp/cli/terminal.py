"""The terminal face of the changing commands: a person's consent, a deployment watched live, and its record.

The CLI decides exactly as the MCP server does: the same `Subject` (plan, policy decision, approval found) from
services.subjects, and the same Runner. Only the way a person says yes differs. An agent's client shows a form;
here nothing can: a terminal cannot tell a person from a program running as the same user (see `consent`), so a
production change that needs confirmation is refused with the ways a person can give it.

Imported by the CLI commands that need it, never by the MCP server: rich is loaded here at the top.
"""

from __future__ import annotations

import contextlib
import getpass
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from deploy_mcp.app import App
from deploy_mcp.core.records import DeploymentRecord, Event, Phase, Status, Step, StepStatus, Verdict
from deploy_mcp.core.target import MetricSnapshot, TargetState
from deploy_mcp.errors import UserError
from deploy_mcp.server.render import STATUS_STYLE
from deploy_mcp.services.subjects import Subject

if TYPE_CHECKING:  # validation and views load more than status needs
    from deploy_mcp.tools.validation import ValidationReport
    from deploy_mcp.tools.views import DeploymentView

POLL_SECONDS = 0.25
EXIT_PAUSED = 3
EXIT_INTERRUPTED = 130
"""Exit codes besides 0 (the command's aim was met), 1 (the deployment ended otherwise) and 2 (a user error)."""

_UNSETTLED = (Status.PENDING, Status.IN_PROGRESS)
_STEP_STYLE = {
    StepStatus.RUNNING: "cyan",
    StepStatus.SUCCEEDED: "green",
    StepStatus.FAILED: "red",
    StepStatus.INCONCLUSIVE: "yellow",
    StepStatus.WAITING: "yellow",
    StepStatus.INTERRUPTED: "magenta",
    StepStatus.PROMOTED: "blue",
    StepStatus.SKIPPED: "dim",
    StepStatus.PENDING: "dim",
}
_EVENT_STYLE = {
    "paused": "yellow",
    "interrupted": "magenta",
    "succeeded": "green",
    "failed": "red",
    "rolled_back": "red",
    "aborted": "red",
    "undo_started": "red",
    "control": "bold",
}
_PHASE_STYLE = {
    Phase.SUCCESSFUL: "green",
    Phase.FAILED: "red",
    Phase.ERROR: "red",
    Phase.INCONCLUSIVE: "yellow",
    Phase.PENDING: "yellow",
}


# -- who, and whether they said yes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonConsent:
    """Why a terminal command may change things: ``by`` goes into the record as who did it."""

    by: str
    how: str
    change_id: str | None = None


def operator() -> str:
    """The person at this terminal, as the record names them."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in the environment or the password database
        user = "unknown user"
    return f"{user} at a terminal"


def consent(subject: Subject) -> PersonConsent:
    """Whether a terminal command may do ``subject`` (already allowed by the policy), or a UserError saying why not.

    Nothing a terminal shows can tell a person from a program running as the same user: `script -qec` gives any
    program a terminal, and a pipe types whatever is asked. So a production action that the policy wants
    confirmed is never done from here on a typed answer or on an approval from `deploy-mcp approve`: it goes
    through an MCP client that asks its user, or through the team server, where a releaser approves with their
    own token. Everything else (other environments, abort, pause) needs no confirmation and goes ahead.
    """
    who = operator()
    approval = subject.approval
    change_id = approval.change_id if approval else None
    if not subject.decision.needs_confirmation:
        return PersonConsent(by=who, how="no confirmation needed", change_id=change_id)
    raise UserError(_not_from_a_terminal(subject))


def _not_from_a_terminal(subject: Subject) -> str:
    """The refusal of a confirmed production action: why a terminal cannot say yes, and the ways that can."""
    key = subject.approval_key or "CHANGE-ID"
    server = f"deploy-mcp approve {key} --service {subject.service} --environment {subject.environment} --server URL"
    abort = " (`deploy-mcp abort ID --reason TEXT` needs no confirmation and stays available)"
    return (
        f"not done: {subject.headline}. This production {subject.action} needs a person's confirmation "
        "(policy.require_confirmation), and a terminal command cannot give it: a program running as you, such as "
        "an agent with a shell, can fake a terminal (`script`) and type the answer, so typed confirmations and "
        "approvals from `deploy-mcp approve` do not count for production. Do it from an MCP client that asks you "
        "(elicitation), or through the team server, where a releaser other than the caller approves it with their "
        f"own token: `{server}`{abort}."
    )


# -- watching a deployment ---------------------------------------------------------------------------------------


def watch(app: App, deployment_id: str, console: Console, *, since: int = 0) -> DeploymentRecord:
    """Show the deployment's events as they are written (and, on a terminal, its steps live) until it is no
    longer pending or in progress; returns the record then. ``since``: events up to this sequence number were
    seen before. Ctrl-C (or SIGTERM) raises KeyboardInterrupt to the caller, which decides what it means.

    Everything comes from the ledger, so a deployment driven by another process (an MCP server, another
    terminal) is watched the same way as one driven here.
    """
    runner = app.runner()
    ledger = app.ledger()
    record = runner.get(deployment_id)
    live = Live(steps_table(record, compact=True), console=console, auto_refresh=False) if console.is_terminal else None
    with _sigterm_as_interrupt(), live or contextlib.nullcontext():
        while True:
            record = runner.wait(deployment_id, POLL_SECONDS)
            since = _print_events(console, ledger.events(deployment_id), since)
            if live is not None:
                live.update(steps_table(record, compact=True), refresh=True)
            if record.status not in _UNSETTLED:
                break
    # The ending's own event is written just after the status it reports.
    record = runner.wait(deployment_id, 1.0)
    _print_events(console, ledger.events(deployment_id), since)
    return record


def last_seq(app: App, deployment_id: str) -> int:
    """Where the event log ends now: what `watch` should not print again."""
    return max((event.seq for event in app.ledger().events(deployment_id)), default=0)


def hand_back(app: App, deployment_id: str, console: Console) -> int:
    """Ctrl-C while watching: a deployment this process drives is handed back as interrupted (traffic stays as
    it is; resume or abort carries it on from any terminal); one driven elsewhere just stops being watched."""
    runner = app.runner()
    if deployment_id not in runner.running():
        console.print(f"stopped watching {deployment_id}; it goes on in the process that drives it", soft_wrap=True)
        return EXIT_INTERRUPTED
    console.print(f"stopping: handing {deployment_id} back (traffic stays as it is)...", soft_wrap=True)
    app.close()
    record = app.runner().get(deployment_id)  # a fresh runner: the one that drove it is closed
    if record.status is Status.INTERRUPTED:
        where = f" at step {record.current_step}" if record.current_step else ""
        console.print(
            f"{deployment_id} is interrupted{where}. Carry it on with `deploy-mcp resume {deployment_id}`, or "
            f"undo it with `deploy-mcp abort {deployment_id} --reason TEXT`.",
            soft_wrap=True,
        )
    else:
        console.print(
            f"{deployment_id} is {record.status.value}; it shows as interrupted once its lock lease runs out, then "
            f"`deploy-mcp resume {deployment_id}` or `deploy-mcp abort {deployment_id} --reason TEXT` takes it over.",
            soft_wrap=True,
        )
    return EXIT_INTERRUPTED


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A `kill` is handled like Ctrl-C, so the record says interrupted instead of waiting out its lease."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_events(console: Console, events: list[Event], since: int) -> int:
    for event in events:
        if event.seq <= since:
            continue
        line = Text(f"{_clock(event.at)}  ", style="dim")
        line.append(f"{event.kind:<15}", style=_EVENT_STYLE.get(event.kind, "dim"))
        line.append(" " + event.message, style=_EVENT_STYLE.get(event.kind, ""))
        console.print(line, soft_wrap=True)
        since = event.seq
    return since


# -- how a command ends ------------------------------------------------------------------------------------------


def conclude(
    record: DeploymentRecord, console: Console, *, goal: Status = Status.SUCCEEDED, handed_back: bool = False
) -> int:
    """Say how it ended and what to run next; the exit code: 0 when it reached ``goal``, 3 paused, 1 otherwise.
    ``handed_back``: this process drove it and is about to end (see `next_commands`)."""
    console.print(_status_line(record), soft_wrap=True)
    if record.reason:
        console.print(Text(f"reason: {record.reason}"), soft_wrap=True)
    console.print(Text(next_commands(record, handed_back=handed_back)), soft_wrap=True)
    if record.status is goal:
        return 0
    if record.status is Status.PAUSED:
        return EXIT_PAUSED
    return 1


def next_commands(record: DeploymentRecord, *, handed_back: bool = False) -> str:
    """What a person runs next, by status. ``handed_back``: this command ends now and drove it (a paused
    deployment then becomes interrupted, which the same commands carry on)."""
    rid, where = record.id, f"{record.service} --environment {record.environment}"
    steer = (
        f"  deploy-mcp promote {rid}                  go on past this step\n"
        f"  deploy-mcp resume {rid}                   run this step's analysis again\n"
        f"  deploy-mcp abort {rid} --reason TEXT      undo it: traffic back to what served before"
    )
    if record.status is Status.PAUSED:
        note = (
            " This command ends here, so the deployment is handed back (status interrupted) with traffic as it is;"
            " each of these takes it over and drives it in the terminal you run it in:"
            if handed_back
            else ""
        )
        return f"next: look at the reason and the numbers (deploy-mcp status {rid}), then decide.{note}\n{steer}"
    if record.status is Status.INTERRUPTED:
        return (
            f"next: no process drives it; carry it on or undo it:\n"
            f"  deploy-mcp resume {rid}                   continue from the step it was at\n"
            f"  deploy-mcp abort {rid} --reason TEXT      undo it\n"
            f"  deploy-mcp rollback {where} --reason TEXT"
        )
    if record.status in _UNSETTLED:
        return (
            f"next: it runs in the process that started it; `deploy-mcp status {rid}` shows it, "
            f"`deploy-mcp pause {rid}` holds it, `deploy-mcp abort {rid} --reason TEXT` undoes it"
        )
    if record.status is Status.SUCCEEDED:
        return (
            f"next: `deploy-mcp validate {where} --deployment {rid}` now and again in a few minutes; "
            "watch the dashboards"
        )
    before = record.previous_version
    now = f"{before} serves again" if before else "nothing of it runs now (there was no earlier version)"
    return (
        f"next: {now}; read the reason, fix the release and deploy a new version. "
        f"`deploy-mcp status {rid}` has the steps and the numbers."
    )


def _status_line(record: DeploymentRecord) -> Text:
    line = Text(f"{record.id}: ", style="bold")
    line.append(record.status.value, style=STATUS_STYLE.get(record.status, ""))
    what = f" ({record.service} {record.version} in {record.environment}, {record.strategy}"
    if record.duration_seconds is not None:
        what += f", {record.duration_seconds:.0f} s"
    line.append(what + ")")
    if record.rollback_of:
        line.append(f", reverts {record.rollback_of}")
    return line


# -- renderings --------------------------------------------------------------------------------------------------


def steps_table(record: DeploymentRecord, *, finished: bool = False, compact: bool = False) -> Table:
    """Every step with its traffic share, status and times: what the live view redraws (``compact``: one line a
    step, so it fits the screen) and `status` prints (``finished``: when each step ended, not how long it took)."""
    title = f"{record.id}  {record.service} {record.version} -> {record.environment}"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    columns = ("#", "step", "traffic", "status", "started", "finished" if finished else "took")
    for column in columns:
        table.add_column(column, no_wrap=True)
    table.add_column("what", overflow="fold", ratio=1, min_width=12)
    for step in record.steps:
        table.add_row(
            str(step.index),
            step.name,
            f"{step.weight}%" if step.weight is not None else "",
            Text(str(step.status), style=_STEP_STYLE.get(step.status, "")),
            _clock(step.started_at),
            _clock(step.finished_at) if finished else _took(step),
            # A cell that will not wrap in a column that may shrink: the live view keeps one line a step.
            Text(step.detail, no_wrap=True, overflow="ellipsis") if compact else Text(step.detail),
        )
    return table


def record_view(view: DeploymentView) -> RenderableType:
    """`deploy-mcp status`: the record, its steps and verdicts with the numbers, what runs now, the last events."""
    record = view.record
    head = [_status_line(record)]
    who = f"deployed by {record.deployed_by} at {record.deployed_at:%Y-%m-%d %H:%M:%S} UTC"
    if record.previous_version:
        who += f", over {record.previous_version}"
    if record.finished_at:
        who += f"; finished {record.finished_at:%H:%M:%S} UTC"
    head.append(Text(who))
    if record.enterprise and record.enterprise.change_id:
        head.append(Text(f"change {record.enterprise.change_id}"))
    if record.rolled_back_by:
        head.append(Text(f"rolled back by {record.rolled_back_by}"))
    if record.reason:
        head.append(Text(f"reason: {record.reason}"))
    validation = record.validation
    if validation.verdict or validation.passed:
        head.append(Text(f"validation: {'passed' if validation.passed else 'not passed'}; {validation.verdict or ''}"))
    parts: list[RenderableType] = [*head, steps_table(record, finished=True)]
    if record.verdicts:
        parts.append(verdicts_lines(record.verdicts))
    if view.live is not None:
        parts.append(live_table(view.live))
    if view.recent_events:
        events = Table(title="Recent events", title_justify="left", show_header=False, box=None)
        events.add_column(no_wrap=True)
        events.add_column(no_wrap=True)
        events.add_column(overflow="fold")
        for event in view.recent_events:
            events.add_row(_clock(event.at), event.kind, Text(event.message))
        parts.append(events)
    parts.append(Text(next_commands(record)))
    return Group(*parts)


def verdicts_lines(verdicts: list[Verdict]) -> Group:
    """Each verdict with the numbers it was decided on, then its reason: lines, not a table, so that the
    numbers stay readable in an 80-column terminal."""
    lines: list[RenderableType] = [Text("Verdicts", style="italic")]
    for verdict in verdicts:
        numbers = verdict.metrics
        where = f"step {verdict.step}" if verdict.step is not None else "final"
        line = Text(f"  {where:<8}")
        line.append(f"{verdict.phase.value:<13}", style=_PHASE_STYLE.get(verdict.phase, ""))
        line.append(f"{_clock(verdict.at)}  ")
        if "requests" in numbers:
            line.append(_numbers(numbers))
        baseline = numbers.get("baseline")
        if isinstance(baseline, dict):
            line.append(f"; baseline {baseline.get('version', '?')}: {_numbers(baseline)}")
        lines += [line, Text(f"      {verdict.reason}", style="dim")]
    return Group(*lines)


def live_table(state: TargetState) -> Table:
    where = f"Running now ({state.kind}" + (f", {state.endpoint}" if state.endpoint else "") + ")"
    table = Table(title=where, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("version", "traffic", "ready", "restarts", "problem"):
        table.add_column(column, no_wrap=column != "problem")
    for version in state.versions:
        table.add_row(
            version.version,
            f"{version.weight}%",
            f"{version.ready}/{version.replicas}",
            str(version.restarts),
            Text(version.problem or ""),
        )
    if not state.versions:
        table.add_row("nothing", "", "", "", Text(state.problem or ""))
    return table


def validation_view(report: ValidationReport) -> RenderableType:
    """`deploy-mcp validate`: the verdict first, then what it rests on."""
    style = {"pass": "green", "warn": "yellow", "fail": "red"}[report.verdict]
    verdict = Text(f"{report.service} in {report.environment}: ", style="bold")
    verdict.append(report.verdict, style=f"bold {style}")
    if report.deployment_id:
        verdict.append(f" (deployment {report.deployment_id})")
    lines: list[RenderableType] = [verdict, Text(f"recommendation: {report.recommendation}")]
    lines += [Text(f"  - {reason}") for reason in report.reasons]
    lines.append(Text(f"serving: {', '.join(report.serving) or 'nothing'}"))
    lines.append(Text(f"record: {report.record_note}"))
    lines.append(Text(f"health: {report.health.healthy_count}/{report.health.total} healthy; {report.health.detail}"))
    if report.smoke is not None:
        lines.append(Text(f"smoke: {'passed' if report.smoke.passed else 'failed'}; {report.smoke.summary}"))
    metrics = report.metrics
    if metrics is not None:
        lines.append(
            Text(f"metrics ({metrics.source}, last {metrics.window_seconds:g} s): {metrics.phase}; {metrics.reason}")
        )
        for label, snapshot in (("current", metrics.current), ("baseline", metrics.baseline)):
            if snapshot is not None:
                lines.append(Text(f"  {label}: {_snapshot(snapshot)}"))
    return Group(*lines)


def _snapshot(snapshot: MetricSnapshot) -> str:
    return (
        f"{snapshot.version}: {snapshot.requests} requests, {snapshot.errors} errors "
        f"({_percent(snapshot.error_rate)}), p95 {_number(snapshot.p95_ms)} ms, p99 {_number(snapshot.p99_ms)} ms"
    )


def _numbers(numbers: dict[str, Any]) -> str:
    return (
        f"{_number(numbers.get('requests'))} requests, {_number(numbers.get('errors'))} errors "
        f"({_percent(numbers.get('error_rate'))}), p95 {_number(numbers.get('p95_ms'))} ms, "
        f"p99 {_number(numbers.get('p99_ms'))} ms"
    )


def _clock(moment: datetime | None) -> str:
    return f"{moment:%H:%M:%S}" if moment else ""


def _took(step: Step) -> str:
    if step.started_at is None or step.finished_at is None:
        return ""
    return f"{(step.finished_at - step.started_at).total_seconds():.1f}s"


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}" if not value.is_integer() else f"{value:.0f}"
    return str(value)


def _percent(value: Any) -> str:
    return f"{value * 100:.2f}%" if isinstance(value, int | float) else ""
