"""What the project's own files say about how it is built and shipped: read from disk, never from the network.

DEPLOY.md must name the real artifact, the real manifests and the real migration tool, not a generic example, so
this module looks where projects conventionally keep them: a Dockerfile, a compose file, Kubernetes manifests,
the version in pyproject.toml / package.json / Cargo.toml, a migrations folder, CI workflows and a docs site.

The reading is deliberately shallow: a few known places, a bounded depth, line-based parsing of YAML (no YAML
library is a dependency, and a manifest's kind, name and namespace sit at fixed indentation). Every list is
sorted, so the same files always give the same result: DEPLOY.md must be byte-identical when nothing changed.
Paths are kept relative to the project root, so no machine's absolute path ever lands in the document.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from deploy_mcp.core.regular_files import read_regular_text
from deploy_mcp.errors import UserError

SKIPPED_DIRS = frozenset(
    {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "env", "__pycache__", ".deploy", ".tox", ".nox",
     "dist", "build", "target", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".vitepress", "site-packages"}
)  # fmt: skip
MANIFEST_DIRS = ("k8s", "kubernetes", "kube", "manifests", "deploy", "deployment", "deployments", ".k8s")
MIGRATION_DIRS = (
    "migrations",
    "db/migrations",
    "database/migrations",
    "db/migrate",
    "sql/migrations",
    "alembic/versions",
    "prisma/migrations",
    "src/main/resources/db/migration",
)
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
MAX_DEPTH = 3
MAX_FILE_BYTES = 512 * 1024


@dataclass(frozen=True)
class VersionSource:
    file: str
    version: str


@dataclass(frozen=True)
class Dockerfile:
    path: str
    base_images: tuple[str, ...]
    exposed_ports: tuple[str, ...]
    healthcheck: str | None


@dataclass(frozen=True)
class ComposeFile:
    path: str
    services: tuple[str, ...]


@dataclass(frozen=True)
class ManifestObject:
    path: str
    kind: str
    name: str
    namespace: str | None


@dataclass(frozen=True)
class Migrations:
    """A migrations folder and the tool that runs it; commands are given only for a tool recognised for sure."""

    path: str
    tool: str  # alembic, django, prisma, flyway, sql
    files: tuple[str, ...]
    apply: str | None
    status: str | None
    revert: str | None
    lint: str | None
    has_down: bool = False


@dataclass(frozen=True)
class CiWorkflow:
    path: str
    name: str


@dataclass(frozen=True)
class DocsSite:
    """A static documentation site: how to build it and which folder is the whole site."""

    framework: str
    config: str
    install: str
    build: str
    preview: str | None
    output: str
    base_env: str | None = None


@dataclass(frozen=True)
class Package:
    """An artifact built from the project's own package manifest."""

    kind: str  # python, node, rust
    file: str
    build: str
    output: str


@dataclass(frozen=True)
class ProjectFiles:
    versions: tuple[VersionSource, ...] = ()
    packages: tuple[Package, ...] = ()
    dockerfiles: tuple[Dockerfile, ...] = ()
    compose: ComposeFile | None = None
    manifests: tuple[ManifestObject, ...] = ()
    migrations: Migrations | None = None
    ci: tuple[CiWorkflow, ...] = ()
    docs_site: DocsSite | None = None
    problems: tuple[str, ...] = field(default=())

    @property
    def version(self) -> VersionSource | None:
        return self.versions[0] if self.versions else None


def scan_project(root: Path, migration_folders: tuple[str, ...] = ()) -> ProjectFiles:
    """Everything this module knows how to read under ``root``; unreadable files become ``problems``, not errors.

    ``migration_folders`` are folders deploy.toml names for migrations; they are looked at before the usual places.
    """
    problems: list[str] = []
    versions, packages = _versions_and_packages(root, problems)
    return ProjectFiles(
        versions=versions,
        packages=packages,
        dockerfiles=_dockerfiles(root),
        compose=_compose(root),
        manifests=_manifests(root),
        migrations=_migrations(root, migration_folders),
        ci=_ci(root),
        docs_site=_docs_site(root, problems),
        problems=tuple(problems),
    )


