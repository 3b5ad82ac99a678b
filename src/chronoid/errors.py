"""Every exception chronoid raises, in one hierarchy.

Catch :class:`ChronoidError` to handle anything chronoid refuses to do. Where a built-in
exception describes the failure too (a bad argument is a ``ValueError``), the class derives
from it as well, so callers that do not know chronoid still catch the right thing.
Messages say what was wrong, the value received and what is allowed.
"""

from __future__ import annotations


class ChronoidError(Exception):
    """Base class of every error chronoid raises."""


class InvalidLayout(ChronoidError, ValueError):
    """A layout that cannot exist: widths that do not add up, unknown unit, future epoch."""


class UnknownVariant(ChronoidError, ValueError):
    """A variant name that is not among the named layouts."""


class InvalidNode(ChronoidError, ValueError):
    """A node (worker) ID outside the range the layout's node field can hold."""


class InvalidArgument(ChronoidError, ValueError):
    """Any other argument outside what a public call accepts."""


class TimestampOutOfRange(ChronoidError, ValueError):
    """A time before the layout's epoch or at/after its expiry: it cannot be encoded."""


class DecodeError(ChronoidError, ValueError):
    """A string or integer that is not a valid ID of the layout it was decoded with."""


class AmbiguousId(DecodeError):
    """A string that is a valid ID in two forms (decimal and Base32, or 0x-hex and Base32).

    Raised by ``parse_id`` in auto mode instead of guessing; ``readings`` maps each form that
    fits (``"int"``, ``"hex"``, ``"base32"``) to the value it gives. Name the form to choose.
    """

    def __init__(self, message: str, readings: dict[str, int]) -> None:
        self.readings = dict(readings)
        super().__init__(message)


class ClockMovedBackwards(ChronoidError):
    """The clock went back and the policy forbids issuing an ID until it catches up.

    ``offset_ns`` is how far back the clock went (ns), relative to the last timestamp used.
    """

    def __init__(self, offset_ns: int, message: str | None = None) -> None:
        self.offset_ns = offset_ns
        super().__init__(
            message
            or f"clock moved backwards by {offset_ns / 1e6:.3f} ms; refusing to issue an ID "
            "that could repeat one already issued"
        )


class ClockBeforeEpoch(ChronoidError):
    """The clock reads earlier than the layout's epoch, so no timestamp field can hold it.

    A new VM or a dead RTC battery starts at 1970 or the image's build date. ``epoch_ns`` and
    ``now_ns`` (ns since 1970) say where the layout starts and what the clock read.
    """

    def __init__(self, layout_name: str, epoch_ns: int, now_ns: int, epoch_text: str) -> None:
        self.epoch_ns = epoch_ns
        self.now_ns = now_ns
        super().__init__(
            f"{layout_name}: the clock reads {now_ns} ns since 1970, "
            f"{(epoch_ns - now_ns) / 1e9:,.3f} s before the layout's epoch {epoch_text}; "
            "set the system clock (NTP) before issuing IDs"
        )


class ClockJumpedForward(ChronoidError):
    """The wall clock stepped forward by more than the generator's ``max_jump_ms`` between two
    ticks (raised once, when the caller asked with ``on_forward_jump="raise"``).

    ``jump_ns`` is how far the wall clock moved beyond the time that passed (ns).
    """

    def __init__(self, jump_ns: int, message: str) -> None:
        self.jump_ns = jump_ns
        super().__init__(message)


class SequenceExhausted(ChronoidError):
    """Every sequence value of the current tick is used and the policy says raise."""


class SequenceRangeExhausted(SequenceExhausted, InvalidArgument):
    """A sequencer sequence has handed out its last value (2^63 - 1, or its site's ceiling).

    Nothing is consumed by the refused request; on the wire it is an ``-ERR`` reply, never
    a value outside signed 64-bit.
    """


class ClockLeadExceeded(SequenceExhausted):
    """An HLC generator would run its logical time more than ``max_lead_ms`` ahead of the wall
    clock, and waiting for the clock to catch up would take longer than ``max_wait_ms``."""


class GeneratorForked(ChronoidError):
    """A generator inherited through ``os.fork()`` was used in the child.

    The parent keeps the node, so the child would repeat the parent's IDs; give the child its
    own node with ``reassign_node()`` or make a new generator.
    """


