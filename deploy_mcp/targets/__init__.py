"""Platform drivers (deploy_mcp.core.platform): local (embedded), fake (in memory, for tests), kubernetes, ecs.

Each driver is imported only when a service uses it, so the server starts without the Kubernetes client or boto3.
A driver module offers ``create_platform(project, service_name) -> Platform``; ``registry.Targets`` picks it from
the service's ``target`` key.
"""
