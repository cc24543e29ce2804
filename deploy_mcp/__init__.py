"""deploy-mcp: an MCP server that ships services safely."""

__version__ = "0.1.0"