class UnsafeForModeA(ChronoidError, ValueError):
    """A layout whose suffix is too small for uncoordinated (Mode A) generators.

    Millisecond and microsecond variants and the 32-bit sort-key variants leave so few node and
    sequence bits per window that independent personas collide within seconds; use Mode B or C,
    or pass ``force=True`` to accept the risk.
    """


class NodeSpaceExhausted(ChronoidError):
    """Every node the registry may hand out is leased: no node is left for a new generator."""


class LeaseLost(ChronoidError):
    """A lease (a Mode C node's, a sequencer leader's) expired, was taken or was refused by its
    store, and nothing may be issued under it.

    Raised instead of risking a duplicate: another holder may have the lease now. A Mode C
    generator keeps trying to acquire a new lease in the background; a sequencer member
    stands by.
    """


class StateFileError(ChronoidError):
    """A state file (Mode B's, or the sequencer's in its data directory) that cannot be read,
    fails validation, belongs to another layout or instance, or cannot be written.

    The message names the file and says what is wrong in it; the owner refuses to start
    rather than guess, since a guessed state could hand out a value twice.
    """


class StateInUse(StateFileError):
    """Another live owner holds the lock of this state file or data directory.

    Two owners of one state would hand out the same values, so the second one is refused;
    the message names the lock file and, where known, the PID holding it.
    """


class SqlInstallError(ChronoidError):
    """Installing, reading or removing chronoid's PostgreSQL functions failed.

    The message carries PostgreSQL's own reason: no connection, missing privileges, a newer
    version already installed, or objects (column defaults) that still depend on them.
    """


class ProtocolError(ChronoidError):
    """Bytes on a sequencer connection that are not a valid inline or RESP command: the
    commands complete before the fault are still answered, then the connection is closed
    after the error reply."""


class StoreUnavailable(ChronoidError):
    """A store chronoid keeps state in could not be reached or could not make a write durable
    (full disk, I/O error, lost fencing): nothing above the last durable record is issued."""


class LeaseStoreUnavailable(StoreUnavailable):
    """The store holding leases (Redis, etcd, PostgreSQL) could not be reached or answered an
    error; the cached lease is kept until its local deadline, never past it."""


RegistryUnavailable = LeaseStoreUnavailable
"""Mode C's name for :class:`LeaseStoreUnavailable` (the node registry is a lease store)."""


class LeadershipLost(LeaseLost, StoreUnavailable):
    """This sequencer's term as leader is over (its lease expired or a newer term exists): the
    store refused a fenced write or renewal, so the member stops issuing and stands by."""


class StoreDataLost(StoreUnavailable):
    """A sequencer leader's store holds no watermark (or a lower one) where this member saw
    it hold one: the store lost data, so no one can tell which values were handed out, and
    the member refuses to issue until an operator restarts it with ``--initial`` above the
    last value handed out (``docs/sequencer.md``, failover)."""


class ServerStartError(ChronoidError):
    """``chronoid serve`` cannot start as configured: a port already in use, a file descriptor
    limit below what ``--max-connections`` needs. Nothing is left bound when it is raised."""


class SequencerReplyError(ChronoidError):
    """The sequencer server answered a client's command with an error reply (``-ERR ...``)."""


class SequencerMoved(SequencerReplyError):
    """``-MOVED 0 host:port``: a failover standby names the leader to ask instead."""

    def __init__(self, message: str, address: tuple[str, int]) -> None:
        self.address = address
        super().__init__(message)


class SequencerTryAgain(SequencerReplyError):
    """``-TRYAGAIN ...``: the server has no leader to name yet (an election is under way)."""


class SequencerNoAuth(SequencerReplyError):
    """``-NOAUTH ...``: the server needs ``AUTH`` before this command."""


class SequencerWrongPass(SequencerReplyError):
    """``-WRONGPASS ...``: the server refused the password."""


class SinkError(ChronoidError):
    """A ChronoStream sink could not deliver an event (Redis unreachable, stream key of the wrong
    type): the engine stops rather than dropping every later event unseen."""


class ConfigError(InvalidArgument):
    """A setting from the environment or a configuration file that is unknown or has a bad
    value; the message names the key and where it came from."""


class TortureError(ChronoidError):
    """``chronoid torture`` could not run or judge a deployment (a target that does not start,
    a history file that is not one); a broken promise is a verdict, not this error."""


class MissingExtra(ChronoidError, ImportError):
    """A feature needs a package that a plain ``pip install chronoid`` does not bring.

    The message names the feature, the missing package and the extra to install
    (``pip install 'chronoid[redis]'``), so a user never meets a bare ``ModuleNotFoundError``.
    """
