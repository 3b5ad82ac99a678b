"""The Weyl-Golden mixer (spec 002 §2.3, §7.1): obfuscation, not security.

``mix(v) = ((v * M) XOR salt) mod 2^bits`` with an odd multiplier ``M`` is a bijection on
``bits``-bit values, so mixing a sequence never creates a duplicate and :func:`unmix`
recovers the input exactly. Anyone who knows (or guesses) the salt and multiplier can invert
it too: a mixed ID hides growth rates from casual eyes, nothing more. Never use it where
an attacker must not learn the node or sequence (spec 002 §12.5 agrees).

The basket: spec 002 lists 64 "golden" multipliers, but its numbers are placeholders
(several are negative or arbitrary). chronoid derives its own, reproducibly:

* ``GOLDEN_64 = floor(2^64 / φ) = 0x9E3779B97F4A7C15`` (computed with exact integer maths);
* ``BASKET[i] = ((i + 1) * GOLDEN_64 mod 2^64) | 1`` for i = 0..63: the first 64 points of
  the golden-ratio Weyl sequence, the most evenly spread 64 points a 1-D sequence can give
  (three-distance theorem), made odd.

A ``bits``-wide field uses ``(BASKET[i] >> (64 - bits)) | 1``. Narrow fields collapse
distinct basket entries onto the same multiplier, so the spec's "98.4 % divergence" (63/64)
only holds for wide sequence fields: :func:`distinct_multipliers` measures it per width.
"""

from __future__ import annotations

from math import isqrt
from typing import TYPE_CHECKING

from chronoid.errors import InvalidArgument

if TYPE_CHECKING:
    from chronoid.layout import Layout

__all__ = [
    "BASKET",
    "BASKET_SIZE",
    "GOLDEN_64",
    "compose",
    "distinct_multipliers",
    "mix",
    "multiplier",
    "unmix",
    "weyl_step",
    "weyl_step_constant",
]

_MASK_64 = (1 << 64) - 1

# floor(2^64 * (sqrt(5) - 1) / 2), exactly: isqrt gives floor(sqrt(5) * 2^64).
GOLDEN_64: int = (isqrt(5 << 128) - (1 << 64)) >> 1
assert GOLDEN_64 == 0x9E3779B97F4A7C15

BASKET_SIZE = 64
BASKET: tuple[int, ...] = tuple((((i + 1) * GOLDEN_64) & _MASK_64) | 1 for i in range(64))
"""64 odd 64-bit multipliers: the golden-ratio Weyl sequence (see module docstring)."""


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or not 0 <= bits <= 64:
        raise InvalidArgument(f"field width must be 0..64 bits, got {bits!r}")


def multiplier(bits: int, index: int) -> int:
    """The odd multiplier basket entry ``index`` (mod 64) gives a ``bits``-wide field."""
    _check_bits(bits)
    if bits == 0:
        return 1
    return (BASKET[index & 63] >> (64 - bits)) | 1


def mix(value: int, bits: int, index: int, salt: int) -> int:
    """Permute a ``bits``-wide value: ``((value * M_index) XOR salt) mod 2^bits``.

    ``salt`` is reduced to ``bits`` bits. A zero-width field always mixes to 0.
    """
    mask = (1 << bits) - 1
    return ((value * multiplier(bits, index)) ^ salt) & mask


def unmix(mixed: int, bits: int, index: int, salt: int) -> int:
    """The exact inverse of :func:`mix` for the same ``bits``, ``index`` and ``salt``."""
    if bits == 0:
        return 0
    mask = (1 << bits) - 1
    inverse = pow(multiplier(bits, index), -1, 1 << bits)
    return (((mixed ^ salt) & mask) * inverse) & mask


def weyl_step_constant(bits: int) -> int:
    """The odd step that walks a ``bits``-wide node field through every value once.

    The golden ratio scaled to the field (``GOLDEN_64 >> (64 - bits) | 1``). Any odd step
    has full period modulo 2^bits; the golden one spreads consecutive nodes far apart.
    Spec 002 §3.2 uses 3535253579 and calls it φ⁻¹·2³², which it is not (that is
    2654435769); chronoid uses the golden value at every width.
    """
    _check_bits(bits)
    if bits == 0:
        return 0
    return (GOLDEN_64 >> (64 - bits)) | 1


def weyl_step(node: int, bits: int) -> int:
    """The next node after ``node`` in the full-period Weyl walk of a ``bits``-wide field."""
    mask = (1 << bits) - 1
    return (node + weyl_step_constant(bits)) & mask


def distinct_multipliers(bits: int) -> int:
    """How many of the 64 basket entries stay distinct when truncated to ``bits`` bits.

    Two generators that collide keep colliding at the next sequence value only when their
    multipliers are equal, so the chance of divergence after a collision is
    ``1 - sum(share_m^2)`` over the distinct multipliers, not a flat 63/64.
    """
    return len({multiplier(bits, i) for i in range(BASKET_SIZE)})


def compose(
    layout: Layout,
    timestamp: int,
    node: int,
    sequence: int,
    salt: int,
    index: int,
    *,
    mix_node: bool = True,
) -> int:
    """A mixed ChronoID (spec 002 §1): ``T << (N+S) | mix(N) << S | mix(S)``.

    This is the one definition every mode and the SQL functions must match bit for bit.
    ``salt`` is an (N+S)-bit value: its low S bits salt the sequence, the next N bits salt
    the node. Both fields use basket entry ``index``. ``mix_node=False`` leaves the node
    plain (Mode C: a router reads the shard with one shift).

    Raises:
        TimestampOutOfRange, InvalidNode, InvalidArgument: a field does not fit.
    """
    s_bits = layout.sequence_bits
    layout.check_node(node)
    if not 0 <= sequence <= layout.max_sequence:
        raise InvalidArgument(
            f"{layout.name}: sequence {sequence} outside 0..{layout.max_sequence}"
        )
    mixed_node = mix(node, layout.node_bits, index, salt >> s_bits) if mix_node else node
    return layout.pack(timestamp, mixed_node, mix(sequence, s_bits, index, salt))
