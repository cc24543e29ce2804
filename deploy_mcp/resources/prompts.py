"""The text of the MCP prompts `ship`, `hotfix` and `rollback`.

The server enforces the rules; these prompts teach an agent to drive it in the right order and to make the calls
the server hands back (a warn pause, a rollback outside a rollout, what to tell the user). The decision rules are
shared so the three prompts can never disagree about what a verdict means.
"""

from __future__ import annotations

CONSENT_RULES = """\
Production needs the user's consent, and the server asks for it:
- For deploy, rollback and the other destructive actions in production, the server asks the user to confirm.
  Let the user answer. Never answer for them, never pass an argument meant as confirmation, and never run
  `deploy-mcp approve` yourself: consent you give yourself is not consent.
- If the server refuses because this client cannot ask the user, or because your role does not reach
  production, stop and tell the user. The user can make the call from an MCP client that asks them; on a team
  server a releaser (a person, with their own token) approves it with
  `deploy-mcp approve CHANGE-ID --service SERVICE --environment ENVIRONMENT --server URL`;
  then retry the same call (a deploy passes change_id="CHANGE-ID"). An approval typed in a terminal does not
  count for production, so driving a terminal for one (`script`, piped answers) changes nothing.
- A refusal by policy (read-only session, environment not allowed, outside the deploy window, a required
  environment not yet succeeded) is an answer, not an obstacle: report it and do not look for a way round it."""

DECISION_RULES = """\
What the server's verdicts mean and what you do:
- pass (step Successful): every metric within its warn threshold, with enough traffic. Nothing to do; the
  server moves on.
- warn (Inconclusive; the status is paused): a warn threshold was crossed, by default error rate over 1% or
  p95 over 500 ms. Investigate for at most 5 minutes (the verdict's numbers in deployment_status, validate,
  the logs). Then resume(deployment_id) if you understand it and the numbers are back within limits;
  otherwise abort(deployment_id, reason).
- critical (Failed; the status becomes rolled_back): a critical threshold was crossed, by default error rate
  over 5% or p95 over 2000 ms, or health or a smoke test failed. The server has already aborted and rolled
  back. Do not deploy the same version again; tell the user, with the numbers.
- Error: the metric source failed several times in a row. Never a pass: fix the source or
  abort(deployment_id, reason).
- Waiting for data: fewer requests than the step's minimum sample. No data is not a pass: make sure traffic
  reaches the new version, or abort.

Your hands on a running deployment:
- pause(deployment_id) holds at the current step so you can look without the clock running.
- resume(deployment_id) carries on from a pause, with analysis still running.
- promote(deployment_id) moves to the next step now: only when the user asks for speed and every number so
  far is clean.
- abort(deployment_id, reason) stops the rollout and returns traffic to the stable version: the fastest way
  back while a rollout is in flight.

When to roll back without waiting for the server:
- Roll back now: error rate over 5%, service unavailable, data corruption (freeze writes first), a security
  flaw live in production.
- Investigate for 5 minutes, then decide (when in doubt, roll back): error rate between 1% and 5%, latency
  over twice its normal level, one endpoint failing, intermittent errors.
- Exception: when the release applied a database migration the old version cannot run against (the record
  says roll_forward_only), do not roll the application back: fix forward with a hotfix.
- Otherwise roll back the application first, then a reversible migration, then verify with validate."""


