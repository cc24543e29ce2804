"""Platform drivers behind the Target Protocol (deploy_mcp.core.target): local (embedded), kubernetes, ecs.

Each driver is imported only when a service uses it, so the server starts without the Kubernetes client or boto3.
"""
