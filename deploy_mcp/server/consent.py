"""The gate every changing tool passes at call time: the policy first, then the user's confirmation.

A changing tool takes one extra parameter, ``consent: Annotated[Consent, Resolve(confirm_deploy)]`` (or the
resolver for its action). The SDK fills it before the tool body runs and leaves it out of the input schema, so
the model can neither see nor set it: an argument such as ``confirm=true`` is simply not consent. The resolvers:

1. work out what the call would do and apply the policy (read-only, allowlist, promotion, windows, modes) with
   the ledger's facts; a refusal is the tool's error and the body never runs;
2. when the action needs confirmation (production, ``policy.require_confirmation``), ask the user through MCP
   elicitation, describing exactly what will happen. The SDK carries the question on the protocol the client
   speaks: a server-to-client ``elicitation/create`` in the middle of the call up to 2025-11-25, an
   ``InputRequiredResult`` answered by a retry from 2026-07-28 (the resolvers then run again on the retry, so
   the policy is checked again at the moment the body runs). ``ctx.elicit`` would work only on the older one;
3. when the client cannot ask the user (no elicitation capability, or a legacy HTTP response that cannot carry
   a request), do not ask: go ahead only under an approval that came from an identity the agent does not hold
   (a releaser of the team server, other than the caller), else refuse and say how a person can give it.

An approval typed into a terminal (``deploy-mcp approve`` without ``--server``) never counts as consent: an agent
with a shell runs as the same user and can drive a terminal (``script -qec``) as well as a person can. On a team
server the caller's identity decides first (server/identities.py): a viewer changes nothing, a deployer touches
production only under a releaser's approval, and nobody's approval counts for their own call.

Decline, cancel or an unticked box stop the call with an error that says the user declined and nothing changed.

This module has no ``from __future__ import annotations``: the resolvers are closures whose annotations name
other closures (``Resolve(ask)``), and the SDK reads those annotations at registration, so they must be real
objects rather than strings that only the module's globals could resolve.
"""

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import AcceptedElicitation, Elicit, ElicitationResult, Resolve
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, ConfigDict, Field

from deploy_mcp.app import App
from deploy_mcp.config.schema import StrategyName
from deploy_mcp.core.plans import Plan
from deploy_mcp.core.policy import CONFIRMED_ACTIONS, Action, PolicyDecision
from deploy_mcp.errors import UserError
from deploy_mcp.ledger.base import Approval
from deploy_mcp.server.identities import Identity, Role, caller_from_context, is_identity_label
from deploy_mcp.services import subjects
from deploy_mcp.services.subjects import Subject

__all__ = [
    "Confirmation",
    "Consent",
    "ConsentResolvers",
    "Subject",
    "app_from_context",
    "caller_identity",
    "client_can_ask",
    "confirm_abort",
    "confirm_deploy",
    "confirm_pause",
    "confirm_promote",
    "confirm_resume",
    "confirm_rollback",
    "make_consent_resolvers",
]

_INPUT_REQUIRED_VERSION = "2026-07-28"
"""From this protocol version the question rides an InputRequiredResult, which needs no back-channel."""


class Confirmation(BaseModel):
    """The form the user sees. The box must be ticked: accepting the form without it is not a yes."""

    confirm: bool = Field(
        title="Go ahead with this production change",
        description="Tick to let it run now. Leave unticked, decline or cancel to stop it; nothing will change.",
    )
    note: str | None = Field(
        default=None,
        title="Note (optional)",
        description="Kept with the deployment record, e.g. why now or who is watching.",
    )


ConsentBy = Literal["user", "approval", "not-needed"]


class Consent(BaseModel):
    """Why the tool body may run. It reaches the body only when given; every "no" stops the call earlier.

    ``by``: the user confirmed through the client, a releaser approved the change through the team server, or no
    confirmation is needed (not production, policy.require_confirmation = false, or abort/pause). ``caller`` is
    the identity the HTTP server authenticated (``token:alice``), None without identities (stdio, shared token).
    ``decision`` is the policy decision at call time, for the record; ``approved_by`` and ``change_id`` come
    from the ledger's approval when there is one (enterprise changes carry them whichever way consent came).
    """

    model_config = ConfigDict(extra="forbid")

    given: bool
    by: ConsentBy
    detail: str
    caller: str | None = None
    approved_by: str | None = None
    change_id: str | None = None
    note: str | None = None
    decision: PolicyDecision | None = None
    reverts: str | None = None
    restores: str | None = None
    plan: Plan | None = None
    """deploy: the plan the question described; the deploy starts only if it still does what this one says."""


