"""Build ``chronoid.sql`` from the Python definitions, so SQL and Python cannot drift.

The script is plain SQL (no C extension): tables, sequences, domains and functions. Every
number in it that Python also knows (the multiplier basket, the golden Weyl step, each
variant's bit widths, unit and epoch) is written here from :mod:`chronoid.mix` and
:mod:`chronoid.variants`; ``tests/postgres`` checks that the committed file equals what this
module produces. The SQL itself is written as SQL in ``install_template.sql`` (shipped beside
this module); this module only fills its ``{{name}}`` placeholders. Regenerate with::

    python -m chronoid.postgres.sqlgen > src/chronoid/postgres/chronoid.sql

The hot path (``chronoid_next``) is an inlinable ``LANGUAGE sql`` function. Its per-install
constants (mixed base node, salt, multipliers) are baked into its text at install time by a
``DO`` block that replaces ``@TOKEN@`` placeholders, because an inlined function cannot read
a table. See ``docs/postgres.md`` for the design and the uniqueness guarantee.
"""

from __future__ import annotations

import re
import sys
from importlib import resources

from chronoid.layout import MEAN_MONTH_S, Layout
from chronoid.mix import BASKET, GOLDEN_64
from chronoid.variants import VARIANTS

__all__ = [
    "MIN_SUFFIX_BITS",
    "MODE_B_VARIANTS",
    "SCRIPT_VERSION",
    "SQL_VARIANTS",
    "build_script",
    "build_uninstall_script",
]

SCRIPT_VERSION = 2
"""Version of the SQL objects; stored in ``chronoid_config.version`` at install.

2: ``chronoid_next`` turns ``synchronous_commit = off`` to ``on`` for its transaction."""

_US_PER_DAY = 86_400_000_000

SQL_VARIANTS: tuple[str, ...] = tuple(
    name
    for name, layout in VARIANTS.items()
    if layout.width <= 32 or (layout.width == 64 and layout.signed)
)
"""Layouts whose IDs fit a signed ``bigint``: compose and decode accept these."""

MIN_SUFFIX_BITS = 16
"""Fewest node + sequence bits ``chronoid_next`` accepts.

Two IDs of one tick repeat when 2^(N+S) sequence values are drawn between them. A session
that stalls between reading the clock and ``nextval`` lets the others draw that many: with
``chrono64us``'s 2^10 it happened 4 times in 800,000 IDs over 16 sessions. From 2^16 values
per tick a stall must outlast 65,536 draws, and the variants below that (``chrono64us`` and
the 32-bit sort keys ``d``, ``h``, ``tm``, ``m``, ``bs``) are refused rather than served."""

MODE_B_VARIANTS: tuple[str, ...] = tuple(
    name
    for name, layout in VARIANTS.items()
    if layout.signed and layout.node_bits + layout.sequence_bits >= MIN_SUFFIX_BITS
)
"""Layouts ``chronoid_next`` serves: signed (they fit ``bigint``/``integer`` columns) with at
least :data:`MIN_SUFFIX_BITS` suffix bits."""


