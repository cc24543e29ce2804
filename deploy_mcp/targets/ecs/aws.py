"""The AWS clients of one ECS platform, and AWS errors turned into messages a user can act on.

Credentials come only from boto3's standard chain (environment, shared config and profile, container or instance
role): deploy.toml names a profile at most, a tool argument never carries one, and no message built here quotes a
key. ``endpoint_url`` (or AWS_ENDPOINT_URL, which boto3 reads itself) points every client at another endpoint, an
emulator in tests.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from deploy_mcp.core.target import ErrorCode, TargetError

if TYPE_CHECKING:
    from deploy_mcp.config.schema import EcsTarget

RETRIES = {"max_attempts": 4, "mode": "standard"}


class Aws:
    """boto3 clients for ECS, ELBv2, CloudWatch and SSM, made on first use and shared by the platform's parts."""

    def __init__(self, config: EcsTarget) -> None:
        self.config = config
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._session: Any = None

    def client(self, name: str) -> Any:
        with self._lock:
            if name not in self._clients:
                import boto3
                from botocore.config import Config

                if self._session is None:
                    self._session = boto3.session.Session(
                        profile_name=self.config.profile, region_name=self.config.region
                    )
                extra: dict[str, Any] = {}
                if self.config.endpoint_url:
                    extra["endpoint_url"] = self.config.endpoint_url
                self._clients[name] = self._session.client(
                    name, config=Config(retries=RETRIES, connect_timeout=5, read_timeout=30), **extra
                )
            return self._clients[name]

    @property
    def ecs(self) -> Any:
        return self.client("ecs")

    @property
    def elbv2(self) -> Any:
        return self.client("elbv2")

    @property
    def cloudwatch(self) -> Any:
        return self.client("cloudwatch")

    @property
    def ssm(self) -> Any:
        return self.client("ssm")

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                with contextlib.suppress(Exception):
                    client.close()
            self._clients.clear()


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ("ServiceNotFoundException"...), else ""."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


@contextlib.contextmanager
def calling(what: str) -> Iterator[None]:
    """Turn botocore's errors into TargetErrors that say what was being done and what to check.

    Only the error code and AWS's own message are quoted: neither carries a credential.
    """
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    try:
        yield
    except TargetError:
        raise
    except NoCredentialsError:
        raise TargetError(
            f"{what}: no AWS credentials were found; provide them the standard way (AWS_PROFILE or "
            "[targets.ecs] profile, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance or task role)",
            ErrorCode.UNAVAILABLE,
        ) from None
    except NoRegionError:
        raise TargetError(
            f'{what}: no AWS region is set; add region = "eu-west-1" (yours) to [targets.ecs] or set AWS_REGION',
            ErrorCode.UNAVAILABLE,
        ) from None
    except ClientError as exc:
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "") if hasattr(exc, "response") else ""
        hint = ""
        if code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}:
            hint = "; the server's IAM policy lacks this permission (see the minimal policy in the ECS guide)"
        elif code in {"ClusterNotFoundException"}:
            hint = "; check [targets.ecs] cluster (or the environment's cluster)"
        raise TargetError(f"{what}: AWS answered {code}: {message}{hint}", ErrorCode.UNAVAILABLE) from None
    except BotoCoreError as exc:
        raise TargetError(f"{what}: AWS could not be reached: {exc}", ErrorCode.UNAVAILABLE) from None
