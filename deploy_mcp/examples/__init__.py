"""The example project deploy-mcp ships: `hello`, a small service to deploy, and the deploy.toml describing it.

It lives inside the package so that `deploy-mcp demo` works from an installed wheel (the demo copies this folder
into a temporary project). A clone of the repository also sees it as `examples/` (a link to this folder), so
`python -m examples.hello` and the paths in the docs work from the repository root.
"""
