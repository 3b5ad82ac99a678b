"""Where the sequencer keeps its high-watermarks durably.

A *watermark* of a sequence is an exclusive upper bound: every value the server has handed
out, or may hand out before its next reservation, is below it. After any stop, clean or not,
the sequence resumes at the stored watermark, so no value is ever handed out twice.

:class:`WatermarkStore` is the whole interface (two methods) so the watermark can live
elsewhere: the failover work implements it on etcd or PostgreSQL, adding a fencing token so a
deposed primary's ``reserve`` raises instead of succeeding. :class:`FileStore` keeps the
watermarks of all sequences in one JSON file in a data directory, which one server at a time
may own (see docs/sequencer.md, "The data directory").
"""

from __future__ import annotations

import json
import logging
import os
import threading
import weakref
from pathlib import Path
from typing import Any, Protocol

from chronoid.durable import (
    FileIdentity,
    HeldLock,
    fsync_directory,
    identity_of,
    remove_leftovers,
    write_atomically,
)
from chronoid.errors import InvalidArgument, StateFileError, StoreUnavailable

__all__ = [
    "LOCK_FILE_NAME",
    "MARKER_FILE_NAME",
    "STATE_FILE_NAME",
    "STATE_VERSIONS",
    "WATCH_INTERVAL_S",
    "FileStore",
    "WatermarkStore",
    "default_data_dir",
]

log = logging.getLogger("chronoid.sequencer")

STATE_FILE_NAME = "sequencer.json"
"""The watermarks: ``{"version": 1, "sequences": {name: watermark}}``."""
LOCK_FILE_NAME = "sequencer.lock"
"""Locked (``flock``) by the server owning the directory; holds its PID."""
MARKER_FILE_NAME = "sequencer.initialized"
"""Created (and its directory entry fsynced) with the first state file: the directory has
handed out values before. It also holds a copy of the last state written, not fsynced, so a
state file restored from an older copy while the server was stopped is noticed."""
STATE_VERSIONS = (1,)
"""State-file versions this chronoid reads (it writes the last one)."""
WATCH_INTERVAL_S = 0.5
"""How often (s) a running store checks that its state file is still the one it wrote."""


class WatermarkStore(Protocol):
    """Durable high-watermarks, one per named sequence.

    Implementations must be safe to call from two threads (the event loop and the prefetch
    thread) and must not reorder two ``reserve`` calls made one after the other.
    """

    def load(self) -> dict[str, int]:
        """Every stored watermark by sequence name (empty for a new store)."""
        ...

    def reserve(self, name: str, high: int) -> None:
        """Make ``high`` the stored watermark of ``name``, durably, before returning.

        ``high`` is normally larger than the stored value (a reservation ahead of what is
        handed out); the server lowers it only at a clean stop, to the exact next value, and
        with ``--force-initial``. Raise (``OSError`` or :class:`StoreUnavailable`) if the
        value may not be durable: the server then issues nothing above the last success.
        """
        ...


def default_data_dir() -> Path:
    """``$STATE_DIRECTORY`` (set by systemd's ``StateDirectory=``; the first one if several),
    else ``$XDG_STATE_HOME/chronoid``, else ``~/.local/state/chronoid`` (per user)."""
    state_directory = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state_directory:
        return Path(state_directory)
    base = os.environ.get("XDG_STATE_HOME")
    root = Path(base) if base else Path.home() / ".local" / "state"
    return root / "chronoid"


