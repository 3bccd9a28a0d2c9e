"""Atomic file writes: a killed run leaves the old file or the new one, never half of one.
Torch-free, so the runtime can use it."""

from __future__ import annotations

import ctypes
import errno
import glob
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def follow_umask(path: str | Path, mode: int = 0o666) -> None:
    """Give ``path`` the permissions ``open`` (``mode`` 0o666) or ``mkdir`` (0o777) would
    have: ``tempfile`` makes its files and folders private to the user."""
    os.chmod(path, mode & ~_umask())


def fsync(path: str | Path) -> None:
    """Flush ``path`` (a file, or a folder's entries) to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; when the block succeeds it replaces
    ``path`` (one rename, flushed to the disk, with the permissions of a file the user's
    umask allows), when it fails it is removed and ``path`` is left as it was. Siblings left
    by an earlier write that was killed are removed after a successful one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    try:
        yield Path(staging)
        follow_umask(staging)
        fsync(staging)
        os.replace(staging, path)
        fsync(path.parent)
        for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
            leftover.unlink(missing_ok=True)
    finally:
        if os.path.exists(staging):
            os.remove(staging)


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2  # <fcntl.h>, <linux/fs.h>


def exchange(first: Path, second: Path) -> bool:
    """Swap two paths (folders included) in one atomic step, Linux's ``renameat2`` with
    ``RENAME_EXCHANGE``; False, with nothing changed, where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # a libc older than glibc 2.28
        return False
    paths = (os.fsencode(first), os.fsencode(second))
    if renameat2(_AT_FDCWD, paths[0], _AT_FDCWD, paths[1], _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS):  # a file system without exchange
        return False
    raise OSError(error, os.strerror(error), str(first), None, str(second))
