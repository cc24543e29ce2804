"""DEPLOY.md: the deploy skill's one required deliverable, generated from deploy.toml, the project's files and
the ledger.

The pieces have one job each: ``scan`` reads the project's own files (never the network), ``context`` turns
configuration, files and ledger into what the templates need, ``render`` fills the jinja2 templates and checks
that the rollback procedure is there, ``markers`` carries the sections a person wrote over to the new text, and
``document`` puts them together. The MCP tool and its command line live in ``deploy_mcp.tools.deploy_md``.
"""

from deploy_mcp.deploymd.document import DeployMdError, Document, build_document

__all__ = ["DeployMdError", "Document", "build_document"]
