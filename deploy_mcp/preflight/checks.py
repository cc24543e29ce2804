"""The pre-deployment checklist items that can be checked, one small function each.

Every function takes the `Facts` of one prospective deployment and returns a `CheckResult` with the evidence it
saw (a URL and its answer, a commit, a policy sentence) and, when it did not pass, the fix. A check never decides
whether its item is required: the mode does (see ``run.py``), and a problem found by a check that is not required
is a warning, never a failure. So ``failed`` always means "this blocks the deploy".

The policy items (scope, promotion, window, approval, rehearsed rollback, on-call) are not re-implemented here:
they are read from the policy decision `check_policy` makes for the deploy, so preflight and the deploy's own gate
can never disagree.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from deploy_mcp.config.schema import Mode, StrategyName, TargetKind
from deploy_mcp.core.masking import mask_command
from deploy_mcp.core.policy import PolicyCheck, PolicyDecision, approve_command
from deploy_mcp.core.records import Status
from deploy_mcp.core.target import Release
from deploy_mcp.errors import UserError

if TYPE_CHECKING:
    from deploy_mcp.app import App
    from deploy_mcp.config.schema import DeployConfig, Environment, Service
    from deploy_mcp.preflight.git import GitFacts

CheckStatus = Literal["passed", "failed", "not_applicable", "warning"]
MAX_FINDINGS = 3
LOCK_NAMING_SECONDS = 2.0
"""How long to wait for a just-locked deployment to write its id, as the runner does before it refuses."""
MUTABLE_VERSIONS = frozenset({"latest", "stable", "main", "master", "head", "edge", "dev"})


class CheckResult(BaseModel):
    """One checklist item: ``failed`` blocks the deploy (only required items fail), ``warning`` is a problem
    that does not, ``not_applicable`` says why the item does not apply here."""

    model_config = ConfigDict(extra="forbid")

    name: str
    status: CheckStatus
    required: bool
    evidence: str
    fix: str | None = None


@dataclass
class Facts:
    """What the checks look at, gathered once per preflight; git is asked only if a check needs it."""

    app: App
    config: DeployConfig
    service: str
    svc: Service
    environment: str
    env: Environment
    version: str
    strategy: StrategyName
    decision: PolicyDecision
    required: frozenset[str]
    change_id: str | None = None

    def needs(self, name: str) -> bool:
        return name in self.required

    @property
    def root(self) -> Path:
        return self.app.project.root

    @property
    def mode(self) -> Mode:
        return self.config.mode

    @cached_property
    def release(self) -> Release:
        return Release.resolve(self.service, self.svc, self.version)

    @cached_property
    def git(self) -> GitFacts:
        from deploy_mcp.preflight.git import inspect_repository

        state = self.app.project.state_dir
        exclude = [str(state.relative_to(self.root))] if state.is_relative_to(self.root) else []
        return inspect_repository(self.root, self.version, exclude=exclude)

    def key(self, field: str) -> str:
        """A deploy.toml key of this service, for fixes: services.web.test_command."""
        return f"services.{self.service}.{field}"

    def policy_checks(self, *names: str, prefix: str | None = None) -> list[PolicyCheck]:
        return [
            check
            for check in self.decision.checks
            if check.name in names or (prefix is not None and check.name.startswith(prefix))
        ]


def _result(
    facts: Facts, name: str, ok: bool, evidence: str, fix: str | None = None, *, required: bool | None = None
) -> CheckResult:
    """Passed, or the problem as failed (required) or warning (not required)."""
    needed = facts.needs(name) if required is None else required
    if ok:
        return CheckResult(name=name, status="passed", required=needed, evidence=evidence)
    return CheckResult(name=name, status="failed" if needed else "warning", required=needed, evidence=evidence, fix=fix)


def _not_applicable(facts: Facts, name: str, evidence: str) -> CheckResult:
    return CheckResult(name=name, status="not_applicable", required=facts.needs(name), evidence=evidence)


# -- configuration and policy ------------------------------------------------------------------------------------


def config_loads(facts: Facts) -> CheckResult:
    where = facts.app.project.config_path
    return _result(
        facts,
        "config",
        True,
        f"{where.name if where else 'deploy.toml'} loads; {facts.environment} is an environment of {facts.service} "
        f"(mode {facts.mode.value}, strategy {facts.strategy.value})",
    )


_POLICY_FIXES = {
    "read-only": "a person sets policy.read_only = false in deploy.toml",
    "environment-allowlist": "a person adds the environment to policy.allowed_environments in deploy.toml",
    "recreate-in-production": "choose rolling, canary or blue-green (the strategy argument, or the environment's "
    "strategy in deploy.toml)",
}


def policy_scope(facts: Facts) -> CheckResult:
    """May this session deploy here at all: read-only, the allowlist, and recreate in production."""
    checks = facts.policy_checks("read-only", "environment-allowlist", "recreate-in-production", "recreate-downtime")
    failing = [check for check in checks if check.blocking and not check.passed]
    if failing:
        return _result(
            facts,
            "policy",
            False,
            " ".join(check.detail for check in failing),
            "; ".join(_POLICY_FIXES.get(check.name, "see the evidence") for check in failing),
            required=True,
        )
    return _result(facts, "policy", True, " ".join(check.detail for check in checks), required=True)


def staging_prerequisite(facts: Facts) -> CheckResult:
    """The version succeeded in every environment this one ``requires`` (usually staging)."""
    checks = facts.policy_checks(prefix="requires-")
    if not facts.env.requires:
        return _not_applicable(
            facts,
            "staging-prerequisite",
            f"{facts.key(f'environments.{facts.environment}.requires')} is empty: {facts.environment} does not "
            "wait for another environment",
        )
    missing = [check.name.removeprefix("requires-") for check in checks if not check.passed]
    where = " and ".join(missing)
    return _result(
        facts,
        "staging-prerequisite",
        not missing,
        " ".join(check.detail for check in checks),
        f"deploy {facts.service} {facts.version} to {where} and let it succeed, then deploy it to {facts.environment}",
    )


def deploy_window(facts: Facts) -> CheckResult:
    checks = facts.policy_checks("deploy-window")
    if not checks:
        return _not_applicable(
            facts,
            "deploy-window",
            f"no deploy window applies to {facts.environment}"
            + ("" if facts.decision.production else " (not a production environment)"),
        )
    check = checks[0]
    fix = (
        "deploy when the next window opens (see the evidence); changing policy.deploy_windows is a person's decision"
        if facts.config.policy.deploy_windows
        else "a person adds a [[policy.deploy_windows]] table (days, start, end in UTC) to deploy.toml"
    )
    return _result(facts, "deploy-window", check.passed, check.detail, fix, required=check.blocking)


def change_approval(facts: Facts) -> CheckResult:
    change = facts.change_id or "CHANGE-ID"
    return _enterprise_item(
        facts,
        "change-approval",
        "an approved change",
        f"the change owner runs `{approve_command(change, facts.service, facts.environment)}` in their own terminal "
        f"(a person's act, never the agent's); then deploy with change_id=\"{change}\"",
    )


def rollback_tested(facts: Facts) -> CheckResult:
    staging = facts.env.requires or ["staging"]
    return _enterprise_item(
        facts,
        "rollback-tested",
        "a rehearsed rollback",
        f"deploy {facts.service} to {' or '.join(staging)}, roll it back with the rollback tool, then deploy to "
        f"{facts.environment}",
    )


def on_call(facts: Facts) -> CheckResult:
    return _enterprise_item(
        facts, "on-call", "a named on-call engineer", 'a person sets policy.on_call = "NAME" in deploy.toml'
    )


def _enterprise_item(facts: Facts, name: str, what: str, fix: str) -> CheckResult:
    """An enterprise-mode item is the policy's check of the same name, with the fix a person applies."""
    checks = facts.policy_checks(name)
    if not checks:
        return _not_applicable(facts, name, _enterprise_only(facts, what))
    check = checks[0]
    return _result(facts, name, check.passed, check.detail, fix, required=check.blocking)


