"""The REST face of the emulator: discovery, CRUD, patch, watch, Tables and the services proxy over plain HTTP.

URL layout, status codes and Status bodies follow the real API server closely enough for the official Python
client and kubectl (get, describe, rollout status/history/undo, set image, scale) to work unchanged.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from kube_emulator import defaults, tables
from kube_emulator.patches import apply_patch
from kube_emulator.store import (
    BY_PLURAL,
    KINDS,
    Conflict,
    Kind,
    NotFound,
    Obj,
    parse_field_selector,
    parse_label_selector,
)

if TYPE_CHECKING:
    from kube_emulator.cluster import Cluster

log = logging.getLogger(__name__)

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def status_body(code: int, reason: str, message: str, details: Obj | None = None) -> Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


def resource_list(group_version: str) -> Obj:
    resources: list[Obj] = []
    for kind in KINDS:
        if kind.api_version != group_version:
            continue
        resources.append(
            {
                "name": kind.plural,
                "singularName": kind.kind.lower(),
                "namespaced": kind.namespaced,
                "kind": kind.kind,
                "verbs": VERBS,
                "shortNames": list(kind.short_names),
                **({"categories": ["all"]} if kind.kind in {"Pod", "Service", "Deployment", "ReplicaSet"} else {}),
            }
        )
        for sub in kind.subresources:
            resources.append(
                {
                    "name": f"{kind.plural}/{sub}",
                    "singularName": "",
                    "namespaced": kind.namespaced,
                    "kind": "Scale" if sub == "scale" else kind.kind,
                    "verbs": ["get", "patch", "update"] if sub in {"status", "scale"} else ["get", "create"],
                    **({"group": "autoscaling", "version": "v1"} if sub == "scale" else {}),
                }
            )
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def group_list() -> Obj:
    groups: dict[str, list[str]] = {}
    for kind in KINDS:
        if kind.group:
            groups.setdefault(kind.group, [])
            if kind.version not in groups[kind.group]:
                groups[kind.group].append(kind.version)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": name,
                "versions": [{"groupVersion": f"{name}/{v}", "version": v} for v in versions],
                "preferredVersion": {"groupVersion": f"{name}/{versions[0]}", "version": versions[0]},
            }
            for name, versions in groups.items()
        ],
    }


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, cluster: Cluster, port: int = 0) -> None:
        self.cluster = cluster
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", port), Handler)


class Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("api: " + format, *args)

    # -- plumbing ------------------------------------------------------------------------------------------------

    def _send(self, code: int, body: Obj | bytes, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Audit-Id", "emulator")
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        raw = self._raw
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            import yaml

            return yaml.safe_load(raw)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        # read every body, used or not (DeleteOptions on DELETE): left unread it would be taken for the next request
        length = int(self.headers.get("Content-Length") or 0)
        self._raw = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [unquote(p) for p in url.path.strip("/").split("/") if p]
        try:
            self._route(method, parts, query, url)
        except ApiError as exc:
            self._send(exc.code, status_body(exc.code, exc.reason, exc.message))
        except NotFound as exc:
            self._send(404, status_body(404, "NotFound", str(exc)))
        except Conflict as exc:
            reason = "AlreadyExists" if "already exists" in str(exc) else "Conflict"
            self._send(409, status_body(409, reason, str(exc)))
        except (ValueError, KeyError, TypeError) as exc:
            self._send(422, status_body(422, "Invalid", f"invalid request: {exc}"))
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- routing -------------------------------------------------------------------------------------------------

    def _route(self, method: str, parts: list[str], query: dict[str, str], url: Any) -> None:
        if parts in ([], ["healthz"], ["livez"], ["readyz"]):
            self._send(200, b"ok", "text/plain")
            return
        if parts == ["metrics"]:
            self._send(200, self.server.cluster.metrics(), "text/plain; version=0.0.4; charset=utf-8")
            return
        if parts == ["version"]:
            self._send(200, SERVER_VERSION)
            return
        if parts == ["api"]:
            self._send(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
                },
            )
            return
        if parts == ["apis"]:
            self._send(200, group_list())
            return
        if parts == ["api", "v1"]:
            self._send(200, resource_list("v1"))
            return
        if len(parts) == 3 and parts[0] == "apis":
            group_version = f"{parts[1]}/{parts[2]}"
            if not any(k.api_version == group_version for k in KINDS):
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            self._send(200, resource_list(group_version))
            return
        if len(parts) == 2 and parts[0] == "apis":
            group = parts[1]
            listed = group_list()["groups"]
            found = next((g for g in listed if g["name"] == group), None)
            if found is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            self._send(200, {"kind": "APIGroup", "apiVersion": "v1", **found})
            return
        if parts[0] == "api" and len(parts) >= 3 and parts[1] == "v1":
            group, rest = "", parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, rest = parts[1], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        elif rest[0] == "namespaces" and len(rest) == 2 and group == "":
            rest = ["namespaces", rest[1]]
        kind = BY_PLURAL.get((group, rest[0]))
        if kind is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if kind.kind in ("Service", "Pod") and sub == "proxy":
            self._proxy(method, kind.kind, namespace or "default", name or "", "/" + "/".join(rest[3:]), url)
            return
        if kind.namespaced and namespace is not None and kind.kind != "Namespace":
            store = self.server.cluster.store
            if store.find(store.kind("Namespace"), "", namespace) is None and method == "POST":
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found')
        ns = (namespace or "") if kind.namespaced else ""
        if name is None:
            self._collection(method, kind, namespace if kind.namespaced else None, query)
        elif sub is None:
            self._item(method, kind, ns, name, query)
        elif sub == "status":
            self._status(method, kind, ns, name)
        elif sub == "scale":
            self._scale(method, kind, ns, name)
        elif sub == "log" and kind.kind == "Pod":
            self._send(200, self.server.cluster.pod_log(ns, name).encode(), "text/plain")
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

    # -- collections and items -----------------------------------------------------------------------------------

    def _selected(self, kind: Kind, namespace: str | None, query: dict[str, str]) -> list[Obj]:
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""))
        return self.server.cluster.store.list(
            kind, namespace, lambda o: labels(o["metadata"].get("labels") or {}) and fields(o)
        )

    def _collection(self, method: str, kind: Kind, namespace: str | None, query: dict[str, str]) -> None:
        store = self.server.cluster.store
        if method == "GET":
            if query.get("watch") in ("1", "t", "T", "true", "TRUE", "True"):  # Go strconv.ParseBool, as the API server
                self._watch(kind, namespace, query)
                return
            with store.lock:
                items = self._selected(kind, namespace, query)
                revision = str(store.revision)
            if "as=Table" in (self.headers.get("Accept") or ""):
                self._send(200, tables.table(kind.kind, items, revision))
                return
            self._send(
                200,
                {
                    "kind": f"{kind.kind}List",
                    "apiVersion": kind.api_version,
                    "metadata": {"resourceVersion": revision},
                    "items": items,
                },
            )
        elif method == "POST":
            body = self._body()
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body must be a JSON object")
            if body.get("kind") and body["kind"] != kind.kind:
                raise ApiError(400, "BadRequest", f"the kind {body['kind']} does not match the URL ({kind.plural})")
            defaults.apply(kind.kind, body)
            self.server.cluster.validate(kind, body)
            if query.get("dryRun") == "All":
                self._send(201, body)
                return
            created = store.create(kind, namespace or "", body)
            self._send(201, created)
        elif method == "DELETE":
            for item in self._selected(kind, namespace, query):
                self.server.cluster.delete(kind, item["metadata"].get("namespace", ""), item["metadata"]["name"])
            self._send(200, {"kind": f"{kind.kind}List", "apiVersion": kind.api_version, "items": []})
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")

    def _item(self, method: str, kind: Kind, namespace: str, name: str, query: dict[str, str]) -> None:
        store = self.server.cluster.store
        if method == "GET":
            obj = store.get(kind, namespace, name)
            if "as=Table" in (self.headers.get("Accept") or ""):
                self._send(200, tables.table(kind.kind, [obj], obj["metadata"]["resourceVersion"]))
                return
            self._send(200, obj)
        elif method == "PUT":
            body = self._body()
            old = store.get(kind, namespace, name)
            defaults.apply(kind.kind, body, old)
            self.server.cluster.validate(kind, body)
            self._send(200, store.replace(kind, namespace, body))
        elif method == "PATCH":
            with store.lock:
                old = store.get(kind, namespace, name)
                patched = apply_patch(self.headers.get("Content-Type", ""), old, self._body())
                patched["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
                defaults.apply(kind.kind, patched, old)
                self.server.cluster.validate(kind, patched)
                if query.get("dryRun") == "All":
                    self._send(200, patched)
                    return
                result = store.replace(kind, namespace, patched)
            self._send(200, result)
        elif method == "DELETE":
            obj = self.server.cluster.delete(kind, namespace, name)
            self._send(200, obj)
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed")

    def _status(self, method: str, kind: Kind, namespace: str, name: str) -> None:
        store = self.server.cluster.store
        if method == "GET":
            self._send(200, store.get(kind, namespace, name))
            return
        body = self._body()
        if method == "PATCH":
            old = store.get(kind, namespace, name)
            body = apply_patch(self.headers.get("Content-Type", ""), old, body)
        self._send(200, store.replace(kind, namespace, body, status_only=True, check=method == "PUT"))

    def _scale(self, method: str, kind: Kind, namespace: str, name: str) -> None:
        store = self.server.cluster.store
        obj = store.get(kind, namespace, name)

        def scale_of(item: Obj) -> Obj:
            selector = item["spec"].get("selector", {}).get("matchLabels", {})
            return {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "uid": item["metadata"]["uid"],
                    "resourceVersion": item["metadata"]["resourceVersion"],
                    "creationTimestamp": item["metadata"]["creationTimestamp"],
                },
                "spec": {"replicas": item["spec"].get("replicas", 0)},
                "status": {
                    "replicas": item.get("status", {}).get("replicas", 0),
                    "selector": ",".join(f"{k}={v}" for k, v in selector.items()),
                },
            }

        if method == "GET":
            self._send(200, scale_of(obj))
            return
        body = self._body()
        if method == "PATCH":
            body = apply_patch(self.headers.get("Content-Type", ""), scale_of(obj), body)
        replicas = int(body["spec"]["replicas"])

        def change(item: Obj) -> None:
            item["spec"]["replicas"] = replicas

        self._send(200, scale_of(store.update(kind, namespace, name, change)))

    # -- watch ---------------------------------------------------------------------------------------------------

    def _watch(self, kind: Kind, namespace: str | None, query: dict[str, str]) -> None:
        store = self.server.cluster.store
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""))
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout

        def wanted(obj: Obj) -> bool:
            meta = obj["metadata"]
            in_namespace = namespace is None or meta.get("namespace", "") == namespace
            return in_namespace and labels(meta.get("labels") or {}) and fields(obj)

        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def emit(type_: str, obj: Obj) -> None:
            line = json.dumps({"type": type_, "object": obj}).encode() + b"\n"
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()

        with store.lock:
            since_text = query.get("resourceVersion") or ""
            if since_text in ("", "0"):
                initial = [o for o in store.list(kind, namespace) if wanted(o)]
                since = store.revision
            else:
                initial, since = [], int(since_text)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for obj in initial:
                emit("ADDED", obj)
            while time.monotonic() < deadline and not self.server.stopping.is_set():
                with store.lock:
                    pending = [e for e in store.events_since(since) if e.kind == kind]
                    if not pending:
                        store.changed.wait(timeout=0.5)
                        pending = [e for e in store.events_since(since) if e.kind == kind]
                    since = store.revision
                for event in pending:
                    if wanted(event.obj):
                        emit(event.type, event.obj)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        self.close_connection = True

    # -- services proxy ------------------------------------------------------------------------------------------

    def _proxy(self, method: str, kind: str, namespace: str, name: str, path: str, url: Any) -> None:
        """services/NAME[:PORT]/proxy reaches the Service's router; pods/NAME[:PORT]/proxy the pod's process."""
        bare = name.split(":", 1)[0]
        cluster = self.server.cluster
        port = cluster.service_port(namespace, bare) if kind == "Service" else cluster.pod_port(namespace, bare)
        if port is None:
            what = (
                f'no endpoints available for service "{bare}"' if kind == "Service" else f'pod "{bare}" is not running'
            )
            raise ApiError(503, "ServiceUnavailable", what)
        body = self._raw or None
        target = path + (f"?{url.query}" if url.query else "")
        skip = {"host", "authorization", "connection", "content-length", "transfer-encoding"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request(method, target, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
        except OSError as exc:
            raise ApiError(503, "ServiceUnavailable", f"error trying to reach service: {exc}") from None
        finally:
            connection.close()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in {"connection", "content-length", "transfer-encoding", "keep-alive"}:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
