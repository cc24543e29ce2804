"""The emulator's etcd: typed objects with the metadata the API server maintains, and an event log for watches.

Every write bumps one global resourceVersion, as the real server does, so a watch can resume from a version and
``kubectl rollout status`` sees each change in order. Objects are plain JSON dictionaries: the REST layer hands
them out as they are, which keeps the emulator honest about field names (the official client parses them).
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]

EVENT_LOG = 4096


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Kind:
    """One resource type as discovery describes it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


KINDS: tuple[Kind, ...] = (
    Kind("", "v1", "Namespace", "namespaces", namespaced=False, short_names=("ns",)),
    Kind("", "v1", "Pod", "pods", short_names=("po",), subresources=("status", "log", "proxy")),
    Kind("", "v1", "Service", "services", short_names=("svc",), subresources=("status", "proxy")),
    Kind("", "v1", "Endpoints", "endpoints", short_names=("ep",)),
    Kind("", "v1", "ConfigMap", "configmaps", short_names=("cm",)),
    Kind("", "v1", "Event", "events", short_names=("ev",)),
    Kind("apps", "v1", "Deployment", "deployments", short_names=("deploy",), subresources=("status", "scale")),
    Kind("apps", "v1", "ReplicaSet", "replicasets", short_names=("rs",), subresources=("status", "scale")),
    Kind("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes", subresources=("status",)),
)
BY_PLURAL: dict[tuple[str, str], Kind] = {(k.group, k.plural): k for k in KINDS}


class Conflict(Exception):
    """409: the object exists, or a resourceVersion precondition failed."""


class NotFound(Exception):
    """404."""


@dataclass
class Event:
    revision: int
    kind: Kind
    type: str  # ADDED | MODIFIED | DELETED
    obj: Obj


class Store:
    """Objects by (kind, namespace, name) under one lock; every change is an event."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.revision = 1
        self.objects: dict[Kind, dict[tuple[str, str], Obj]] = {kind: {} for kind in KINDS}
        self.events: deque[Event] = deque(maxlen=EVENT_LOG)
        self.listeners: list[Callable[[Event], None]] = []

    def kind(self, name: str) -> Kind:
        return next(k for k in KINDS if k.kind == name)

    def _bump(self, kind: Kind, type_: str, obj: Obj) -> None:
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        event = Event(self.revision, kind, type_, copy.deepcopy(obj))
        self.events.append(event)
        for listener in self.listeners:
            listener(event)
        self.changed.notify_all()

    def get(self, kind: Kind, namespace: str, name: str) -> Obj:
        with self.lock:
            obj = self.objects[kind].get((namespace, name))
            if obj is None:
                raise NotFound(f'{kind.plural}{"." + kind.group if kind.group else ""} "{name}" not found')
            return copy.deepcopy(obj)

    def find(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        with self.lock:
            obj = self.objects[kind].get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(
        self, kind: Kind, namespace: str | None = None, selector: Callable[[Obj], bool] | None = None
    ) -> list[Obj]:
        with self.lock:
            items = [
                copy.deepcopy(obj)
                for (ns, _), obj in sorted(self.objects[kind].items())
                if (namespace is None or ns == namespace) and (selector is None or selector(obj))
            ]
            return items

    def create(self, kind: Kind, namespace: str, obj: Obj) -> Obj:
        with self.lock:
            meta = obj.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            name = meta.get("name")
            if not name:
                raise ValueError("metadata.name: Required value")
            if kind.namespaced:
                meta["namespace"] = namespace
            key = (namespace if kind.namespaced else "", name)
            if key in self.objects[kind]:
                raise Conflict(f'{kind.plural} "{name}" already exists')
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_iso()
            meta.setdefault("labels", {})
            meta.setdefault("annotations", {})
            meta["generation"] = 1
            obj["apiVersion"] = kind.api_version
            obj["kind"] = kind.kind
            self.objects[kind][key] = obj
            self._bump(kind, "ADDED", obj)
            return copy.deepcopy(obj)

    def replace(self, kind: Kind, namespace: str, obj: Obj, *, status_only: bool = False, check: bool = True) -> Obj:
        """PUT: spec changes bump metadata.generation; a stale resourceVersion is a conflict."""
        with self.lock:
            meta = obj["metadata"]
            key = (namespace if kind.namespaced else "", meta["name"])
            old = self.objects[kind].get(key)
            if old is None:
                raise NotFound(f'{kind.plural} "{meta["name"]}" not found')
            sent_version = meta.get("resourceVersion")
            if check and sent_version and sent_version != old["metadata"]["resourceVersion"]:
                raise Conflict(
                    f'Operation cannot be fulfilled on {kind.plural} "{meta["name"]}": the object has been '
                    "modified; please apply your changes to the latest version and try again"
                )
            if status_only:
                new = copy.deepcopy(old)
                new["status"] = copy.deepcopy(obj.get("status", {}))
            else:
                new = copy.deepcopy(obj)
                new["status"] = copy.deepcopy(old.get("status", {}))
                for field in ("uid", "creationTimestamp", "generation", "namespace", "deletionTimestamp"):
                    if field in old["metadata"]:
                        new["metadata"][field] = old["metadata"][field]
                if new.get("spec") != old.get("spec"):
                    new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
                for body_field in ("data", "binaryData"):  # ConfigMaps have no spec
                    if body_field in obj:
                        new[body_field] = obj[body_field]
            new["apiVersion"] = kind.api_version
            new["kind"] = kind.kind
            new["metadata"].setdefault("labels", {})
            new["metadata"].setdefault("annotations", {})
            if new == old:
                return copy.deepcopy(old)
            self.objects[kind][key] = new
            self._bump(kind, "MODIFIED", new)
            return copy.deepcopy(new)

    def update(
        self, kind: Kind, namespace: str, name: str, change: Callable[[Obj], None], *, status: bool = False
    ) -> Obj:
        """Read, change in place, write back: the controllers' way to write without conflicts."""
        with self.lock:
            current = self.get(kind, namespace, name)
            change(current)
            return self.replace(kind, namespace, current, status_only=status, check=False)

    def delete(self, kind: Kind, namespace: str, name: str) -> Obj:
        with self.lock:
            key = (namespace if kind.namespaced else "", name)
            obj = self.objects[kind].pop(key, None)
            if obj is None:
                raise NotFound(f'{kind.plural} "{name}" not found')
            self._bump(kind, "DELETED", obj)
            return copy.deepcopy(obj)

    def events_since(self, revision: int) -> Iterator[Event]:
        with self.lock:
            for event in list(self.events):
                if event.revision > revision:
                    yield event