def other_policy_checks(facts: Facts) -> list[CheckResult]:
    """Policy checks no item above covers (the brownfield-polish advice), passed through as they are."""
    covered = {"read-only", "environment-allowlist", "recreate-in-production", "recreate-downtime", "deploy-window"}
    covered |= {"change-approval", "rollback-tested", "on-call", "flags-for-new-features"}
    return [
        _result(facts, check.name, check.passed, check.detail, "see the evidence", required=check.blocking)
        for check in facts.decision.checks
        if check.name not in covered and not check.name.startswith("requires-")
    ]


def _enterprise_only(facts: Facts, what: str) -> str:
    if facts.mode != Mode.BROWNFIELD_ENTERPRISE:
        return f"mode is {facts.mode.value}: only brownfield-enterprise mode requires {what}"
    return f"{facts.environment} is not a production environment: {what} is required for production only"


# -- the ledger --------------------------------------------------------------------------------------------------


def no_deployment_running(facts: Facts) -> CheckResult:
    ledger = facts.app.existing_ledger()
    name = "no-deployment-running"
    if ledger is None:
        return _result(facts, name, True, "no deployment has run in this project yet")
    held = ledger.lock_state(facts.service, facts.environment)
    deadline = time.monotonic() + LOCK_NAMING_SECONDS
    while held is not None and held.deployment_id is None and time.monotonic() < deadline:
        time.sleep(0.02)  # a deployment that has just taken the lock writes its record next: name it
        held = ledger.lock_state(facts.service, facts.environment)
    if held is not None:
        return _result(
            facts,
            name,
            False,
            held.describe(),
            "wait for it to finish (deployment_status), or abort it, before starting another",
        )
    for record in ledger.unfinished():
        here = (record.service, record.environment) == (facts.service, facts.environment)
        if here and record.status is Status.INTERRUPTED:
            return _result(
                facts,
                name,
                False,
                f"{record.id} ({record.service} {record.version}) was interrupted at step {record.current_step}",
                f"resume {record.id}, abort it, or roll back before starting another deployment",
            )
    return _result(facts, name, True, f"no deployment of {facts.service} is running in {facts.environment}")


