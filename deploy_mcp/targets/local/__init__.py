"""The local platform: a service's versions as processes behind a weighted router, with live RED metrics.

``create_platform`` (platform.py) builds the ``Platform`` the rest of deploy-mcp uses: ``LocalWorkload`` (the
processes), the router, prober and metrics that talk to the same supervisor (traffic.py) and the flagd file
(flags.py). Everything else here runs inside the per-service supervisor process. Imports are lazy so that
importing this package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deploy_mcp.targets.local.platform import LocalPlatform, LocalWorkload, create_platform

__all__ = ["LocalPlatform", "LocalWorkload", "create_platform"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from deploy_mcp.targets.local import platform

        return getattr(platform, name)
    raise AttributeError(name)
