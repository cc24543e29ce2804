"""Files only their owner may read: the .deploy folder (0700), the ledger and instance logs (0600).

Why: the ledger records who approved what, and an instance log holds whatever a service printed, secrets
included. Python's defaults (0755 folders, 0644 files under the usual umask) let every local user read them.
Permissions are set at creation, so there is no moment when a file exists with wider ones, and tightened on
files and folders found wider than that (a folder made by an older deploy-mcp).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_folder(path: Path) -> Path:
    """Create ``path`` and its missing parents as 0700 (os.makedirs gives the mode only to the last one)."""
    missing = []
    current = Path(path)
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=FOLDER_MODE)
    return path


def tighten(path: Path, mode: int) -> None:
    """Remove group and other access from a file or folder we own; leave anything else alone."""
    with contextlib.suppress(OSError):
        info = path.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
            path.chmod(stat.S_IMODE(info.st_mode) & mode)


def private_state_dir(state_dir: Path) -> Path:
    """The .deploy folder, created or tightened to 0700."""
    private_folder(state_dir)
    tighten(state_dir, FOLDER_MODE)
    return state_dir


def create_private_file(path: Path) -> None:
    """Create an empty 0600 file unless one exists, before a library (sqlite3) creates it with its own mode."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    tighten(path, FILE_MODE)


def open_private(path: Path) -> BinaryIO:
    """Open for appending, created 0600 (and made so if it was wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    with contextlib.suppress(OSError):
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, "ab")