def rollback_target(facts: Facts) -> CheckResult:
    """A version that passed validation here, for rollback to return to."""
    name = "rollback-target"
    ledger = facts.app.existing_ledger()
    records = ledger.list(service=facts.service, environment=facts.environment, limit=1) if ledger else []
    if not records:
        return _not_applicable(
            facts,
            name,
            f"first deployment of {facts.service} in {facts.environment}: there is nothing to roll back to",
        )
    good = ledger.last_good(facts.service, facts.environment) if ledger else None
    if good is None:
        return _result(
            facts,
            name,
            False,
            f"no earlier deployment of {facts.service} in {facts.environment} passed validation, so a rollback "
            "has no validated version to return to",
            f"run validate on what serves {facts.environment} now, so it can become the rollback target",
        )
    when = good.deployed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return _result(
        facts, name, True, f"rollback would return to {good.version} ({good.id}, deployed {when}, validated)"
    )


# -- the artifact ------------------------------------------------------------------------------------------------


def artifact(facts: Facts) -> CheckResult:
    """The release exists: its image is in the registry, or the local target has a command to run."""
    from deploy_mcp.preflight.registry import find_manifest, parse_image_ref

    name = "artifact"
    image = facts.release.image
    if not image:
        if facts.svc.target == TargetKind.LOCAL and facts.release.command:
            return _not_applicable(
                facts,
                name,
                f"{facts.service} runs on the local target from {facts.key('command')}: there is no image to look up",
            )
        return _result(
            facts,
            name,
            False,
            f"{facts.key('image')} is not set, and the {facts.svc.target.value} target runs images",
            f'set {facts.key("image")} = "registry.example.com/{facts.service}:{{version}}" in deploy.toml',
        )
    lookup = find_manifest(image, insecure=facts.svc.registry_insecure)
    if lookup.exists:
        return _result(facts, name, True, f"{image} is in the registry: {lookup.detail}")
    if lookup.exists is False:
        return _result(
            facts,
            name,
            False,
            f"{image} is not in the registry: {lookup.detail}",
            f"build and push the image (docker push {image}); or check the version and {facts.key('image')}",
        )
    if lookup.status_code in (401, 403):
        try:
            registry = parse_image_ref(image).registry
        except ValueError:
            registry = "the registry"
        fix = (
            f"run `docker login {registry}` where deploy-mcp runs (it reads docker's stored login), or check the image"
        )
    elif lookup.status_code is None and lookup.url:
        fix = f"check that the registry at {lookup.url.split('/v2/')[0]} is up and reachable from here" + (
            ""
            if facts.svc.registry_insecure or lookup.url.startswith("http:")
            else f" (a registry without TLS needs {facts.key('registry_insecure')} = true)"
        )
    else:
        fix = f"check {facts.key('image')} in deploy.toml and the registry"
    return _result(facts, name, False, f"could not confirm that {image} exists: {lookup.detail}", fix)