@dataclass(frozen=True)
class ConsentResolvers:
    """One resolver per changing action; annotate the tool's ``consent`` parameter with the matching one.

    Each takes the tool's arguments by name, so the tool must have them: deploy (service, version,
    environment, strategy, change_id), rollback (service, environment, to, reason), promote, resume, abort and
    pause (deployment_id). A mismatch fails when the tool is registered, not when it is called.
    """

    deploy: Callable[..., Any]
    rollback: Callable[..., Any]
    promote: Callable[..., Any]
    resume: Callable[..., Any]
    abort: Callable[..., Any]
    pause: Callable[..., Any]


def make_consent_resolvers(app: App | None = None) -> ConsentResolvers:
    """Resolvers over ``app``; with None they find the App on the server handling the call (see
    `app_from_context`), which is what module-level tools use."""

    def project(ctx: Context) -> App:
        return app if app is not None else app_from_context(ctx)

    def deploy_subject(
        ctx: Context,
        service: str,
        version: str,
        environment: str,
        strategy: StrategyName | str | None,
        change_id: str | None,
    ) -> Subject:
        with _tool_errors():
            return subjects.deploy_subject(project(ctx), service, version, environment, strategy, change_id)

    def rollback_subject(ctx: Context, service: str, environment: str, to: str | None, reason: str | None) -> Subject:
        with _tool_errors():
            return subjects.rollback_subject(project(ctx), service, environment, to, reason)

    def on_deployment(action: Action) -> Callable[..., Subject]:
        def subject(ctx: Context, deployment_id: str) -> Subject:
            with _tool_errors():
                return subjects.deployment_subject(project(ctx), action, deployment_id)

        subject.__qualname__ = subject.__name__ = f"{action}_subject"
        return subject

    def spend(ctx: Context, subject: Subject, approval: Approval) -> bool:
        """Spend an approval of a deployment id on the one action it lets through (a deploy spends its change's
        approval when the deployment starts: tools/approvals.claim_for_deploy). False: another call spent it."""
        if subject.action == "deploy":
            return True
        ledger = project(ctx).existing_ledger()
        used_by = subject.approval_key or subject.service
        return ledger is not None and ledger.use_approval(approval.id, used_by) is not None

    return ConsentResolvers(
        deploy=_gate("deploy", deploy_subject, spend),
        rollback=_gate("rollback", rollback_subject, spend),
        promote=_gate("promote", on_deployment("promote"), spend),
        resume=_gate("resume", on_deployment("resume"), spend),
        abort=_gate("abort", on_deployment("abort"), spend),
        pause=_gate("pause", on_deployment("pause"), spend),
    )


def app_from_context(ctx: Context) -> App:
    """The App of the server handling this call (DeployServer's ``app``)."""
    try:
        server = ctx.mcp_server
    except ValueError:
        server = None
    app = getattr(server, "app", None)
    if not isinstance(app, App):
        raise ToolError("this server has no deploy-mcp project attached; it cannot decide on changes")
    return app


def client_can_ask(ctx: Context) -> bool:
    """Whether a question can reach the user during this call.

    The client must have declared form elicitation (a bare ``elicitation: {}`` counts, url-only does not, as in
    the SDK). Before 2026-07-28 the question is a request from server to client, which a JSON-response HTTP
    exchange cannot carry; from 2026-07-28 it travels in the result, so the capability is enough.
    """
    try:
        capabilities = ctx.client_capabilities
        version = ctx.protocol_version
        can_send = ctx.session.can_send_request
    except ValueError:  # not inside a request: nobody to ask
        return False
    elicitation = capabilities.elicitation if capabilities is not None else None
    if elicitation is None or (elicitation.form is None and elicitation.url is not None):
        return False
    modern = version is not None and is_version_at_least(version, _INPUT_REQUIRED_VERSION)
    return modern or bool(can_send)


