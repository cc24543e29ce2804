"""Reading a file an agent named: only a regular file, opened without blocking, and only up to a size.

Why: ``open()`` on a FIFO waits for a writer that never comes, and a tool call that hangs holds one of the
server's worker threads; forty of them froze every tool. ``/dev/zero`` or a 200 MB "migration" feeds a parser
without end. So the file is opened with O_NONBLOCK (which returns at once even for a FIFO), checked with fstat on
the open descriptor (no window for a swap between the check and the read), and refused unless it is a regular
file no larger than the caller's limit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from deploy_mcp.errors import UserError


class NotRegularFile(UserError):
    """The path is a FIFO, socket, device or folder: nothing deploy-mcp reads."""


class FileTooLarge(UserError):
    """The file is larger than the caller reads."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def file_size(path: Path) -> int:
    """The size of a regular file, without opening it; NotRegularFile for anything else."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFile(f"{path} is {_kind(info.st_mode)}, not a regular file")
    return info.st_size


def read_regular_bytes(path: Path, max_bytes: int) -> bytes:
    """The file's bytes; FileNotFoundError when it is missing, NotRegularFile or FileTooLarge as named."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(f"{path} is {_kind(info.st_mode)}, not a regular file")
        if info.st_size > max_bytes:
            raise FileTooLarge(f"{path} is {info.st_size:,} bytes, more than the {max_bytes:,} read here")
        chunks = []
        remaining = max_bytes + 1  # a file that grows while being read is cut, and then refused
        while remaining > 0 and (chunk := os.read(fd, min(remaining, 1 << 20))):
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise FileTooLarge(f"{path} grew past {max_bytes:,} bytes while it was read")
    return data


def read_regular_text(path: Path, max_bytes: int, errors: str = "strict") -> str:
    return read_regular_bytes(path, max_bytes).decode("utf-8", errors)