def immutable_version(facts: Facts) -> CheckResult:
    """``latest`` names whatever was pushed last: the record could not say what ran, nor rollback what to restore."""
    name = "immutable-version"
    tag = None
    if facts.release.image:
        from deploy_mcp.preflight.registry import ImageRefError, parse_image_ref

        try:
            tag = parse_image_ref(facts.release.image).reference
        except ImageRefError:
            tag = None
    moving = [value for value in (facts.version, tag) if value and value.lower() in MUTABLE_VERSIONS]
    return _result(
        facts,
        name,
        not moving,
        f"{facts.version!r} names one release" + (f" (image tag {tag!r})" if tag else "")
        if not moving
        else f"{moving[0]!r} is a moving name: the record cannot say what ran, nor rollback what to restore",
        "deploy an immutable version: a release number such as 1.4.0, or a commit SHA",
    )


# -- the code ----------------------------------------------------------------------------------------------------


def git_clean(facts: Facts) -> CheckResult:
    from deploy_mcp.preflight.git import DIRTY_EXAMPLES, short

    name = "git-clean"
    git = facts.git
    if git.problem is not None:
        if not facts.needs(name):
            return _not_applicable(facts, name, git.problem)
        return _result(facts, name, False, git.problem, "deploy from a git checkout of the project with git installed")
    if git.dirty:
        shown = ", ".join(git.dirty[:DIRTY_EXAMPLES]) + (", ..." if len(git.dirty) > DIRTY_EXAMPLES else "")
        return _result(
            facts,
            name,
            False,
            f"{len(git.dirty)} uncommitted change(s) in {facts.root}: {shown}",
            "commit (or remove) them so the release is built from a commit: `git status` lists them",
        )
    return _result(facts, name, True, f"the working tree is clean at HEAD {short(git.head)}")


def git_commit(facts: Facts) -> CheckResult:
    from deploy_mcp.preflight.git import short

    name = "git-commit"
    git = facts.git
    if git.problem is not None:
        if not facts.needs(name):
            return _not_applicable(facts, name, git.problem)
        return _result(facts, name, False, git.problem, "deploy from a git checkout of the project with git installed")
    found = git.version_commit
    if found is None:
        tried = ", ".join(ref.removeprefix("refs/tags/") for ref in git.tried)
        return _result(
            facts,
            name,
            False,
            f"no tag or commit names version {facts.version} in the repository (tried {tried})",
            f"tag the commit the release is built from: `git tag v{facts.version} COMMIT` and push the tag",
        )
    via = found.via.removeprefix("refs/tags/")
    head = "" if found.commit == git.head else f"; HEAD is at {short(git.head)}, a different commit"
    return _result(facts, name, True, f"version {facts.version} is commit {short(found.commit)} ({via}){head}")


def tests_passed(facts: Facts) -> CheckResult:
    from deploy_mcp.preflight import testruns

    name = "tests"
    command = facts.svc.test_command
    if not command:
        if facts.needs(name):
            return _result(
                facts,
                name,
                False,
                f"{facts.mode.value} mode requires the tests to pass before a deploy, and {facts.key('test_command')} "
                "is not set",
                f'set {facts.key("test_command")} = ["pytest", "-q"] (the command that runs the tests) in deploy.toml',
            )
        return _not_applicable(facts, name, f"{facts.key('test_command')} is not set")
    git = facts.git
    commit = git.head if git.problem is None and not git.dirty else None
    unrecorded = "not a git checkout" if git.problem is not None or git.head is None else "uncommitted changes"
    state_dir = facts.app.project.state_dir
    if facts.config.policy.read_only:
        return _recorded_tests_only(facts, name, command, commit, state_dir, "read-only session (policy.read_only)")
    from deploy_mcp.server.identities import CALLER, Role

    caller = CALLER.get()
    if caller is not None and caller.role is Role.VIEWER:  # a viewer changes nothing and runs nothing
        return _recorded_tests_only(facts, name, command, commit, state_dir, f"{caller.label} has the viewer role")
    run = testruns.recorded(state_dir, commit, command) if commit else None
    reused = run is not None
    if run is None:
        cwd = facts.root / facts.svc.cwd if facts.svc.cwd else facts.root
        run = testruns.run_tests(command, cwd, facts.svc.test_timeout, commit)
        if run.problem is None:
            testruns.record(state_dir, run)
    evidence = testruns.describe(run, reused=reused, unrecorded=unrecorded, secrets=facts.svc.env.values())
    found = git.version_commit if git.problem is None else None
    if found and commit and found.commit != commit:
        evidence += f" (version {facts.version} is commit {found.commit[:12]}: the tests ran on HEAD, not on it)"
    fix = (
        f"make `{' '.join(mask_command(command) or [])}` pass, commit, and check again"
        if run.problem is None
        else f"fix {facts.key('test_command')} or {facts.key('test_timeout')}: {run.problem}"
    )
    return _result(facts, name, run.passed, evidence, fix)


