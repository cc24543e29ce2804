"""How the driver reaches the API server, and the namespace guard every call goes through.

Credentials come from the kubeconfig (``kubeconfig`` / ``$KUBECONFIG`` / ~/.kube/config, with ``context``) or
from the pod's service account (``in_cluster = true``), never from deploy.toml or a tool argument. The namespace
is checked against ``allowed_namespaces`` on every call, not once at start-up, so a deploy.toml edited while the
server runs cannot slip a namespace past the list; a refused call has created nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deploy_mcp.core.target import ErrorCode, TargetError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from deploy_mcp.config.loader import Project
    from deploy_mcp.config.schema import KubernetesTarget


@dataclass
class Connection:
    """One API client for the whole driver (it pools connections) plus the settings it was made from."""

    api: ApiClient
    settings: KubernetesTarget
    project: Project

    @property
    def host(self) -> str:
        return str(self.api.configuration.host).rstrip("/")

    def auth_headers(self) -> dict[str, str]:
        """The headers the client itself sends (bearer token), for probes through the API server's proxy."""
        configuration = self.api.configuration
        headers: dict[str, str] = {}
        token = configuration.get_api_key_with_prefix("authorization") or configuration.get_api_key_with_prefix(
            "BearerToken"
        )
        if token:
            headers["Authorization"] = token
        return headers

    def tls(self) -> dict[str, Any]:
        configuration = self.api.configuration
        options: dict[str, Any] = {"verify": configuration.verify_ssl}
        if configuration.verify_ssl and configuration.ssl_ca_cert:
            options["verify"] = configuration.ssl_ca_cert
        if configuration.cert_file and configuration.key_file:
            options["cert"] = (configuration.cert_file, configuration.key_file)
        return options

    def namespace(self, service: str, environment: str) -> str:
        """The namespace of one environment, refused when it is outside ``allowed_namespaces``."""
        config = self.project.config
        svc = config.services.get(service)
        if svc is None:
            known = ", ".join(config.services) or "none"
            message = f"service: {service!r} is not in deploy.toml; known services: {known}"
            raise TargetError(message, ErrorCode.UNKNOWN_SERVICE)
        env = svc.environments.get(environment)
        if env is None:
            known = ", ".join(svc.environments) or "none"
            raise TargetError(
                f"environment: {environment!r} is not an environment of {service} in deploy.toml (known: {known}); "
                f"add [services.{service}.environments.{environment}]",
                ErrorCode.UNKNOWN_ENVIRONMENT,
            )
        namespace = env.namespace or self.settings.namespace
        allowed = self.settings.allowed_namespaces
        if allowed and namespace not in allowed:
            where = (
                f"services.{service}.environments.{environment}.namespace"
                if env.namespace
                else "targets.kubernetes.namespace"
            )
            raise TargetError(
                f"{where}: namespace {namespace!r} is not in targets.kubernetes.allowed_namespaces "
                f"({', '.join(allowed)}); deploy-mcp refuses to touch it. Use an allowed namespace or add it to "
                "the list",
                ErrorCode.UNAVAILABLE,
            )
        return namespace


def connect(project: Project) -> Connection:
    """Load the client configuration once; a missing or broken kubeconfig is a clear error, not a traceback."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    settings = project.config.targets.kubernetes
    configuration = client.Configuration()
    source = "the pod's service account"
    try:
        if settings.in_cluster:
            config.load_incluster_config(client_configuration=configuration)
        else:
            path = settings.kubeconfig or os.environ.get("KUBECONFIG") or None
            if path and not os.path.isabs(os.path.expanduser(path)) and settings.kubeconfig:
                path = str(project.root / path)
            source = f"the kubeconfig {path}" if path else "the kubeconfig ~/.kube/config"
            if path and not os.path.exists(os.path.expanduser(path)):
                raise ConfigException("the file does not exist")
            config.load_kube_config(
                config_file=os.path.expanduser(path) if path else None,
                context=settings.context,
                client_configuration=configuration,
            )
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        raise TargetError(
            f"targets.kubernetes: could not load {source}: {exc}; set targets.kubernetes.kubeconfig (or "
            "$KUBECONFIG) and context, or in_cluster = true inside a cluster",
            ErrorCode.UNAVAILABLE,
        ) from None
    return Connection(client.ApiClient(configuration), settings, project)


def error_message(exc: Exception) -> str:
    """The API server's own message from an ApiException (its Status body), else the exception text."""
    body = getattr(exc, "body", None)
    if body:
        try:
            return str(json.loads(body).get("message") or body)
        except (ValueError, AttributeError):
            return str(body)[:500]
    reason = getattr(exc, "reason", None)
    return str(reason or exc)