def _gate(
    action: Action, subject_fn: Callable[..., Subject], spend: Callable[[Context, Subject, Approval], bool]
) -> Callable[..., Any]:
    """The ask-then-settle pair for one action; the returned resolver is what the tool annotates.

    An approval that stands in for the person is spent on the call it lets through (``spend``): one approval, one
    action, so an approval to resume a paused rollout does not also promote it when it pauses again.
    """

    async def by_approval(
        ctx: Context, subject: Subject, counted: Approval, decision: PolicyDecision, approved: dict[str, Any]
    ) -> Consent:
        if not await anyio.to_thread.run_sync(lambda: spend(ctx, subject, counted)):
            raise ToolError(
                f"Not done: {subject.headline}. The approval of {counted.change_id} by {counted.approved_by} was "
                "just used by another call: an approval lets one action through. A releaser approves again."
            )
        return _by_approval(subject, counted, decision, approved)

    async def ask(subject: Annotated[Subject, Resolve(subject_fn)], ctx: Context) -> Elicit[Confirmation] | Consent:
        decision = subject.decision
        identity = caller_identity(ctx)
        approval = subject.approval
        counted = counted_approval(approval, identity, _revoked(ctx))
        approved = {"approved_by": approval.approved_by, "change_id": approval.change_id} if approval else {}
        approved |= {"reverts": subject.reverts, "restores": subject.restores, "plan": subject.plan}
        approved["caller"] = identity.label if identity else None
        if identity is not None and identity.role is Role.VIEWER:
            raise ToolError(_viewer(subject, identity))
        if identity is not None and identity.role is Role.DEPLOYER and decision.production:
            if counted is None:
                raise ToolError(_deployer_in_production(subject, identity))
            return await by_approval(ctx, subject, counted, decision, approved)
        if not decision.needs_confirmation:
            return Consent(given=True, by="not-needed", detail=_why_not_needed(subject), decision=decision, **approved)
        if client_can_ask(ctx):
            return Elicit(subject.question, Confirmation)
        if counted is not None:
            return await by_approval(ctx, subject, counted, decision, approved)
        raise ToolError(_cannot_ask(subject, identity))

    async def settle(
        subject: Annotated[Subject, Resolve(subject_fn)],
        answer: Annotated[ElicitationResult[Confirmation], Resolve(ask)],
        ctx: Context,
    ) -> Consent:
        if not isinstance(answer, AcceptedElicitation):
            verb = "declined" if answer.action == "decline" else "cancelled"
            raise ToolError(_declined(subject, verb))
        if isinstance(answer.data, Consent):
            return answer.data
        confirmation: Confirmation = answer.data
        if not confirmation.confirm:
            raise ToolError(_declined(subject, "did not tick 'go ahead' and so did not confirm"))
        approval = subject.approval
        identity = caller_identity(ctx)
        return Consent(
            given=True,
            by="user",
            caller=identity.label if identity else None,
            detail=f"The user confirmed: {subject.headline}.",
            note=confirmation.note or None,
            decision=subject.decision,
            approved_by=approval.approved_by if approval else None,
            change_id=approval.change_id if approval else None,
            reverts=subject.reverts,
            restores=subject.restores,
            plan=subject.plan,
        )

    # Readable, stable keys: the SDK names an elicitation on the wire after its resolver.
    ask.__qualname__ = ask.__name__ = f"confirm_{action}"
    settle.__qualname__ = settle.__name__ = f"consent_{action}"
    return settle


# -- messages ----------------------------------------------------------------------------------------------------


def _why_not_needed(subject: Subject) -> str:
    decision = subject.decision
    if not decision.production:
        return f"{subject.environment} is not a production environment: no confirmation needed."
    if decision.action not in CONFIRMED_ACTIONS:
        return f"{decision.action} needs no confirmation: it only stops or holds a rollout."
    return "policy.require_confirmation is false in deploy.toml: production actions are not confirmed."


def caller_identity(ctx: Context) -> Identity | None:
    """Who the HTTP server authenticated for this call, or None where nobody is known by name."""
    return caller_from_context(ctx)


