"""What git knows about the release: is the working tree clean, and which commit is the version?

A deployment record is only as good as its link to code: "web 1.4.0" means something when a tag ``v1.4.0`` (or
``1.4.0``) names the commit it was built from, or when the version is itself a commit. A dirty working tree
means the artifact may have been built from changes nobody committed. Both questions are answered by the git
CLI (``git status --porcelain``, ``git rev-parse --verify``), which every developer and CI machine has.

The project's state folder (``.deploy``: the ledger, flag files, recorded test results) is not part of the
release, so it never makes the tree dirty. Nothing raises: no git, no repository or a slow git is a
`GitFacts` whose ``problem`` says so.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

GIT_TIMEOUT_SECONDS = 10.0
DIRTY_EXAMPLES = 5
_COMMITISH = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass(frozen=True)
class VersionCommit:
    """The commit a version names, and how it was found (``refs/tags/v1.4.0``, or the SHA itself)."""

    commit: str
    via: str


@dataclass(frozen=True)
class GitFacts:
    """One look at the repository holding the project. ``problem`` is set when git could not be asked."""

    repository: Path | None
    head: str | None = None
    dirty: list[str] = field(default_factory=list)
    version_commit: VersionCommit | None = None
    tried: list[str] = field(default_factory=list)
    problem: str | None = None

    @property
    def clean(self) -> bool:
        return self.problem is None and not self.dirty


class GitError(Exception):
    pass


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError:
        raise GitError("git is not installed on this machine") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {' '.join(args)} did not finish within {GIT_TIMEOUT_SECONDS:g} s") from None


def version_refs(version: str) -> list[str]:
    """What a version may be called in git, most specific first: tag v1.4.0, tag 1.4.0, or a commit SHA."""
    refs = [f"refs/tags/v{version}", f"refs/tags/{version}"]
    if _COMMITISH.match(version):
        refs.append(version)
    return refs


def inspect_repository(folder: Path, version: str, *, exclude: list[str] | None = None) -> GitFacts:
    """Cleanliness of ``folder`` (``exclude``: paths relative to it that are not part of the release) and the
    commit of ``version``."""
    try:
        top = _git(folder, "rev-parse", "--show-toplevel")
        if top.returncode != 0:
            return GitFacts(repository=None, problem=f"{folder} is not inside a git repository")
        repository = Path(top.stdout.strip())
        head_run = _git(folder, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
        head = head_run.stdout.strip() if head_run.returncode == 0 else None
        pathspec = ["--", ".", *(f":(exclude){path}" for path in exclude or [])]
        status = _git(folder, "status", "--porcelain", "--untracked-files=normal", *pathspec)
        if status.returncode != 0:
            return GitFacts(repository=repository, head=head, problem=f"git status failed: {status.stderr.strip()}")
        dirty = [line[3:] for line in status.stdout.splitlines() if line.strip()]
        found: VersionCommit | None = None
        tried = version_refs(version)
        for ref in tried:
            resolved = _git(folder, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
            if resolved.returncode == 0 and resolved.stdout.strip():
                found = VersionCommit(commit=resolved.stdout.strip(), via=ref)
                break
    except GitError as exc:
        return GitFacts(repository=None, problem=str(exc))
    return GitFacts(repository=repository, head=head, dirty=dirty, version_commit=found, tried=tried)


def short(commit: str | None) -> str:
    return commit[:12] if commit else "none"