# -- helpers ----------------------------------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:  # a FIFO named Dockerfile must not hang the generator: regular files only, opened without blocking
        return read_regular_text(path, MAX_FILE_BYTES, errors="replace")
    except (OSError, UserError):
        return None


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _walk(folder: Path, depth: int = MAX_DEPTH) -> list[Path]:
    """Files under ``folder`` down to ``depth`` levels, skipping caches and dependencies, in sorted order."""
    found: list[Path] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return found
    for entry in entries:
        if entry.is_symlink():
            continue  # a link may point outside the project; DEPLOY.md documents this project only
        if entry.is_dir():
            if depth > 1 and entry.name not in SKIPPED_DIRS:
                found.extend(_walk(entry, depth - 1))
        elif entry.is_file():
            found.append(entry)
    return found


def _unquote(value: str) -> str:
    value = value.split(" #", 1)[0].strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


# -- versions and packages --------------------------------------------------------------------------------------


def _versions_and_packages(root: Path, problems: list[str]) -> tuple[tuple[VersionSource, ...], tuple[Package, ...]]:
    versions: list[VersionSource] = []
    packages: list[Package] = []

    pyproject = _read(root / "pyproject.toml")
    if pyproject is not None:
        try:
            data = tomllib.loads(pyproject)
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"pyproject.toml is not valid TOML ({exc}); its version is not shown")
            data = {}
        project = data.get("project", {})
        poetry = data.get("tool", {}).get("poetry", {})
        version = project.get("version") or poetry.get("version")
        if isinstance(version, str):
            versions.append(VersionSource("pyproject.toml", version))
        elif "version" in project.get("dynamic", []):
            versions.append(VersionSource("pyproject.toml", "dynamic (set by the build backend)"))
        if "build-system" in data or project or poetry:
            packages.append(Package("python", "pyproject.toml", "python -m build", "dist/"))

    package_json = _read(root / "package.json")
    if package_json is not None:
        try:
            data = json.loads(package_json)
        except ValueError as exc:
            problems.append(f"package.json is not valid JSON ({exc}); its version is not shown")
            data = {}
        if isinstance(data, dict):
            if isinstance(data.get("version"), str):
                versions.append(VersionSource("package.json", data["version"]))
            scripts = data["scripts"] if isinstance(data.get("scripts"), dict) else {}
            if "build" in scripts:
                packages.append(Package("node", "package.json", f"{_node_runner(root)} run build", ""))

    cargo = _read(root / "Cargo.toml")
    if cargo is not None:
        try:
            data = tomllib.loads(cargo)
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"Cargo.toml is not valid TOML ({exc}); its version is not shown")
            data = {}
        version = data.get("package", {}).get("version")
        if isinstance(version, str):
            versions.append(VersionSource("Cargo.toml", version))
        if "package" in data:
            packages.append(Package("rust", "Cargo.toml", "cargo build --release --locked", "target/release/"))
    return tuple(versions), tuple(packages)


def _node_runner(root: Path) -> str:
    if (root / "pnpm-lock.yaml").is_file():
        return "pnpm"
    if (root / "yarn.lock").is_file():
        return "yarn"
    return "npm"


def _node_install(root: Path) -> str:
    if (root / "pnpm-lock.yaml").is_file():
        return "pnpm install --frozen-lockfile"
    if (root / "yarn.lock").is_file():
        return "yarn install --frozen-lockfile"
    if (root / "package-lock.json").is_file():
        return "npm ci"
    return "npm install"


# -- containers -------------------------------------------------------------------------------------------------


def _dockerfiles(root: Path) -> tuple[Dockerfile, ...]:
    found = []
    for path in _walk(root, depth=2):
        name = path.name
        if name == "Dockerfile" or name.startswith("Dockerfile.") or name.endswith(".Dockerfile"):
            text = _read(path)
            if text is not None:
                found.append(_parse_dockerfile(_rel(root, path), text))
    return tuple(found)


def _parse_dockerfile(path: str, text: str) -> Dockerfile:
    bases: list[str] = []
    ports: list[str] = []
    healthcheck: str | None = None
    for line in _logical_lines(text):
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            if words:
                bases.append(words[0])
        elif instruction == "EXPOSE":
            ports.extend(rest.split())
        elif instruction == "HEALTHCHECK":
            healthcheck = rest.strip()
    return Dockerfile(path, tuple(bases), tuple(ports), healthcheck)


