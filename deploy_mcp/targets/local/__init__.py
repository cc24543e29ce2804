"""The local platform: a service's versions as processes behind a weighted router, with live RED metrics.

``LocalTarget`` (platform.py) is what the rest of deploy-mcp uses; everything else here runs inside the
per-service supervisor process. The import is lazy so that importing this package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deploy_mcp.targets.local.platform import LocalTarget

__all__ = ["LocalTarget"]


def __getattr__(name: str) -> Any:
    if name == "LocalTarget":
        from deploy_mcp.targets.local.platform import LocalTarget

        return LocalTarget
    raise AttributeError(name)