def ship(service: str, environment: str = "production", version: str | None = None) -> str:
    """Walk one service through the SHIP phase: orient, plan, preflight, deploy, decide, validate, document."""
    shown_version = version or "VERSION"
    version_note = (
        f"Version to ship: `{version}`."
        if version
        else "No version was given: find the release to ship (the tag or image just built, never `latest`) and\n"
        "confirm it with the user before planning. Below, VERSION stands for it."
    )
    args = f'service="{service}", version="{shown_version}", environment="{environment}"'
    target = f'service="{service}", environment="{environment}"'
    return f"""\
# Ship {service} to {environment}

You are shipping `{service}` to `{environment}` with deploy-mcp. The server plans the rollout, enforces the
strategy, judges every step on health, smoke tests and metrics, and rolls back by itself on a critical verdict.
Your job: drive it in this order, read what it reports, make the decisions it hands back, and tell the user
plainly what happened.

{version_note}

## 0. Orient

- Read deploy://capabilities: mode, whether this session is read-only, which environments it may touch,
  whether production needs confirmation. If `{environment}` is not allowed, stop and tell the user.
- Read deploy://config for the strategy, steps, analysis and thresholds of `{service}` in `{environment}`.
- Call deployment_history({target}, limit=5)
  to learn what runs now, whether a deployment is in progress, and which is the newest deployment that
  passed validation (your rollback target).
- Read deploy://checklists/pre-deployment and deploy://references/rollback-procedures before going on.
- Mode brownfield-enterprise: also follow deploy://checklists/enterprise-change (approved change id, deploy
  window, on-call engineer, 4-hour monitoring period). Mode brownfield-polish: match the existing process,
  smoke-test existing functionality, put new features behind flags, no breaking API changes.

## 1. Plan

Call plan_deployment({args}).
- Read the recommended strategy and its reason, the steps, the gates and the checks; summarise them to the user
  in two or three lines.
- Keep the recommended strategy. Pass `strategy` only for a reason the plan did not weigh, and say it.
  Recreate is for dev and test only. Background: deploy://references/deployment-strategies.
- If an earlier environment (usually staging) must succeed first and has not, ship there first.

## 2. Preflight

Call preflight({args}).
- Each failed item stops you: fix it, or report it to the user and wait. "Not applicable" is fine.
- If the release carries database migrations, call lint_migrations(path="<the migrations folder>") and fix
  every finding with its safe alternative (deploy://references/migration-safety) before deploying.

## 3. Deploy

Call deploy({args}, wait_seconds=45).
It returns within wait_seconds with the deployment id and the record so far; the rollout goes on in the server.
- Poll deployment_status(deployment_id) every 15-30 seconds until the status is succeeded, failed,
  rolled_back or aborted, or it is paused (see the rules below).
- One deployment per service and environment at a time: if the server says one is running, follow that one
  with deployment_status instead of starting another.
- Status interrupted means the server restarted mid-rollout: resume(deployment_id) or roll back.

{CONSENT_RULES}

## 4. Decide

{DECISION_RULES}

## 5. Validate

Once the status is succeeded, call validate({target}, deployment_id=<the id>).
- pass: go on. warn: investigate for at most 5 minutes, then keep it or roll back, and say why.
- fail: rollback({target}, reason="<the failing checks and numbers>").
Then work through deploy://checklists/post-deployment: immediate (first 5 minutes), short term (5-30 minutes),
medium term (30 minutes to 2 hours). Details: deploy://references/validation-checklist.

## 6. Record and document

- Call deployment_history({target}, limit=3) and check that the record shows succeeded with its validation
  numbers; deploy://deployments lists the same records.
- DEPLOY.md must exist at the project root and document the rollback procedure: call generate_deploy_md() to
  see it and generate_deploy_md(write=True) to write it when it is missing or out of date.
- If the service has no alert rules yet, call generate_monitoring({target}) and add the rules and dashboard to
  the project's monitoring (deploy://references/monitoring-setup).
- Report to the user: version, strategy, each step's verdict with its numbers, the deployment id, the duration,
  and the one command that undoes it:
  `deploy-mcp rollback {service} --environment {environment} --reason "..."`.
"""