def _logical_lines(text: str) -> list[str]:
    """Dockerfile lines with continuations joined and comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append((current + stripped).strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def _compose(root: Path) -> ComposeFile | None:
    for name in COMPOSE_FILES:
        text = _read(root / name)
        if text is not None:
            return ComposeFile(name, tuple(sorted(_children(text, "services"))))
    return None


def _children(text: str, key: str) -> list[str]:
    """The keys one level under a top-level YAML mapping ``key``."""
    children: list[str] = []
    inside = False
    indent: int | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        depth = len(line) - len(line.lstrip(" "))
        if depth == 0:
            inside = line.split(":", 1)[0].strip() == key
            indent = None
            continue
        if not inside:
            continue
        if indent is None:
            indent = depth
        if depth == indent and ":" in line:
            children.append(_unquote(line.strip().split(":", 1)[0]))
    return children


# -- Kubernetes ---------------------------------------------------------------------------------------------------


def _manifests(root: Path) -> tuple[ManifestObject, ...]:
    candidates = [p for p in _walk(root, depth=1) if p.suffix in (".yaml", ".yml")]
    for folder in MANIFEST_DIRS:
        if (root / folder).is_dir() and not (root / folder).is_symlink():
            candidates.extend(p for p in _walk(root / folder) if p.suffix in (".yaml", ".yml"))
    objects: list[ManifestObject] = []
    for path in sorted(set(candidates)):
        if path.name in COMPOSE_FILES:
            continue
        text = _read(path)
        if text is None:
            continue
        for document in re.split(r"^---\s*$", text, flags=re.M):
            found = _manifest_object(_rel(root, path), document)
            if found is not None:
                objects.append(found)
    return tuple(objects)


def _manifest_object(path: str, document: str) -> ManifestObject | None:
    top: dict[str, str] = {}
    metadata: dict[str, str] = {}
    in_metadata = False
    meta_indent: int | None = None
    for line in document.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        depth = len(line) - len(line.lstrip(" "))
        key, _, value = line.strip().partition(":")
        if depth == 0:
            in_metadata = key == "metadata"
            meta_indent = None
            if value.strip():
                top[key] = _unquote(value)
            continue
        if in_metadata:
            meta_indent = depth if meta_indent is None else meta_indent
            if depth == meta_indent and value.strip() and key in ("name", "namespace"):
                metadata.setdefault(key, _unquote(value))
    if "apiVersion" not in top or "kind" not in top or "name" not in metadata:
        return None
    return ManifestObject(path, top["kind"], metadata["name"], metadata.get("namespace"))


# -- migrations ---------------------------------------------------------------------------------------------------


def _migrations(root: Path, configured: tuple[str, ...] = ()) -> Migrations | None:
    for relative in configured:
        folder = (root / relative).resolve()
        if folder.is_dir() and folder.is_relative_to(root.resolve()):
            return _plain_or_flyway(root, folder)
    alembic = _alembic_dir(root)
    if alembic is not None:
        return _migration_info(
            root,
            alembic,
            "alembic",
            apply="alembic upgrade head",
            status="alembic current",
            revert="alembic downgrade -1",
        )
    if (root / "manage.py").is_file():
        folders = sorted(p.parent for p in root.glob("*/migrations/__init__.py"))
        if folders:
            return _migration_info(
                root,
                folders[0],
                "django",
                apply="python manage.py migrate",
                status="python manage.py showmigrations",
                revert="python manage.py migrate APP PREVIOUS_MIGRATION_NAME",
            )
    if (root / "prisma" / "schema.prisma").is_file() and (root / "prisma" / "migrations").is_dir():
        return _migration_info(
            root,
            root / "prisma" / "migrations",
            "prisma",
            apply="npx prisma migrate deploy",
            status="npx prisma migrate status",
            revert=None,  # prisma has no down migrations: a revert is a new migration
        )
    for relative in MIGRATION_DIRS:
        folder = root / relative
        if folder.is_dir() and not folder.is_symlink():
            return _plain_or_flyway(root, folder)
    return None


def _plain_or_flyway(root: Path, folder: Path) -> Migrations:
    files = _migration_files(root, folder)
    if any(re.match(r"V\d+(_\d+)*__", Path(f).name) for f in files) or (root / "flyway.conf").is_file():
        return _migration_info(root, folder, "flyway", apply="flyway migrate", status="flyway info", revert=None)
    return _migration_info(root, folder, "sql", apply=None, status=None, revert=None)


def _alembic_dir(root: Path) -> Path | None:
    ini = _read(root / "alembic.ini")
    if ini is None:
        return None
    match = re.search(r"^\s*script_location\s*=\s*(\S+)", ini, flags=re.M)
    location = match.group(1).replace("%(here)s", ".") if match else "alembic"
    folder = (root / location).resolve()
    if not folder.is_relative_to(root.resolve()):
        return None
    versions = folder / "versions"
    return versions if versions.is_dir() else folder if folder.is_dir() else None


def _migration_files(root: Path, folder: Path) -> tuple[str, ...]:
    return tuple(
        _rel(root, p)
        for p in _walk(folder, depth=2)
        if p.suffix in (".sql", ".py") and p.name != "__init__.py" and not p.name.startswith(".")
    )


def _migration_info(
    root: Path, folder: Path, tool: str, *, apply: str | None, status: str | None, revert: str | None
) -> Migrations:
    files = _migration_files(root, folder)
    relative = _rel(root, folder)
    sql = [f for f in files if f.endswith(".sql")]
    lint = f"squawk {relative}/*.sql" if sql and tool in ("sql", "flyway") else None
    has_down = any(re.search(r"(^|[._/-])down\.sql$", name) for name in files)
    return Migrations(relative, tool, files, apply, status, revert, lint, has_down)


# -- CI -----------------------------------------------------------------------------------------------------------


def _ci(root: Path) -> tuple[CiWorkflow, ...]:
    found: list[CiWorkflow] = []
    workflows = root / ".github" / "workflows"
    if workflows.is_dir():
        for path in sorted(workflows.iterdir()):
            if path.suffix in (".yml", ".yaml") and (text := _read(path)) is not None:
                match = re.search(r"^name:\s*(.+)$", text, flags=re.M)
                found.append(CiWorkflow(_rel(root, path), _unquote(match.group(1)) if match else path.stem))
    for name, label in (
        (".gitlab-ci.yml", "GitLab CI"),
        (".circleci/config.yml", "CircleCI"),
        ("Jenkinsfile", "Jenkins"),
        ("azure-pipelines.yml", "Azure Pipelines"),
        ("bitbucket-pipelines.yml", "Bitbucket Pipelines"),
    ):
        if (root / name).is_file():
            found.append(CiWorkflow(name, label))
    return tuple(found)


# -- docs site ----------------------------------------------------------------------------------------------------


def _docs_site(root: Path, problems: list[str]) -> DocsSite | None:
    package_json = _read(root / "package.json")
    if package_json is not None:
        try:
            data = json.loads(package_json)
        except ValueError:
            data = {}  # already reported with the version
        scripts = data.get("scripts", {}) if isinstance(data, dict) else {}
        build = scripts.get("docs:build") if isinstance(scripts, dict) else None
        if isinstance(build, str) and "vitepress" in build:
            match = re.search(r"vitepress\s+build\s+(\S+)", build)
            source = match.group(1).rstrip("/") if match else "."
            config_dir = (root / source / ".vitepress") if source != "." else root / ".vitepress"
            config = next((p for p in sorted(config_dir.glob("config.*")) if p.is_file()), None)
            runner = _node_runner(root)
            return DocsSite(
                framework="VitePress",
                config=_rel(root, config) if config else _rel(root, config_dir),
                install=_node_install(root),
                build=f"{runner} run docs:build",
                preview=f"{runner} run docs:preview" if "docs:preview" in scripts else None,
                output=_rel(root, config_dir / "dist"),
                base_env=_base_env(config),
            )
    if (root / "mkdocs.yml").is_file():
        return DocsSite("MkDocs", "mkdocs.yml", "pip install mkdocs", "mkdocs build --strict", "mkdocs serve", "site")
    if (root / "docs" / "conf.py").is_file():
        return DocsSite(
            "Sphinx", "docs/conf.py", "pip install sphinx", "sphinx-build -b html docs docs/_build/html", None,
            "docs/_build/html",
        )  # fmt: skip
    return None


def _base_env(config: Path | None) -> str | None:
    """The environment variable a VitePress config reads its base path from, if it reads one."""
    text = _read(config) if config else None
    if not text:
        return None
    for line in text.splitlines():
        if re.search(r"\bbase\b", line) and (match := re.search(r"process\.env\.([A-Z_][A-Z0-9_]*)", line)):
            return match.group(1)
    return None