def _recorded_tests_only(
    facts: Facts, name: str, command: list[str], commit: str | None, state_dir: Path, why: str
) -> CheckResult:
    """A read-only session, or a viewer, executes nothing, not even the test command: it reports the run recorded
    for this commit, else the last one recorded, and says which. ``why``: which of the two, for the evidence."""
    from deploy_mcp.preflight import testruns

    run = (testruns.recorded(state_dir, commit, command) if commit else None) or testruns.latest(state_dir, command)
    ran = f"`{' '.join(mask_command(command) or [])}`"
    if run is None:
        return _result(
            facts,
            name,
            False,
            f"{why}: {ran} was not run, and no run of it is recorded",
            f"run {ran} where changes are allowed (a preflight there records the result), then check again",
        )
    where = "this commit" if run.commit and run.commit == commit else f"commit {(run.commit or 'unknown')[:12]}"
    outcome = "passed" if run.passed else f"failed (exit {run.exit_code})"
    return _result(
        facts,
        name,
        run.passed,
        f"{why}: {ran} was not run; the last recorded run, on {where} at "
        f"{run.finished_at:%Y-%m-%d %H:%M} UTC, {outcome}",
        f"make {ran} pass and record a run where changes are allowed",
    )


UNDECLARED_IRREVERSIBLE = "migrations: undeclared irreversible"
"""Not an item of its own: the part of the ``migrations`` item that the mode may require (see ``run.py``)."""


def migrations_linted(facts: Facts) -> CheckResult:
    """The release's new migrations pass the linter, and an irreversible one is declared, so rollback knows to fix
    forward.

    Only the files the last succeeded deployment here did not carry are judged: the others already ran, so their
    findings are history, and holding them against every later release would make the item always fire. An
    undeclared irreversible migration is the one finding the mode may make blocking; errors and warnings are
    problems to read (locks, rewrites), info findings are habits, mentioned but not held against the release.
    """
    name = "migrations"
    folder = facts.svc.migrations
    if not folder:
        return _not_applicable(facts, name, f"{facts.key('migrations')} is not set: no migrations to lint")
    try:
        from deploy_mcp.migrations.release import release_migrations
        from deploy_mcp.migrations.rules import IRREVERSIBLE
    except ImportError:
        return _not_applicable(facts, name, "migration linting not available")
    try:
        found = release_migrations(folder, facts.root, facts.app.ledger(), facts.service, facts.environment)
    except UserError as exc:
        return _result(
            facts,
            name,
            False,
            f"{facts.key('migrations')} = {folder!r}: {exc}",
            f"point {facts.key('migrations')} at the folder that holds the migrations",
        )
    override = facts.svc.versions.get(facts.version)
    declared = bool(override and override.migrations_irreversible)
    # An explicit `migrations_irreversible = false` is a person overruling the lint (the column was never used):
    # rollback honours it too, so it is reported, not held against the release.
    overruled = override is not None and override.declared_reversible
    checked = f"{found.report.path}: {found.describe_new()}"
    if found.old_findings:
        checked += f" ({found.old_findings} finding(s) in files earlier releases shipped are not held against this one)"
    irreversible = found.irreversible
    risky = [f for f in found.new_findings if f.severity != "info" and f.rule != IRREVERSIBLE]
    listed = "; ".join(f"{f.file}:{f.line} {f.rule}: {f.message}" for f in risky[:MAX_FINDINGS])
    listed += f" (and {len(risky) - MAX_FINDINGS} more)" if len(risky) > MAX_FINDINGS else ""
    if irreversible and not declared and not overruled:
        where = "; ".join(f"{f.file}:{f.line} {f.message.split(';')[0]}" for f in irreversible[:MAX_FINDINGS])
        others = f". Other findings: {listed}" if risky else ""
        return _result(
            facts,
            name,
            False,
            f"{checked}. Irreversible and not declared: {where}. The runner would mark the deployment "
            f"roll-forward-only (rollback refused) though deploy.toml does not say so{others}",
            "declare it with migrations_irreversible = true under "
            f'[services.{facts.service}.versions."{facts.version}"] in deploy.toml (rollback then means fix forward), '
            "or split the migration expand / contract: ship the additive part now (both versions run against it) "
            "and the destructive part in a later release, once nothing uses what it removes",
            required=facts.needs(UNDECLARED_IRREVERSIBLE),
        )
    acknowledged = ""
    if irreversible:
        acknowledged = (
            " (irreversible by the lint, but migrations_irreversible = false overrules it: rollback will cross it)"
            if overruled
            else " (irreversible, declared: rollback means fix forward)"
        )
    if risky:
        return _result(
            facts,
            name,
            False,
            f"{checked}. {len(risky)} finding(s) in them{acknowledged}: {listed}",
            "fix each finding with its safe alternative (lint_migrations shows them all)",
        )
    if not irreversible and declared:
        acknowledged = " (declared irreversible, though the lint finds no new irreversible migration)"
    info = len(found.new_findings) - len(risky) - len(irreversible)
    extra = f"; {info} informational finding(s)" if info else ""
    return _result(facts, name, True, f"{checked}. No problem in the new files{acknowledged}{extra}")


