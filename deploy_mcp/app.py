"""What one running deploy-mcp acts on: the project, its ledger, and what this session may do.

The MCP server and the CLI both build an `App`, so a record written from a terminal and one written by an
agent go through the same code. Everything is loaded on first use: deploy.toml when a tool or resource first
needs it, the ledger when a record is first read or written. A server that only answers `tools/list` touches
neither, which keeps start-up fast.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from deploy_mcp.errors import UserError

if TYPE_CHECKING:
    from deploy_mcp.config.loader import Project
    from deploy_mcp.config.schema import DeployConfig
    from deploy_mcp.core.platform import Platform
    from deploy_mcp.core.runner import Runner
    from deploy_mcp.ledger.base import Ledger
    from deploy_mcp.targets.registry import Targets

LEDGER_FILE = "ledger.db"
NO_CONFIG_HINT = (
    "no deploy.toml found in this folder or its parents; run `deploy-mcp init` in the project root to create "
    "one, or point DEPLOY_MCP_CONFIG at it"
)


class App:
    def __init__(self, config: str | Path | None = None, *, start: Path | None = None) -> None:
        self._config_arg = config
        self._start = start
        self._project: Project | None = None
        self._config_error: str | None = None
        self._config_missing = False  # --config / $DEPLOY_MCP_CONFIG names no file: not found, not invalid
        self._ledger: Ledger | None = None
        self._targets: Targets | None = None
        self._runner: Runner | None = None
        self._lock = threading.RLock()

    @classmethod
    def load(cls, config: str | Path | None = None, *, start: Path | None = None) -> App:
        """An App for the project found from ``config`` (see `discover`); nothing is read until needed."""
        return cls(config, start=start)

    @property
    def project(self) -> Project:
        """The project; an invalid deploy.toml is kept as `config_error`, which every tool reports."""
        with self._lock:
            if self._project is None:
                from deploy_mcp.config.loader import ConfigError, ConfigNotFound, Project, load_project
                from deploy_mcp.config.schema import DeployConfig

                try:
                    self._project = load_project(self._config_arg, self._start)
                except ConfigError as exc:
                    self._project = Project(config=DeployConfig(), config_path=None)
                    self._config_error = str(exc)
                    self._config_missing = isinstance(exc, ConfigNotFound)
            return self._project

    @property
    def config_error(self) -> str | None:
        _ = self.project
        return self._config_error

    @property
    def config(self) -> DeployConfig:
        return self.project.config

    def require_config(self) -> DeployConfig:
        """The configuration, or a clear error when there is none or it is invalid."""
        if self.config_error:
            problem = "deploy.toml not found" if self._config_missing else "deploy.toml is invalid, fix it first"
            raise UserError(f"{problem}: {self.config_error}")
        if not self.project.configured:
            raise UserError(NO_CONFIG_HINT)
        return self.project.config

    @property
    def ledger_path(self) -> Path:
        return self.project.state_dir / LEDGER_FILE

    def ledger(self) -> Ledger:
        """The ledger beside deploy.toml, opened (and migrated) on first use."""
        self.require_config()
        with self._lock:
            if self._ledger is None:
                from deploy_mcp.ledger import open_ledger

                self._ledger = open_ledger(self.ledger_path)
            return self._ledger

    def existing_ledger(self) -> Ledger | None:
        """The ledger if one was ever written; reading history must not create files."""
        if self.config_error or not self.project.configured:
            return None
        if self._ledger is None and not self.ledger_path.exists():
            return None
        return self.ledger()

    def platform(self, service: str) -> Platform:
        """The platform that runs ``service`` (deploy.toml's ``target``): workload, router, prober, flags."""
        self.require_config()
        with self._lock:
            if self._targets is None:
                from deploy_mcp.targets.registry import Targets

                self._targets = Targets(self.project)
        return self._targets(service)

    target = platform  # the older name, still read by a few tools

    def serving_version(self, service: str, environment: str) -> str | None:
        """The version that takes most traffic now, as the platform reports it: what a plan starts from.

        A typo in the service or environment is reported as such, not as a platform error.
        """
        from deploy_mcp.core.recommend import lookup

        lookup(self.require_config(), service, environment)
        serving = self.platform(service).state(service, environment).serving
        return serving[0] if serving else None

    def runner(self) -> Runner:
        """The runner that drives this process's deployments; on creation it marks orphaned ones interrupted."""
        ledger = self.ledger()
        with self._lock:
            if self._runner is None:
                from deploy_mcp.core.runner import Runner

                self._runner = Runner(self.project, ledger, self.platform)
                self._runner.recover()
            return self._runner

    def settle_ledger(self) -> None:
        """Before records are shown, mark interrupted those whose driving process has died.

        A server killed mid-deployment leaves its record in progress; only the runner can tell (its lock holder is
        gone) and say so. Every reader of the ledger calls this first, so nobody, agent or person, is told that a
        dead process is still deploying. It costs one query when nothing is under way.
        """
        from deploy_mcp.core.records import Status

        ledger = self.existing_ledger()
        if ledger is None:
            return
        if any(record.status is not Status.INTERRUPTED for record in ledger.unfinished()):
            self.runner().recover()

    def close(self) -> None:
        with self._lock:
            if self._runner is not None:
                self._runner.close()
                self._runner = None
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None
            if self._targets is not None:
                self._targets.close()
                self._targets = None