def hotfix(service: str, version: str, reason: str) -> str:
    """Ship an urgent fix quickly, keeping every validation gate: speed comes from scope, not from skipped checks."""
    prod = f'service="{service}", version="{version}", environment="production"'
    return f"""\
# Hotfix {service} {version}

Reason: {reason}

A hotfix is the SHIP phase done faster, never with fewer checks. The speed comes from a small change and a
short, decisive rollout. Health checks, smoke tests and metric analysis still gate every step; thresholds are
not relaxed to get through; recreate is never used.

## 1. Orient (a minute, not more)

- Read deploy://capabilities and deploy://checklists/pre-deployment.
- Call deployment_history(service="{service}", limit=5): what runs in production, whether a deployment is
  still in progress (abort(deployment_id, reason) it first if it is the broken one), and the newest deployment
  that passed validation: the fallback if the hotfix fails too.
- Only the fix ships: no refactors, no unrelated commits. A migration belongs in a hotfix only when it is the
  fix, and then only as an additive, backward-compatible change: check it with lint_migrations(path=...).

## 2. Plan with a fast, reversible strategy

Prefer blue-green when the service can run at twice its size, since switching back takes seconds:
  plan_deployment({prod}, strategy="blue-green")
Otherwise use strategy="canary" with a short bake: a few minutes per step is fine, a bake of zero or no minimum
sample is not (change `analysis` in deploy.toml only with the user's agreement). Compare with the plan's own
recommendation and tell the user which you chose and why.

## 3. Preflight, staging, production

- Call preflight({prod}).
  A failed item still stops you; "not applicable" is fine.
- Staging first when production requires it:
  deploy(service="{service}", version="{version}", environment="staging", wait_seconds=45),
  poll deployment_status(deployment_id) to the end, then validate(service="{service}", environment="staging").
- Production:
  deploy({prod}, strategy=<your choice>, wait_seconds=45),
  then poll deployment_status(deployment_id) every 15-30 seconds.

{CONSENT_RULES}

{DECISION_RULES}

## 4. Validate, always

Call validate(service="{service}", environment="production", deployment_id=<the id>).
Health and smoke tests must pass; a hotfix that is not validated is not done. On fail, call
  rollback(service="{service}", environment="production", reason="hotfix {version} failed validation: <numbers>")
and escalate.
Then watch the short-term window (5-30 minutes) from deploy://checklists/post-deployment before calling the
incident resolved.

## 5. Record the reason

- Write the reason down next to the deployment id: in the change record (pass change_id="..." to deploy when
  the project uses change ids), the release notes and the incident ticket. The reason: {reason}
- Check the record with deployment_history(service="{service}", environment="production", limit=3).
- Regenerate DEPLOY.md with generate_deploy_md(write=True) if the procedure changed.
- Report to the user: what was fixed, version, strategy, verdicts with numbers, deployment id, and how to undo:
  `deploy-mcp rollback {service} --environment production --reason "..."`.
"""


def rollback(service: str, environment: str = "production", reason: str | None = None) -> str:
    """Roll back to the last validated deployment: look first, pick the target, run, verify, write it down."""
    reason_line = (
        f"Reason: {reason}"
        if reason
        else "No reason was given yet: find the symptom with validate (or ask the user) and state it in one\n"
        "sentence; the rollback needs it."
    )
    reason_arg = reason or "<the symptom in one sentence>"
    target = f'service="{service}", environment="{environment}"'
    return f"""\
# Roll back {service} in {environment}

{reason_line}

Read deploy://checklists/rollback and deploy://references/rollback-procedures, then go in this order.

## 1. Look before acting

- Call deployment_history({target}, limit=10)
  (newest first; deploy://deployments shows the same records). Note the version running now, its status,
  and the newest deployment whose validation passed: that is the rollback target.
- A deployment still in_progress or paused: check it with deployment_status(deployment_id). While a rollout is
  in flight, abort is the rollback: traffic returns to the stable version. Call
  abort(deployment_id, reason="{reason_arg}")
  and go straight to step 4.
- Call validate({target})
  and keep its numbers: they justify the rollback and go into the incident.
- If the deployment to be undone is marked roll_forward_only (it applied a migration the old version cannot
  run against), stop: do not roll the application back. Fix forward with a hotfix and tell the user why.
- Critical signals (error rate over 5%, service unavailable, data corruption, a live security flaw) mean act now;
  with data corruption, freeze writes first. Warning signals get at most 5 minutes of investigation.

## 2. Choose the target

By default the server rolls back to the last deployment of {service} in {environment} that passed validation,
not merely the previous one. Pass `to` (a deployment id or a version) only when the user names another target
or the default is known bad. Never pick a version that never passed validation without the user saying so.

## 3. Roll back

Call
  rollback({target}, reason="{reason_arg}")
adding to="<deployment id or version>" only as decided above. Poll deployment_status(deployment_id) on the
rollback's own record until it is succeeded. If it fails, escalate at once: on-call, then team lead (rollback
failed or data involved), then platform / SRE, then management when customers have been affected for more
than 30 minutes.

{CONSENT_RULES}

## 4. Verify

- Call validate({target}).
  It must pass (health, smoke, error rate, p95), and health must report the target version on every instance.
- The error rate should be back at its pre-deploy level within 5 minutes.
- Only now, and only if it is reversible and needed, roll back the migration; then validate again.

## 5. Document the incident

- Call deployment_history({target}, limit=3)
  and check that the rollback record names the deployment it reverts.
- Write the incident: what was deployed and what it was rolled back to (both deployment ids), the timeline,
  the numbers that triggered it, customer impact and its duration, the root cause or the investigation ticket,
  and what changes so it does not recur.
- If the procedure itself changed, regenerate DEPLOY.md with generate_deploy_md(write=True).
- Tell the user: restored version, rollback id, the verification numbers, and the open follow-ups.
"""