class FileStore:
    """Watermarks in ``<data_dir>/sequencer.json``, owned by one store at a time.

    Construction takes an exclusive lock on ``<data_dir>/sequencer.lock`` for the store's
    life (until :meth:`close` or the process ends): a second server on the same directory is
    refused with :class:`~chronoid.errors.StateInUse` naming the PID that holds it, since two
    would hand out the same values and overwrite each other's watermarks.

    Each write is atomic and durable (:func:`chronoid.durable.write_atomically`), so after a
    crash or power loss the file holds the old or the new state, never a torn one. One write
    costs one or two fsyncs (about 1-20 ms on disks, µs on tmpfs); the sequencer makes them
    ahead of need, off the event loop.

    The file is checked at every reservation and every ``watch_interval_s`` (a background
    thread): deleted, replaced or overwritten underneath (a restored backup), it is written
    again at once from memory and an error is logged, so a crash afterwards still resumes
    above every value handed out. A directory that has held a state file before (the marker
    file) but has none now is refused at :meth:`load` unless ``missing_ok`` (the operator
    said where to resume, ``--initial``).

    Raises:
        StateInUse: another live store holds the directory. StoreUnavailable: the directory
        cannot be created or locked. StateFileError (at load): the state is missing or invalid.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        missing_ok: bool = False,
        watch_interval_s: float = WATCH_INTERVAL_S,
    ) -> None:
        self.data_dir = Path(data_dir)
        if not 0 < watch_interval_s <= 1.0:
            raise InvalidArgument(
                f"watch_interval_s must be in (0, 1] seconds, got {watch_interval_s!r}"
            )
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._held = HeldLock(
                self.data_dir / LOCK_FILE_NAME, owner=f"data directory {self.data_dir}"
            )
        except OSError as exc:
            raise StoreUnavailable(f"cannot use data directory {self.data_dir}: {exc}") from exc
        self.path = self.data_dir / STATE_FILE_NAME
        self._marker = self.data_dir / MARKER_FILE_NAME
        self._missing_ok = missing_ok
        self._watch_interval_s = watch_interval_s
        self._lock = threading.Lock()
        self._state: dict[str, int] = {}
        self._loaded = False
        self._identity: FileIdentity | None = None  # of the file as last read or written
        self._marked = False
        self._lost: str | None = None  # why this store may never write again
        self._stop = threading.Event()
        self.rewrites = 0
        """Times the state file was found changed underneath and written again."""
        remove_leftovers(self.path)

    def load(self) -> dict[str, int]:
        """Read and validate the state file, then start watching it.

        A missing file is an empty state in a new directory; in a directory used before it
        is refused unless ``missing_ok``.

        Raises:
            StateFileError: missing after use, unreadable, or not a valid state (the message
            says what and where).
        """
        with self._lock:
            self._marked = self._marker.exists()
            last = self._last_written()
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                if self._marked and not self._missing_ok:
                    copy = ", ".join(f"{n}={h}" for n, h in sorted(last.items()))
                    hint = f"; its last copy of the watermarks: {copy}" if last else ""
                    raise StateFileError(
                        f"{self.path} is missing, but {self.data_dir} has handed out values "
                        f"before ({self._marker.name} exists{hint}): resuming at 1 could "
                        "repeat them. Restore the file, or start with --initial N above every "
                        "value of 'default' ever handed out (other names resume at the copy's "
                        "watermarks, or at 1 without one)"
                    ) from None
                state: dict[str, int] = {}
            except OSError as exc:
                raise StateFileError(f"cannot read {self.path}: {exc}") from exc
            else:
                state = _decode(raw, self.path)
            # Watermarks never go down except at a clean stop or --force-initial, which write
            # the copy too: a copy ahead of the file means the file is older than the last
            # one written here (restored from a backup, or lost and resumed with --initial).
            behind = {n: h for n, h in last.items() if h > state.get(n, 0)}
            if behind:
                log.error(
                    "%s is missing or older than the last state this directory wrote "
                    "(restored from a backup?): resuming at the later watermarks %s",
                    self.path,
                    behind,
                )
                state.update(behind)
                try:
                    self._write(state)
                except OSError as exc:
                    raise StoreUnavailable(f"cannot write {self.path}: {exc}") from exc
            self._identity = identity_of(self.path)
            self._state = state
            started = self._loaded
            self._loaded = True
        if not started:
            threading.Thread(
                target=_watch,
                args=(weakref.ref(self), self._stop, self._watch_interval_s),
                name="chronoid-state-watch",
                daemon=True,
            ).start()
        return dict(state)

    def reserve(self, name: str, high: int) -> None:
        """Store ``high`` for ``name`` durably (tmp file, fsync, rename, fsync directory).

        Raises:
            InvalidArgument: ``high`` outside 1..2^63. StoreUnavailable: not loaded, closed,
            or the directory was taken over by another server. OSError: the write failed.
        """
        if not isinstance(high, int) or isinstance(high, bool) or not 1 <= high <= _MAX_MARK:
            raise InvalidArgument(f"watermark must be an int in 1..{_MAX_MARK}, got {high!r}")
        with self._lock:
            if not self._loaded:
                raise StoreUnavailable("FileStore.reserve called before load()")
            self._check_ownership()
            if identity_of(self.path) != self._identity:
                self._report_changed()
            state = dict(self._state)
            state[name] = high
            self._write(state)

    def check(self) -> None:
        """Write the state again if the file was deleted or changed underneath (logged).

        The watcher thread calls this every ``watch_interval_s``; errors are logged, never
        raised (the next reservation raises them to the server).
        """
        with self._lock:
            if not self._loaded or self._lost is not None or not self._held.held:
                return
            try:
                self._check_ownership()
                if identity_of(self.path) != self._identity:
                    self._report_changed()
                    self._write(self._state)
            except (OSError, StoreUnavailable) as exc:
                log.error("could not restore %s: %s", self.path, exc)

    def close(self) -> None:
        """Stop watching and release the directory (writes nothing: a clean stop's last
        watermarks are written through :meth:`reserve` before this)."""
        self._stop.set()
        with self._lock:
            self._held.close()

    # -- internals (self._lock held) -------------------------------------------------------

    def _check_ownership(self) -> None:
        if self._lost is not None:
            raise StoreUnavailable(self._lost)
        if not self._held.held:
            raise StoreUnavailable(f"the store of {self.data_dir} was closed")
        if self._held.guards_path():
            return
        if identity_of(self.path) in (None, self._identity) and not self._copy_ahead():
            # Nobody wrote the state meanwhile (a server that starts writes it at once, and
            # the marker's copy with it: a missing state file alone proves nothing), so
            # nobody else issued from here: lock the path again (the whole directory may
            # have been deleted: recreate it) and go on.
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self._held.retake():
                log.error("%s was deleted or replaced: locked it again", self._held.path)
                return
        # The lock file went away underneath and either another process holds the new one or
        # the state file changed too: another server may be issuing from this directory.
        # Values below the last watermark were this server's alone; it must write no more.
        self._lost = (
            f"{self._held.path} was deleted or replaced and another server may own "
            f"{self.data_dir} now: not issuing above the last watermark"
        )
        log.error("%s", self._lost)
        raise StoreUnavailable(self._lost)

    def _copy_ahead(self) -> bool:
        """Whether the marker's copy holds a watermark above this store's: another server
        wrote it (this one's watermarks only rise while it runs)."""
        return any(h > self._state.get(n, 0) for n, h in self._last_written().items())

    def _report_changed(self) -> None:
        self.rewrites += 1
        log.error(
            "%s was deleted or changed while this server owned it: writing the watermarks "
            "again (a crash before this write would have resumed too low)",
            self.path,
        )

    def _write(self, state: dict[str, int]) -> None:
        data = json.dumps({"version": STATE_VERSIONS[-1], "sequences": state}, sort_keys=True)
        self._identity = write_atomically(self.path, data.encode())
        self._state = state
        # The copy is best effort (no fsync: after a power loss it may be older or torn,
        # never newer than the state file); the marker's existence is made durable.
        self._marked = self._marked and self._marker.exists()  # deleted underneath?
        fd = os.open(self._marker, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.pwrite(fd, data.encode(), 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)
        if not self._marked:
            fsync_directory(self.data_dir)
            self._marked = True

    def _last_written(self) -> dict[str, int]:
        """The copy of the last state written here, or {} if missing or torn."""
        try:
            return _decode(self._marker.read_bytes(), self._marker)
        except (OSError, StateFileError):
            return {}


_MAX_MARK = 2**63
"""Largest watermark: exclusive, so one above the largest value (2^63 - 1)."""


def _watch(store_ref: weakref.ref[FileStore], stop: threading.Event, interval_s: float) -> None:
    """Check the store every ``interval_s`` until it is closed or garbage collected."""
    while not stop.wait(interval_s):
        store = store_ref()
        if store is None:
            return
        store.check()
        del store


def _decode(raw: bytes, path: Path) -> dict[str, int]:
    """The watermarks in ``raw``, validated strictly: anything unexpected is refused."""
    from chronoid.sequencer.sequences import NAME_PATTERN  # one rule for names; avoids a cycle

    def fail(what: str) -> StateFileError:
        return StateFileError(
            f"{path} is not a valid chronoid sequencer state file: {what}; refusing to guess "
            "a watermark: restore the file from a backup taken while the server was stopped, "
            "or move it away and start with --initial above every value ever issued"
        )

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise fail(f"a key appears twice in one object ({sorted(keys)})")
        return dict(pairs)

    if not raw.strip():
        raise fail(f"it is empty ({len(raw)} bytes)")
    try:
        document = json.loads(raw, object_pairs_hook=unique_keys)
    except (ValueError, RecursionError) as exc:
        raise fail(f"not JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise fail(f"the top level is a {type(document).__name__}, not an object")
    if set(document) != {"version", "sequences"}:
        raise fail(f'keys {sorted(document)}, expected exactly ["sequences", "version"]')
    version = document["version"]
    if type(version) is not int or version not in STATE_VERSIONS:
        raise fail(f"version {version!r}; this chronoid reads versions {list(STATE_VERSIONS)}")
    sequences = document["sequences"]
    if not isinstance(sequences, dict):
        raise fail(f'"sequences" is a {type(sequences).__name__}, not an object')
    for name, high in sequences.items():
        if NAME_PATTERN.fullmatch(name) is None:
            raise fail(f"sequence name {name!r} is not 1-64 of A-Z a-z 0-9 _ . : -")
        if type(high) is not int or not 1 <= high <= _MAX_MARK:
            raise fail(f"watermark {high!r} of sequence {name!r} is not an integer in 1..2^63")
    return dict(sequences)
