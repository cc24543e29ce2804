"""hello: the example service deploy-mcp ships (see server.py)."""