def _signed64(value: int) -> int:
    """Two's-complement reading of an unsigned 64-bit value, as a ``bigint`` holds it."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _mask(bits: int) -> int:
    return (1 << bits) - 1


def _tick_expr(layout: Layout, ts: str, *, checked: bool = True) -> str:
    """SQL for the layout's tick at timestamptz ``ts``, referencing ``ts`` exactly once.

    One reference matters: ``ts`` is ``clock_timestamp()`` in the hot path, and a volatile
    argument used twice would block inlining (and read the clock twice). The result is cast
    to the variant's tick domain, whose CHECK rejects times before the epoch or past expiry.

    Speed over numeric: ``date_part('epoch', ts)`` is a float8 ``q``, the correctly rounded
    ``µs / 1e6`` of the µs count converted to float8. For whole-second units
    ``floor((q - epoch) / unit)`` is exact while the µs count is below 2^53 (until 2255);
    for sub-second units ``round(q * 1e6)`` recovers the exact µs while ``q < 2^32`` s
    (until 2106). Later, an instant within 2 µs of a tick boundary may land in the
    neighbouring tick (the ID stays unique: uniqueness never depends on the tick value).
    ``extract(epoch ...)`` (numeric) is exact forever but costs about 80 ns more per ID.
    """
    if layout.unit.ns is not None:
        unit_us = layout.unit.ns // 1_000
        epoch_us = layout.epoch_ns // 1_000
        q = f"date_part('epoch', {ts})"
        if unit_us % 1_000_000 == 0 and epoch_us % 1_000_000 == 0:
            unit_s, epoch_s = unit_us // 1_000_000, epoch_us // 1_000_000
            divided = f"({q} - {epoch_s})" if unit_s == 1 else f"(({q} - {epoch_s}) / {unit_s})"
            tick = f"floor{divided}::bigint"
        else:
            # floor((us - epoch_us) / unit_us) with only non-negative divisions for any time
            # after 1970: shift by k whole units so the numerator never goes below zero.
            k = -(-epoch_us // unit_us)
            offset = k * unit_us - epoch_us
            us = f"round({q} * 1000000)::bigint"
            tick = f"((({us} + {offset}) / {unit_us}) - {k})"
    else:
        months = layout.unit.months
        assert months is not None
        epoch = layout.epoch
        epoch_months = (epoch.year - 1970) * 12 + epoch.month - 1
        k = -(-epoch_months // months)
        offset = k * months - epoch_months
        # Whole months since 1970 from the UTC start of the month: month starts deviate from
        # a uniform grid of mean Gregorian months by under 3 days, so rounding is exact.
        m1970 = (
            f"round(date_part('epoch', date_trunc('month', {ts}, 'UTC')) / {MEAN_MONTH_S})::bigint"
        )
        tick = f"((({m1970} + {offset}) / {months}) - {k})"
    if not checked:  # for benchmarks/bench_postgres.py, which times the check on its own
        return f"({tick})"
    return f"(({tick})::@schema@.chronoid_tick_{layout.name})::bigint"


def _id_expr(layout: Layout, ts: str, first: str, second: str) -> str:
    """SQL for one Mode B ID: ``tick << (N+S) | suffix(v)``.

    ``first`` yields the sequence value v and is evaluated before ``second``, which must
    yield the same v: in ``chronoid_next`` they are ``nextval`` and ``currval`` (PostgreSQL
    evaluates an operator's arguments left to right), so v is drawn once and the function
    still inlines. The suffix is ``compose()``'s, with node = (base + lap * weyl) mod 2^N and
    lap = v >> S, folded into two constants: K0 = base * M_N, K1 = weyl * M_N (mod 2^N).
    """
    n, s, name = layout.node_bits, layout.sequence_bits, layout.name
    seq_part = f"((({first} & {_mask(s)}) * @MS:{name}@) & {_mask(s)})"
    if n:
        lap = f"(({second} >> {s}) & {_mask(n)})"
        node_part = f"((((({lap} * @K1:{name}@) + @K0:{name}@) & {_mask(n)})) << {s})"
        suffix = f"(({seq_part} | {node_part}) # @SALT:{name}@)"
    else:
        suffix = f"({seq_part} # @SALT:{name}@)"
    return f"(({_tick_expr(layout, ts)} << {n + s}) | {suffix})"


_DURABLE_COMMIT = (
    "current_setting('synchronous_commit') <> 'off'\n"
    "    OR set_config('synchronous_commit', 'on', true) IS NOT NULL"
)
"""SQL that is true, and makes the calling transaction's commit wait for its WAL flush.

With ``synchronous_commit = off`` the commit that carries a sequence's WAL record may be lost
in a crash, and the sequence restarts below values already handed out. ``set_config(...,
true)`` holds until the transaction ends, so it covers the COMMIT; a function-level ``SET``
clause would not (it reverts when the function returns, and it blocks inlining). Only
``off`` is raised: every other value already flushes locally, and ``remote_apply`` must not
be lowered to ``on``."""


def _case(cases: list[tuple[str, str]], fallback: str) -> str:
    lines = ["SELECT CASE variant"]
    lines += [f"  WHEN {_quote(name)} THEN\n    {expr}" for name, expr in cases]
    lines.append(f"  ELSE {fallback}")
    lines.append("END")
    return "\n".join(lines)


def _variant_rows() -> str:
    rows = []
    for name in SQL_VARIANTS:
        lay = VARIANTS[name]
        unit_us = "NULL" if lay.unit.ns is None else str(lay.unit.ns // 1_000)
        unit_months = "NULL" if lay.unit.months is None else str(lay.unit.months)
        rows.append(
            f"  ({_quote(name)}, {lay.width}, {str(lay.signed).lower()}, "
            f"{_quote(lay.unit.code)}, {unit_us}, {unit_months}, "
            f"{lay.epoch_ns // 1_000}, {lay.timestamp_bits}, {lay.node_bits}, "
            f"{lay.sequence_bits}, {str(name in MODE_B_VARIANTS).lower()})"
        )
    return ",\n".join(rows)


def _dynamic_functions() -> str:
    """The per-variant inlinable functions, as a template the install DO block fills in."""
    layouts = [VARIANTS[name] for name in MODE_B_VARIANTS]
    for lay in layouts:
        # Plain bigint arithmetic below needs (v mod 2^b) * (M mod 2^b) < 2^63.
        assert lay.node_bits <= 31 and lay.sequence_bits <= 31, lay.name
    unsupported = "@schema@.chronoid__unsupported(variant)"
    tick = _case([(lay.name, _tick_expr(lay, "at")) for lay in layouts], unsupported)
    make = _case(
        [(lay.name, _id_expr(lay, "at", "value", "value")) for lay in layouts], unsupported
    )
    nxt = _case(
        [
            (
                lay.name,
                _id_expr(
                    lay,
                    "clock_timestamp()",
                    f"nextval('@schema@.chronoid_seq_{lay.name}'::regclass)",
                    f"currval('@schema@.chronoid_seq_{lay.name}'::regclass)",
                ),
            )
            for lay in layouts
        ],
        unsupported,
    )
    nxt = f"SELECT CASE WHEN {_DURABLE_COMMIT} THEN (\n{nxt.removeprefix('SELECT ')}\n) END"
    return f"""\
CREATE OR REPLACE FUNCTION @schema@.chronoid_tick(variant text, at timestamptz)
RETURNS bigint LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
{tick}
$fn$;
COMMENT ON FUNCTION @schema@.chronoid_tick(text, timestamptz) IS
  'The timestamp field (ticks of the variant''s unit since its epoch, UTC) of an instant.';

CREATE OR REPLACE FUNCTION @schema@.chronoid_make(variant text, at timestamptz, value bigint)
RETURNS bigint LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
{make}
$fn$;
COMMENT ON FUNCTION @schema@.chronoid_make(text, timestamptz, bigint) IS
  'The ID chronoid_next would make at instant "at" from sequence value "value".';

CREATE OR REPLACE FUNCTION @schema@.chronoid_next(variant text)
RETURNS bigint LANGUAGE sql VOLATILE PARALLEL UNSAFE AS $fn$
{nxt}
$fn$;
COMMENT ON FUNCTION @schema@.chronoid_next(text) IS
  'A new Mode B ID: clock_timestamp() tick, suffix from the variant''s sequence. No hot row. '
  'Sets synchronous_commit from off to on for the calling transaction (crash safety).';

CREATE OR REPLACE FUNCTION @schema@.chronoid_next32(variant text)
RETURNS integer LANGUAGE sql VOLATILE PARALLEL UNSAFE AS $fn$
SELECT CASE WHEN variant LIKE 'chrono32%'
  THEN @schema@.chronoid_next(variant)::integer
  ELSE @schema@.chronoid__unsupported(variant, true)::integer
END
$fn$;
COMMENT ON FUNCTION @schema@.chronoid_next32(text) IS
  'chronoid_next for chrono32* variants, typed integer for 32-bit columns.';
"""


def _basket_array() -> str:
    values = [str(_signed64(b)) for b in BASKET]
    lines = [", ".join(values[i : i + 4]) for i in range(0, len(values), 4)]
    return "ARRAY[\n  " + ",\n  ".join(lines) + "\n]::bigint[]"


_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_TEMPLATE_NOTE = "--# "
"""Template lines that start with this are notes for whoever edits the template, left out."""


def _template(name: str) -> str:
    """A SQL template shipped beside this module, without its leading notes."""
    text = (resources.files("chronoid.postgres") / name).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith(_TEMPLATE_NOTE):
        del lines[0]
    return "".join(lines)


def _fill(template: str, values: dict[str, str]) -> str:
    """``template`` with every ``{{name}}`` replaced by ``values[name]``; all must be used."""
    used = set(_PLACEHOLDER.findall(template))
    if used != set(values):
        raise AssertionError(f"template placeholders {sorted(used)} != values {sorted(values)}")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def build_script() -> str:
    """The full install script (what ``chronoid pg sql`` prints)."""
    sequences = "\n".join(
        f"CREATE SEQUENCE IF NOT EXISTS chronoid_seq_{name} AS bigint NO CYCLE;"
        for name in MODE_B_VARIANTS
    )
    domains = []
    for name in MODE_B_VARIANTS:
        lay = VARIANTS[name]
        domains.append(
            "DO $d$ BEGIN\n"
            f"  CREATE DOMAIN chronoid_tick_{name} AS bigint\n"
            "    CONSTRAINT clock_outside_epoch_and_expiry\n"
            f"    CHECK (VALUE >= 0 AND VALUE <= {lay.max_timestamp});\n"
            "EXCEPTION WHEN duplicate_object THEN NULL;\n"
            "END $d$;"
        )
    values = {
        "script_version": str(SCRIPT_VERSION),
        "variant_rows": _variant_rows(),
        "sequences": sequences,
        "domains": "\n".join(domains),
        "min_suffix_bits": str(MIN_SUFFIX_BITS),
        "chrono32_variants": ", ".join(n for n in MODE_B_VARIANTS if n.startswith("chrono32")),
        "mode_b_variants": ", ".join(MODE_B_VARIANTS),
        "basket_array": _basket_array(),
        "golden_64": str(_signed64(GOLDEN_64)),
        "us_per_day": str(_US_PER_DAY),
        "dynamic_functions": _dynamic_functions(),
    }
    return _fill(_template("install_template.sql"), values)


def build_uninstall_script(*, cascade: bool = False) -> str:
    """SQL that drops every object the install script creates (in the current schema).

    Without ``cascade``, PostgreSQL refuses while a column default still calls
    ``chronoid_next``; with it, those defaults go too.
    """
    how = " CASCADE" if cascade else ""
    functions = [
        "chronoid_next32(text)",
        "chronoid_next(text)",
        "chronoid_make(text, timestamptz, bigint)",
        "chronoid_tick(text, timestamptz)",
        "chronoid_decode(bigint, text)",
        "chronoid_compose(text, bigint, bigint, bigint, bigint, integer, boolean)",
        "chronoid__unsupported(text, boolean)",
        "chronoid__raise(text)",
        "chronoid_mix(bigint, integer, integer, bigint)",
        "chronoid_weyl_step_constant(integer)",
        "chronoid_multiplier(integer, integer)",
        "chronoid_version()",
    ]
    lines = [f"DROP FUNCTION IF EXISTS {f}{how};" for f in functions]
    lines.append(f"DROP TYPE IF EXISTS chronoid_parts{how};")
    lines += [f"DROP DOMAIN IF EXISTS chronoid_tick_{n}{how};" for n in MODE_B_VARIANTS]
    lines += [f"DROP SEQUENCE IF EXISTS chronoid_seq_{n}{how};" for n in MODE_B_VARIANTS]
    lines.append(f"DROP TABLE IF EXISTS chronoid_variants{how};")
    lines.append(f"DROP TABLE IF EXISTS chronoid_config{how};")
    return "\n".join(lines) + "\n"


def main() -> int:
    """Print the install script (used to regenerate the committed ``chronoid.sql``)."""
    sys.stdout.write(build_script())
    return 0


if __name__ == "__main__":
    sys.exit(main())
