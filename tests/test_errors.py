"""The error model: one base class, and built-in bases where callers expect them."""

from __future__ import annotations

import inspect

import pytest

from chronoid import errors
from chronoid.errors import (
    ChronoidError,
    DecodeError,
    InvalidArgument,
    InvalidLayout,
    InvalidNode,
    TimestampOutOfRange,
    UnknownVariant,
)

ERRORS = [
    value
    for value in vars(errors).values()
    if inspect.isclass(value)
    and issubclass(value, BaseException)
    and value.__module__ == errors.__name__
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: error.__name__)
def test_every_error_is_a_chronoid_error(error: type[BaseException]) -> None:
    # One ``except ChronoidError`` catches every failure chronoid raises on purpose.
    assert issubclass(error, ChronoidError)


@pytest.mark.parametrize(
    "error",
    [InvalidLayout, UnknownVariant, InvalidNode, InvalidArgument, TimestampOutOfRange, DecodeError],
)
def test_bad_values_are_value_errors(error: type[ChronoidError]) -> None:
    # Spec 000: a bad worker ID is a ValueError; so is every other value outside what fits.
    assert isinstance(error("x"), ValueError)
