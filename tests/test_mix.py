"""The Weyl-Golden mixer: derivation, bijection, inverse, Weyl-step period."""

from __future__ import annotations

from math import isqrt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronoid import get_layout
from chronoid.errors import InvalidArgument, InvalidNode
from chronoid.mix import (
    BASKET,
    GOLDEN_64,
    compose,
    distinct_multipliers,
    mix,
    multiplier,
    unmix,
    weyl_step,
    weyl_step_constant,
)


def test_basket_is_derived_from_the_golden_ratio() -> None:
    assert GOLDEN_64 == (isqrt(5 << 128) - (1 << 64)) // 2 == 0x9E3779B97F4A7C15
    assert len(BASKET) == len(set(BASKET)) == 64
    assert all(m % 2 == 1 and 0 < m < 2**64 for m in BASKET)
    assert BASKET[0] == GOLDEN_64 | 1


@given(st.integers(1, 64), st.integers(0, 63), st.integers(0, 2**64 - 1), st.data())
def test_mix_is_inverted_by_unmix(bits: int, index: int, salt: int, data: st.DataObject) -> None:
    value = data.draw(st.integers(0, 2**bits - 1))
    mixed = mix(value, bits, index, salt)
    assert 0 <= mixed < 2**bits
    assert unmix(mixed, bits, index, salt) == value


@pytest.mark.parametrize("bits", [1, 2, 5, 8, 10])
def test_mix_is_a_permutation(bits: int) -> None:
    for index in (0, 17, 63):
        image = {mix(v, bits, index, 0x5A5A5A) for v in range(2**bits)}
        assert len(image) == 2**bits


@pytest.mark.parametrize("bits", [1, 3, 5, 10, 12])
def test_weyl_step_visits_every_node_once(bits: int) -> None:
    node, seen = 0, []
    for _ in range(2**bits):
        seen.append(node)
        node = weyl_step(node, bits)
    assert sorted(seen) == list(range(2**bits)) and node == 0
    assert weyl_step_constant(bits) % 2 == 1


def test_narrow_fields_collapse_the_basket() -> None:
    # Erratum 5/8: the spec's 63/64 divergence needs 64 distinct multipliers.
    assert distinct_multipliers(2) == 2
    assert distinct_multipliers(5) == 16
    assert distinct_multipliers(8) == 64
    assert multiplier(0, 5) == 1 and mix(0, 0, 5, 99) == 0


def test_compose_matches_the_spec_formula() -> None:
    layout = get_layout("chrono64s")
    n_bits, s_bits = layout.node_bits, layout.sequence_bits
    salt, index = 0x2ABCDEF12, 41
    value = compose(layout, 1000, 77, 5, salt, index)
    expected = (
        (1000 << (n_bits + s_bits))
        | (mix(77, n_bits, index, salt >> s_bits) << s_bits)
        | mix(5, s_bits, index, salt)
    )
    assert value == expected
    plain = compose(layout, 1000, 77, 5, salt, index, mix_node=False)
    assert layout.node_of(plain) == 77


def test_compose_validates_its_fields() -> None:
    layout = get_layout("chrono32y")
    with pytest.raises(InvalidNode, match="node 5000"):
        compose(layout, 1, 5000, 0, 0, 0)
    with pytest.raises(InvalidArgument, match="sequence 2048"):
        compose(layout, 1, 0, 2048, 0, 0)
    with pytest.raises(InvalidArgument, match="0..64 bits"):
        multiplier(65, 0)
