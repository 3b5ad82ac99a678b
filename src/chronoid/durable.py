"""Durable files: a lock held for an owner's life, an atomic write, a file identity.

The sequencer's data directory and a Mode B state file need the same three things, so they
live here once:

- :class:`HeldLock`: an exclusive ``fcntl.flock`` on a lock file kept open for the owner's
  whole life. A second owner (another process, or another object in the same process) is
  refused with :class:`~chronoid.errors.StateInUse`, naming the lock file and the PID written
  into it. The kernel drops the lock when the process dies, even by kill -9, so a crash never
  leaves a stale lock behind.
- :func:`write_atomically`: write to a temporary file in the same directory (every byte,
  short writes included), fsync it, rename it over the target and fsync the directory, so
  after a crash or power loss the target holds the old or the new bytes, never a mix.
  :func:`remove_leftovers` deletes the temporary files a crash interrupted (call it while
  holding the lock, so no live writer's file is deleted).
- :class:`FileIdentity`: what a state file *is* (device, inode, change time, size), to notice
  it being deleted, replaced by another file or overwritten in place while its owner runs.

Linux and macOS; ``flock`` does not work across NFS on every server, so keep state on a
local disk.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from chronoid.errors import StateInUse

__all__ = [
    "TMP_INFIX",
    "FileIdentity",
    "HeldLock",
    "fsync_directory",
    "identity_of",
    "remove_leftovers",
    "write_atomically",
]

TMP_INFIX = ".tmp"
"""A temporary file of ``x.json`` is ``x.json.tmp.<pid>``; anything ``x.json.tmp*`` is one."""


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """Which file a path names and which version of it: equal only for the same bytes.

    ``ctime_ns`` changes on every write, rename or ``chmod`` and cannot be set back by a user
    (unlike the modification time ``cp -p`` or ``touch`` restore), so a copy written over the
    file in place is told apart from the file its owner wrote.
    """

    device: int
    inode: int
    ctime_ns: int
    size_bytes: int


def identity_of(path: str | os.PathLike[str]) -> FileIdentity | None:
    """The identity of the file at ``path`` now, or None when there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return FileIdentity(st.st_dev, st.st_ino, st.st_ctime_ns, st.st_size)


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make the directory's entries (a rename, a new file) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(
    path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600
) -> FileIdentity:
    """Replace the file at ``path`` by ``data`` durably; returns the new file's identity.

    Temporary file ``<path>.tmp.<pid>`` in the same directory (a rename is atomic only
    within one file system), every byte written, fsync, rename, fsync of the directory. On
    any failure (``ENOSPC`` included) the temporary file is removed and ``path`` is left as
    it was; the ``OSError`` propagates. Callers serialise their own writes to one path.
    """
    target = Path(path)
    tmp = target.with_name(f"{target.name}{TMP_INFIX}.{os.getpid()}")
    try:
        # O_NOFOLLOW: a symlink planted under the temporary name must not redirect the write.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(tmp, flags, mode)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                if written <= 0:  # never for a regular file, but never loop for ever
                    raise OSError(errno.EIO, f"write to {tmp} made no progress")
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(target.parent)
    identity = identity_of(target)
    if identity is None:  # deleted between the rename and the stat: report it, do not guess
        raise OSError(errno.ENOENT, f"{target} vanished right after it was written")
    return identity


def remove_leftovers(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of ``path`` that interrupted writes left; returns them.

    Only safe while holding ``path``'s :class:`HeldLock`: then no live process is writing one.
    """
    target = Path(path)
    prefix = target.name + TMP_INFIX
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if entry.name.startswith(prefix) and not entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


class HeldLock:
    """An exclusive ``flock`` on ``lock_path``, held until :meth:`close` or the process ends.

    ``owner`` names what the lock guards in messages ("data directory /x"). The holder's PID
    is written into the file so a refused second owner can say who holds it. The descriptor is
    close-on-exec, so a program the owner starts does not keep the lock alive after it.

    Raises:
        StateInUse: another live holder (any process, or another HeldLock in this one).
        OSError: the lock file cannot be opened (a missing or read-only directory).
    """

    def __init__(self, lock_path: str | os.PathLike[str], *, owner: str) -> None:
        self.path = Path(lock_path)
        self.owner = owner
        self._fd: int | None = self._take()
        self._former: list[int] = []  # locks on files the path named before (see retake)
        if self._fd is None:
            raise StateInUse(self._refusal())

    def _take(self) -> int | None:
        # O_NOFOLLOW: the PID is written into the file, so never through a planted symlink.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        # Informational only (the flock is the lock): no fsync needed.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _refusal(self) -> str:
        try:
            pid = self.path.read_text().strip()
        except OSError:
            pid = ""
        holder = f"PID {pid}" if pid.isdigit() else "PID unknown"
        return (
            f"{self.owner} is in use by another live owner ({holder}, holding {self.path}); "
            "two owners of one state would hand out the same values"
        )

    @property
    def held(self) -> bool:
        """Whether :meth:`close` has not been called."""
        return self._fd is not None

    def guards_path(self) -> bool:
        """Whether ``lock_path`` still names the file this lock holds.

        Deleting or replacing the lock file leaves this process locking an inode no newcomer
        looks at: a second owner could then lock the new file and start.
        """
        if self._fd is None:
            return False
        st = os.fstat(self._fd)
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)

    def retake(self) -> bool:
        """Lock whatever file ``lock_path`` names now (creating it); False if another holds it.

        Only the owner can tell whether retaking is safe (whether another owner may have
        used the state meanwhile): call it after checking that. The former lock stays held
        until :meth:`close`: its file may live on elsewhere (the directory moved, ``mv data
        data.old``) beside the state this owner wrote, and a newcomer there must be refused.
        """
        if self._fd is None:
            return False
        fd = self._take()
        if fd is None:
            return False
        self._former.append(self._fd)
        self._fd = fd
        return True

    def close(self) -> None:
        """Release the lock (idempotent). The lock file stays: it marks the state's place."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        while self._former:
            os.close(self._former.pop())

    def __del__(self) -> None:
        fds = [getattr(self, "_fd", None), *getattr(self, "_former", ())]
        for fd in fds:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
