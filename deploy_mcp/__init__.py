"""deploy-mcp: an MCP server that ships services safely."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deploy-mcp")
    """The installed distribution's version: pyproject.toml is the one place it is written."""
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