def feature_flags(facts: Facts) -> CheckResult:
    """New code paths ship behind a flag (brownfield-polish), and a configured flag file is readable flagd JSON."""
    name = "feature-flags"
    flag = facts.svc.flag
    needs_flag = facts.strategy == StrategyName.FEATURE_FLAG
    if flag is None:
        if needs_flag:
            return _result(
                facts,
                name,
                False,
                "the feature-flag strategy needs a flag, and none is configured",
                f'add [services.{facts.service}.flag] with name = "..." to deploy.toml, or choose another strategy',
                required=True,
            )
        advice = facts.policy_checks("flags-for-new-features")
        if advice:
            return _result(facts, name, False, advice[0].detail, "configure a flag for the next feature")
        return _not_applicable(facts, name, f"no feature flag is configured for {facts.service}")
    path = facts.root / flag.file
    if not path.exists():
        return _result(
            facts,
            name,
            True,
            f"flag {flag.name!r} is configured; {flag.file} does not exist yet and is written when the flag moves",
            required=needs_flag or facts.needs(name),
        )
    problem: str | None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        document, problem = None, str(exc)
    else:
        problem = None if isinstance(document, dict) and isinstance(document.get("flags", {}), dict) else "no flags"
    if problem is not None:
        return _result(
            facts,
            name,
            False,
            f"{flag.file} is not a readable flagd JSON file: {problem}",
            f'fix {flag.file}: a JSON object with a "flags" object (flagd format)',
            required=needs_flag or facts.needs(name),
        )
    defined = flag.name in (document or {}).get("flags", {})
    where = "is defined in" if defined else "is not in yet; it is added to"
    return _result(
        facts, name, True, f"flag {flag.name!r} {where} {flag.file}", required=needs_flag or facts.needs(name)
    )


# -- the running service -----------------------------------------------------------------------------------------


def current_health(facts: Facts) -> CheckResult:
    """What serves now answers its health check: a deploy over a sick version makes the numbers hard to read."""
    from deploy_mcp.signals.health import check_instances

    name = "current-health"
    try:
        serving = facts.app.serving_version(facts.service, facts.environment)
        if serving is None:
            return _not_applicable(facts, name, f"nothing serves {facts.service} in {facts.environment} yet")
        summary = check_instances(facts.app.platform(facts.service), facts.service, facts.environment)
    except Exception as exc:  # the platform is down or unreachable: a warning here, the deploy will say more
        return _result(facts, name, False, f"could not ask the platform: {exc}", "check the platform is reachable")
    return _result(
        facts,
        name,
        summary.healthy,
        f"{serving} serves now; {summary.detail}",
        "find out why the serving version is unhealthy (validate, its logs) before judging a new one against it",
    )
