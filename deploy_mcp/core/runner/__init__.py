"""The runner: executes a deployment plan against a platform step by step, judging it and writing the ledger.

Modules: api (the Runner), execute (one deployment's thread), actions (what each step does to a platform),
control (pause/resume/promote/abort across threads and processes), rollback (undo and rollback), base.
"""

from deploy_mcp.core.runner.api import Runner
from deploy_mcp.core.runner.base import RunnerError, default_holder
from deploy_mcp.core.runner.control import ControlAction
from deploy_mcp.core.runner.execute import ROLLBACK_STRATEGY

__all__ = ["ROLLBACK_STRATEGY", "ControlAction", "Runner", "RunnerError", "default_holder"]