def match_labels(labels: dict[str, str], selector: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def parse_label_selector(text: str) -> Callable[[dict[str, str]], bool]:
    """The label selector syntax of list calls: ``a=b,c!=d,e in (x,y),f notin (z),g,!h``."""
    clauses: list[Callable[[dict[str, str]], bool]] = []
    parts: list[str] = []
    depth, current = 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current:
        parts.append(current)
    for raw in parts:
        part = raw.strip()
        if part:
            clauses.append(_label_clause(part))
    return lambda labels: all(clause(labels) for clause in clauses)


def _label_clause(part: str) -> Callable[[dict[str, str]], bool]:
    for operator in (" notin ", " in "):
        if operator in part:
            key, values = (p.strip() for p in part.split(operator, 1))
            allowed = {v.strip() for v in values.strip("()").split(",")}
            negate = operator == " notin "
            return lambda labels: (labels.get(key) in allowed) != negate
    if "!=" in part:
        key, value = (p.strip() for p in part.split("!=", 1))
        return lambda labels: labels.get(key) != value
    if "=" in part:
        key, value = (p.strip() for p in part.replace("==", "=").split("=", 1))
        return lambda labels: labels.get(key) == value
    if part.startswith("!"):
        absent = part[1:].strip()
        return lambda labels: absent not in labels
    return lambda labels: part in labels


def parse_field_selector(text: str) -> Callable[[Obj], bool]:
    """Only what clients use here: metadata.name and metadata.namespace equality."""
    clauses: list[Callable[[Obj], bool]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        negate = "!=" in part
        key, value = part.split("!=" if negate else ("==" if "==" in part else "="), 1)
        path = key.strip().split(".")

        def clause(obj: Obj, path: list[str] = path, value: str = value.strip(), negate: bool = negate) -> bool:
            node: Any = obj
            for step in path:
                node = node.get(step) if isinstance(node, dict) else None
            return (str(node) == value) != negate

        clauses.append(clause)
    return lambda obj: all(clause(obj) for clause in clauses)
