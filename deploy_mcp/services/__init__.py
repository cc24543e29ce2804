"""What deploy-mcp does, apart from the faces that let someone ask for it.

The MCP tools (deploy_mcp/tools), the CLI (deploy_mcp/cli) and the team server's approvals endpoint each only
validate what they were given, call a service here and shape the result for their reader. A service works on an
`App` (configuration, ledger, platforms, Runner) and raises `UserError` for mistakes a caller can fix; it imports
neither the MCP SDK nor argparse, so the CLI starts without loading the SDK and both faces decide the same way.

This is not core/: core/ holds the pure domain (plans, policy, records, the Runner) and never reads the App;
these modules do the I/O around it (the ledger's facts, the platform's state, git) for one request.
"""
