"""The commented deploy.toml that `deploy-mcp init` writes: valid as written, explained line by line."""

from __future__ import annotations

STARTER = """\
# deploy.toml: how {project} is shipped. Read by deploy-mcp (the MCP server and the CLI).
# Every key is checked: a misspelt key is an error, not silently ignored.

# greenfield | brownfield-polish | brownfield-enterprise
#   greenfield: free choice of strategy, full DEPLOY.md and monitoring.
#   brownfield-polish: match the existing process, new features behind flags.
#   brownfield-enterprise: change approval, deploy windows and rollback tested in staging before production.
mode = "greenfield"

# Metric limits used to judge every step. warn pauses the rollout for a decision; critical rolls back.
[thresholds]
error_rate = {{ warn = 0.01, critical = 0.05 }}      # fractions: 0.01 is 1%
latency_p95_ms = {{ warn = 500, critical = 2000 }}

[policy]
read_only = false                                   # true: plans and history only, nothing changes
# allowed_environments = ["staging"]                # this project's agents may only touch these
production_environments = ["production"]
allow_recreate_in_production = false                # recreate means downtime

[services.{service}]
target = "local"                                    # local | kubernetes | ecs
# The local platform starts each instance with this command: {{port}} is a free port it picks per instance,
# {{python}} the interpreter running deploy-mcp (so this works where only python3 is installed).
command = ["{{python}}", "-m", "http.server", "{{port}}", "--bind", "127.0.0.1"]
# Instances get PATH, HOME, LANG, TZ and what deploy.toml sets, nothing else of deploy-mcp's environment
# (no DEPLOY_MCP_TOKEN, no cloud keys); name what the service really needs:
# inherit_env = ["DATABASE_URL"]
replicas = 2
health = "/"                                        # must answer 2xx when the instance is ready
smoke = ["/"]                                       # "!/path" means the path must answer 404

# Per-release overrides, e.g. an environment variable only version 2.0.0 needs:
# [services.{service}.versions."2.0.0"]
# env = {{ FEATURE_X = "on" }}

[services.{service}.environments.staging]
strategy = "rolling"                                # rolling | blue-green | canary | recreate | feature-flag
port = 8081                                         # local target: where this environment's router listens

[services.{service}.environments.production]
strategy = "canary"
steps = [5, 25, 50, 100]                            # percent of traffic at each step
port = 8080
requires = ["staging"]                              # the same version must have succeeded in staging first
analysis = {{ interval = "10s", bake = "1m", min_requests = 100 }}
"""


def starter_config(project: str, service: str = "web") -> str:
    return STARTER.format(project=project, service=service)