def counted_approval(
    approval: Approval | None, identity: Identity | None, revoked: Callable[[str], bool] = lambda _label: False
) -> Approval | None:
    """The approval if it may stand in for the user's confirmation, else None.

    Only an approval the team server recorded for a releaser counts (its approved_by is an identity label, which
    the local `deploy-mcp approve` refuses to write), and only on a server that knows its callers, never for the
    releaser's own call, and not once the approver's token was removed or lost its releaser role (``revoked``).
    Without identities the ledger is as writable to an agent with a shell as the terminal is, so no approval
    found there can stand for a person.
    """
    if approval is None or identity is None:
        return None
    if not is_identity_label(approval.approved_by) or approval.approved_by == identity.label:
        return None
    return None if revoked(approval.approved_by) else approval


def _revoked(ctx: Context) -> Callable[[str], bool]:
    """Whether an approver's releaser role is gone now, as the server's identities say (server/auth.py)."""
    try:
        verifier = getattr(ctx.mcp_server, "identity_verifier", None)
    except ValueError:
        verifier = None
    if verifier is None:
        return lambda _label: False
    return lambda label: not verifier.still_releaser(label)


def _by_approval(subject: Subject, approval: Approval, decision: PolicyDecision, approved: dict[str, Any]) -> Consent:
    return Consent(
        given=True,
        by="approval",
        detail=f"{approval.approved_by}, a releaser, approved {approval.change_id} for {subject.service} in "
        f"{subject.environment} through the team server.",
        decision=decision,
        **approved,
    )


def server_approve_command(key: str, service: str, environment: str) -> str:
    """The command a releaser runs, with their own token, to approve through the team server."""
    return f"deploy-mcp approve {key} --service {service} --environment {environment} --server URL"


def _viewer(subject: Subject, identity: Identity) -> str:
    return (
        f"Not done: {subject.headline}. {identity.label} has the viewer role on this server: it reads plans, "
        "status, history and validation, and changes nothing. A person who administers the server gives a "
        "deployer or releaser token (`deploy-mcp token add NAME --role deployer`) if this caller should act."
    )


def _deployer_in_production(subject: Subject, identity: Identity) -> str:
    key = subject.approval_key or "CHANGE-ID"
    command = server_approve_command(key, subject.service, subject.environment)
    return (
        f"Not done: {subject.headline}. {identity.label} has the deployer role, which changes non-production "
        f"environments only; {subject.environment} is production. It goes ahead only once a releaser (a person, "
        f"not this caller) approves it through this server with their own token: `{command}`; then "
        f"{subject.retry}. No argument and no approval typed in a terminal stands in for that."
    )


def _cannot_ask(subject: Subject, identity: Identity | None = None) -> str:
    why = (
        f"Not done: {subject.headline}. This is a production action and policy.require_confirmation is true, so "
        "the user must confirm it, but this MCP client cannot ask the user during this call (it did not declare "
        "elicitation support, or its connection cannot carry a question)."
    )
    if identity is not None:
        key = subject.approval_key or "CHANGE-ID"
        command = server_approve_command(key, subject.service, subject.environment)
        placeholder = "" if subject.approval_key else " (CHANGE-ID: the id of the change request or ticket)"
        return (
            f"{why} Another releaser (not {identity.label}) can approve it through this server with their own "
            f"token: `{command}`{placeholder}; then {subject.retry}. Do not try to approve it yourself: an "
            "approval counts only from a releaser other than the caller."
        )
    return (
        f"{why} Without identities (stdio, or one shared token) only the user's answer in an MCP client that asks "
        "them counts for production: an approval typed in a terminal (`deploy-mcp approve`) does not, because a "
        "program running as the user can type it too. Ask the user to run this from a client with elicitation, "
        "or to use the team server, where a releaser approves with their own token. Do not run `deploy-mcp "
        "approve` or drive a terminal on the user's behalf: it changes nothing here."
    )


def _declined(subject: Subject, how: str) -> str:
    return f"The user {how}: {subject.headline}. Nothing was changed. Do not retry unless the user asks for it again."


@contextlib.contextmanager
def _tool_errors() -> Iterator[None]:
    """Mistakes a caller can fix reach the agent as their message; the SDK would hide anything else."""
    try:
        yield
    except UserError as exc:  # the ledger's errors are UserErrors too
        raise ToolError(str(exc)) from None


_default = make_consent_resolvers()
confirm_deploy = _default.deploy
confirm_rollback = _default.rollback
confirm_promote = _default.promote
confirm_resume = _default.resume
confirm_abort = _default.abort
confirm_pause = _default.pause
