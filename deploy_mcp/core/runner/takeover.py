"""Takeover: a server replica carries on (or undoes) the deployments of a replica that died.

Every ``deploy-mcp serve --http`` runs one `TakeoverWatch`. It looks at the ledger's unfinished records (one query
on a partial index; nothing when nothing runs) a few times per lease. A deployment whose lock lease ran out with
nobody renewing it is marked interrupted by the runner's own recovery; then ``policy.on_interrupted`` decides:
``hold`` leaves it for a person (the default, as for a single server), ``resume`` takes it over and carries on from
the step it was at, ``rollback`` rolls the service back to its last good version (the interrupted record ends
``rolled_back``), exactly as the rollback tool would.

Only a deployment whose driver *died* is taken over: its ``interrupted`` event was written by a recovery (it names
``found_by``). One handed back on purpose (a server stopped with SIGTERM, Ctrl-C in a terminal) waits for a person.
Replicas race for it through the deployment lock: exactly one wins, the others see it running and leave it.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from deploy_mcp.config.schema import Takeover
from deploy_mcp.core.records import DeploymentRecord, Status
from deploy_mcp.errors import UserError

if TYPE_CHECKING:
    from deploy_mcp.app import App
    from deploy_mcp.ledger import Ledger

log = logging.getLogger("deploy_mcp.takeover")

CHECKS_PER_LEASE = 3


def died(ledger: Ledger, record: DeploymentRecord) -> bool:
    """Interrupted because its driver died (found by a recovery), not handed back, and not taken over since."""
    if record.status is not Status.INTERRUPTED:
        return False
    for event in reversed(ledger.events(record.id)):
        if event.kind == "resumed":
            return False
        if event.kind == "interrupted":
            return "found_by" in event.data
    return False


class TakeoverWatch:
    """The replica's watcher thread; `check` is one look, callable on its own (tests, a CLI)."""

    def __init__(self, app: App, period: float | None = None) -> None:
        from deploy_mcp.core.runner.base import lease_seconds

        self.app = app
        self.period = period if period is not None else max(0.2, lease_seconds() / CHECKS_PER_LEASE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TakeoverWatch:
        self._thread = threading.Thread(target=self._run, name="deploy-mcp takeover", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.period * 2 + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.check()
            except UserError as exc:  # an invalid deploy.toml, a ledger down for a moment: say so, try again later
                log.warning("takeover check: %s", exc)
            except Exception:
                log.exception("takeover check failed")

    def check(self) -> list[DeploymentRecord]:
        """Mark interrupted what no live replica drives, then act on policy; returns the records taken over."""
        ledger = self.app.existing_ledger()
        if ledger is None or not ledger.unfinished():
            return []
        runner = self.app.runner()
        runner.recover()
        policy = self.app.config.policy.on_interrupted
        if policy is Takeover.HOLD:
            return []
        taken: list[DeploymentRecord] = []
        for record in ledger.unfinished():
            if record.id in runner.running() or not died(ledger, record):
                continue
            by = f"takeover by {runner.holder} (policy.on_interrupted = {policy.value})"
            try:
                if policy is Takeover.RESUME:
                    taken.append(runner.resume(record.id, by=by))
                else:
                    reason = f"{record.id} lost the server replica driving it"
                    taken.append(runner.rollback(record.service, record.environment, reason=reason, requested_by=by))
            except UserError as exc:  # another replica took it first
                log.info("takeover of %s: %s", record.id, exc)
                continue
            log.warning("%s: took over %s (%s)", runner.holder, record.id, policy.value)
        return taken
