"""Who gets the requests: the stable Service alone (weights are replica ratios) or a Gateway API HTTPRoute.

Without a router, the stable Service ``<service>-<environment>`` selects the pods of every version (traffic
follows ready pods, as ``kubectl`` users know it) or, when one version takes all traffic, only that version: a
blue-green switch is one selector change. A split such as 90/10 is then made by replica counts, so
``exact_weights`` is False and plans show the split that will really happen.

With ``router = "gateway-api"`` an HTTPRoute attached to the stable Service (a GAMMA mesh route) or to a named
Gateway sends each version's share to that version's own Service by backendRef weight: any 0-100 split, exact.
Either way each version has its own Service, which the Prober reaches through the API server's service proxy
before the version takes traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deploy_mcp.core.platform import RouterCapabilities, proportional
from deploy_mcp.core.target import ErrorCode, TargetError, VersionState, check_weights
from deploy_mcp.targets.kubernetes import manifests, names
from deploy_mcp.targets.kubernetes.api import Kube
from deploy_mcp.targets.kubernetes.pods import pod_state

Obj = dict[str, Any]


class Routing:
    """Both routers share the Services; ``gateway`` says whether an HTTPRoute carries the weights."""

    def __init__(self, kube: Kube, *, gateway: bool) -> None:
        self.kube = kube
        self.gateway = gateway
        self.capabilities = RouterCapabilities(exact_weights=gateway, preview=True)

    @property
    def settings(self) -> Any:
        return self.kube.connection.settings

    # -- the TrafficRouter contract ------------------------------------------------------------------------------

    def set_weights(self, service: str, environment: str, weights: Mapping[str, int]) -> None:
        namespace = self.kube.connection.namespace(service, environment)
        ready = self._ready(namespace, service, environment)
        split = check_weights(weights, ready, f"{service}/{environment}")
        serving = [v for v, w in split.items() if w > 0]
        for version in serving:  # a version the native Deployment runs has no Service of its own yet
            self._version_service(namespace, service, environment, version)
        if self.gateway:
            backends = {names.version_name(service, environment, v): w for v, w in split.items()}
            self._ensure_route(namespace, service, environment, backends, replace=True)
        elif len(serving) == 1:
            self._select(namespace, service, environment, serving[0])
        else:
            self._check_ratio(service, environment, split, ready)
            self._select(namespace, service, environment, None)

    @staticmethod
    def _check_ratio(service: str, environment: str, split: dict[str, int], ready: dict[str, int]) -> None:
        """Without a router a mixed split is the Service selecting every version: the ready-pod ratio, nothing
        else, and only when every version with pods takes part."""
        idle = [v for v, w in split.items() if w == 0 and ready.get(v, 0) > 0]
        possible = proportional({v: n for v, n in ready.items() if n > 0})
        asked = ", ".join(f"{v}={w}%" for v, w in split.items() if w > 0)
        if idle:
            raise TargetError(
                f"{service}/{environment}: without a traffic router the Service can serve one version or all of "
                f"them; {', '.join(idle)} has ready pods but weight 0 in {asked}; stop it first, or configure "
                'targets.kubernetes.router = "gateway-api" for exact weights',
                ErrorCode.INVALID_WEIGHTS,
            )
        if any(abs(split.get(v, 0) - possible.get(v, 0)) > 1 for v in set(split) | set(possible)):
            shown = ", ".join(f"{v}={w}%" for v, w in possible.items())
            raise TargetError(
                f"{service}/{environment}: without a traffic router weights are replica ratios; {asked} was asked "
                f"but the ready pods make {shown}; scale the versions to that ratio, or configure "
                'targets.kubernetes.router = "gateway-api" for exact weights',
                ErrorCode.INVALID_WEIGHTS,
            )

    def verify_weights(self, service: str, environment: str) -> dict[str, int]:
        namespace = self.kube.connection.namespace(service, environment)
        ready = self._ready(namespace, service, environment)
        return self._weights(namespace, service, environment, ready)

    # -- hooks the workload calls --------------------------------------------------------------------------------

    def read_weights(
        self, namespace: str, service: str, environment: str, versions: dict[str, VersionState]
    ) -> dict[str, int]:
        ready = {v: s.ready for v, s in versions.items()}
        return self._weights(namespace, service, environment, ready)

    def prepare(self, namespace: str, service: str, environment: str, version: str) -> None:
        """Before a version's Deployment exists: its preview Service, and the stable Service (and route) if this
        is the environment's first version, which then takes all traffic."""
        owner = names.owner_labels(service, environment)
        preview = self._version_service(namespace, service, environment, version)
        version_selector = {**owner, names.VERSION: names.label_value(version)}
        stable = names.base_name(service, environment)
        current = self.kube.service(namespace, stable)
        if current is None:
            selector = owner if self.gateway else version_selector
            self.kube.create_service(
                namespace, manifests.service_body(stable, owner, selector, self.settings, "stable")
            )
        elif not self.gateway and names.VERSION not in (current["spec"].get("selector") or {}):
            # after a native rollout the Service selects every version: hold it on the one serving now, so the
            # new version takes no traffic until set_weights gives it some
            serving = [v for v, n in self._ready(namespace, service, environment).items() if n > 0 and v != version]
            if len(serving) == 1:
                self._select(namespace, service, environment, serving[0])
        route = self.kube.route(namespace, stable) if self.gateway else None
        if self.gateway and route is None:
            self._ensure_route(namespace, service, environment, {preview: 100}, replace=False)
        elif route is not None and any(r.get("name") == stable for r in self._refs(route)):
            # the route sends everything to the native Deployment: name the serving version's own Service instead
            serving = [v for v, n in self._ready(namespace, service, environment).items() if n > 0 and v != version]
            if len(serving) == 1:
                backend = self._version_service(namespace, service, environment, serving[0])
                self._ensure_route(namespace, service, environment, {backend: 100}, replace=True)

    def _version_service(self, namespace: str, service: str, environment: str, version: str) -> str:
        """The Service that selects one version's pods (its preview and its route backend); created if missing."""
        name = names.version_name(service, environment, version)
        if self.kube.service(namespace, name) is None:
            selector = {**names.owner_labels(service, environment), names.VERSION: names.label_value(version)}
            self.kube.create_service(
                namespace, manifests.service_body(name, selector, selector, self.settings, "preview")
            )
        return name

    def started(self, namespace: str, service: str, environment: str, version: str) -> None:
        """Nothing to do: a new version takes no traffic until set_weights gives it some."""

    def before_stop(self, namespace: str, service: str, environment: str, version: str) -> None:
        ready = self._ready(namespace, service, environment)
        weights = self._weights(namespace, service, environment, ready)
        others = [v for v, n in ready.items() if v != version and n > 0]
        if weights.get(version, 0) > 0 and others and self._pinned_or_routed(namespace, service, environment):
            raise TargetError(
                f"{service}/{environment}: {version} still takes {weights[version]}% of traffic; move its share to "
                f"{', '.join(others)} first",
                ErrorCode.STILL_SERVING,
            )

    def forget(self, namespace: str, service: str, environment: str, version: str) -> None:
        self.kube.delete_service(namespace, names.version_name(service, environment, version))
        if self.gateway:
            route = self.kube.route(namespace, names.base_name(service, environment))
            if route is not None:
                gone = names.version_name(service, environment, version)
                refs = [r for r in self._refs(route) if r.get("name") != gone]
                if len(refs) != len(self._refs(route)):
                    backends = {r["name"]: int(r.get("weight", 1)) for r in refs}
                    self._ensure_route(namespace, service, environment, backends, replace=True)

    def native(self, namespace: str, service: str, environment: str) -> None:
        """The natively rolled Deployment is served through the stable Service, whatever version its pods run."""
        owner = names.owner_labels(service, environment)
        stable = names.base_name(service, environment)
        if self.kube.service(namespace, stable) is None:
            self.kube.create_service(namespace, manifests.service_body(stable, owner, owner, self.settings, "stable"))
        else:
            self._select(namespace, service, environment, None)
        if self.gateway:
            self._ensure_route(namespace, service, environment, {stable: 100}, replace=True)

    # -- reading -------------------------------------------------------------------------------------------------

    def _ready(self, namespace: str, service: str, environment: str) -> dict[str, int]:
        """Ready pods per version, every version that has a pod (ready or not) included."""
        counts: dict[str, int] = {}
        owner = names.selector(names.owner_labels(service, environment))
        for deployment in self.kube.deployments(namespace, owner):  # a version scaled to 0 is still known
            annotations = deployment["metadata"].get("annotations") or {}
            if annotations.get(names.NATIVE_ANNOTATION) != "true" and names.VERSION_ANNOTATION in annotations:
                counts.setdefault(annotations[names.VERSION_ANNOTATION], 0)
        for pod in self.kube.pods(namespace, owner):
            instance = pod_state(pod)
            counts[instance.version] = counts.get(instance.version, 0) + (1 if instance.ready else 0)
        return counts

    @staticmethod
    def _refs(route: Obj) -> list[Obj]:
        rules = route.get("spec", {}).get("rules") or [{}]
        return list(rules[0].get("backendRefs") or [])

    def _pinned_or_routed(self, namespace: str, service: str, environment: str) -> bool:
        if self.gateway:
            return True
        stable = self.kube.service(namespace, names.base_name(service, environment))
        return stable is not None and names.VERSION in (stable["spec"].get("selector") or {})

    def _weights(self, namespace: str, service: str, environment: str, ready: dict[str, int]) -> dict[str, int]:
        stable_name = names.base_name(service, environment)
        if self.gateway:
            route = self.kube.route(namespace, stable_name)
            if route is None:
                return {v: 0 for v in ready}
            by_name = {names.version_name(service, environment, v): v for v in ready}
            shares: dict[str, float] = {v: 0.0 for v in ready}
            total = 0.0
            for ref in self._refs(route):
                weight = float(ref.get("weight", 1))
                total += weight
                if ref.get("name") in by_name:
                    shares[by_name[ref["name"]]] += weight
                elif ref.get("name") == stable_name:  # the native Deployment: split by ready pods
                    pods = sum(ready.values())
                    for version, count in ready.items():
                        shares[version] += weight * count / pods if pods else 0
            if total <= 0:
                return {v: 0 for v in ready}
            return {**dict.fromkeys(ready, 0), **proportional({v: round(s * 1000 / total) for v, s in shares.items()})}
        stable = self.kube.service(namespace, stable_name)
        if stable is None:
            return {v: 0 for v in ready}
        pinned = (stable["spec"].get("selector") or {}).get(names.VERSION)
        if pinned is not None:
            return {v: 100 if names.label_value(v) == pinned and ready.get(v, 0) > 0 else 0 for v in ready}
        return {**dict.fromkeys(ready, 0), **proportional(ready)}

    # -- writing -------------------------------------------------------------------------------------------------

    def _select(self, namespace: str, service: str, environment: str, version: str | None) -> None:
        """Point the stable Service at one version, or at all of them (None)."""
        stable = names.base_name(service, environment)
        selector = dict(names.owner_labels(service, environment))
        if version is not None:
            selector[names.VERSION] = names.label_value(version)
        current = self.kube.service(namespace, stable)
        if current is None:
            owner = names.owner_labels(service, environment)
            self.kube.create_service(
                namespace, manifests.service_body(stable, owner, selector, self.settings, "stable")
            )
            return
        if (current["spec"].get("selector") or {}) != selector:
            # a JSON patch replaces the selector whole; a merge patch would keep a version key we want gone
            self.kube.patch_service(namespace, stable, [{"op": "replace", "path": "/spec/selector", "value": selector}])

    def _ensure_route(
        self, namespace: str, service: str, environment: str, backends: dict[str, int], *, replace: bool
    ) -> None:
        stable = names.base_name(service, environment)
        owner = names.owner_labels(service, environment)
        route = self.kube.route(namespace, stable)
        if route is None:
            self.kube.create_route(namespace, manifests.route_body(stable, owner, self.settings, backends))
        elif replace:
            rules = route.get("spec", {}).get("rules") or [{}]
            rules[0] = {**rules[0], "backendRefs": manifests.backend_refs(backends, self.settings)}
            self.kube.patch_route(namespace, stable, {"spec": {"rules": rules}})
