"""Build ``chronoid.sql`` from the Python definitions, so SQL and Python cannot drift.

The script is plain SQL (no C extension): tables, sequences, domains and functions. Every
number in it that Python also knows (the multiplier basket, the golden Weyl step, each
variant's bit widths, unit and epoch) is written here from :mod:`chronoid.mix` and
:mod:`chronoid.variants`; ``tests/postgres`` checks that the committed file equals what this
module produces. Regenerate with::

    python -m chronoid.postgres.sqlgen > src/chronoid/postgres/chronoid.sql

The hot path (``chronoid_next``) is an inlinable ``LANGUAGE sql`` function. Its per-install
constants (mixed base node, salt, multipliers) are baked into its text at install time by a
``DO`` block that replaces ``@TOKEN@`` placeholders, because an inlined function cannot read
a table. See ``docs/postgres.md`` for the design and the uniqueness guarantee.
"""

from __future__ import annotations

import sys

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

SCRIPT_VERSION = 1
"""Version of the SQL objects; stored in ``chronoid_config.version`` at install."""

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
  'A new Mode B ID: clock_timestamp() tick, suffix from the variant''s sequence. No hot row.';

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


def build_script() -> str:
    """The full install script (what ``chronoid pg sql`` prints)."""
    mode_b_list = ", ".join(MODE_B_VARIANTS)
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
    return f"""\
-- chronoid {SCRIPT_VERSION}: time-ordered IDs made inside PostgreSQL (Mode B, spec 002 §3.2).
-- Generated by chronoid.postgres.sqlgen from the Python definitions; do not edit.
-- Plain SQL, no C extension: apply with `chronoid pg install --dsn DSN` or
-- `psql -1 -f chronoid.sql` (one transaction). Idempotent: running it again keeps the
-- install's node, salt and multiplier and every sequence's position. Needs PostgreSQL 13+.
-- Objects go into the current schema (the first of search_path); names start with chronoid_.

CREATE TABLE IF NOT EXISTS chronoid_config (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version integer NOT NULL,
    node_seed bigint NOT NULL CHECK (node_seed >= 0),
    salt_seed bigint NOT NULL CHECK (salt_seed >= 0),
    multiplier_index integer NOT NULL CHECK (multiplier_index BETWEEN 0 AND 63),
    installed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE chronoid_config IS
  'Per-install Mode B settings, written once at install and never per ID (no hot row). '
  'Changing them after IDs exist voids the uniqueness guarantee.';

-- Random per install: a variant with N node bits and S sequence bits uses the low N bits of
-- node_seed as its base node and the low N+S bits of salt_seed as its salt.
INSERT INTO chronoid_config (version, node_seed, salt_seed, multiplier_index)
SELECT {SCRIPT_VERSION},
       ('x' || substr(md5(gen_random_uuid()::text), 1, 16))::bit(64)::bigint
         & 9223372036854775807,
       ('x' || substr(md5(gen_random_uuid()::text), 1, 16))::bit(64)::bigint
         & 9223372036854775807,
       get_byte(uuid_send(gen_random_uuid()), 0) & 63
ON CONFLICT (singleton) DO NOTHING;

DO $v$
DECLARE installed integer;
BEGIN
  SELECT version INTO installed FROM chronoid_config;
  IF installed > {SCRIPT_VERSION} THEN
    RAISE EXCEPTION 'chronoid: version % is installed in schema %, this script is version %; '
      'refusing to downgrade', installed, current_schema(), {SCRIPT_VERSION}
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE chronoid_config SET version = {SCRIPT_VERSION};
END $v$;

CREATE TABLE IF NOT EXISTS chronoid_variants (
    name text PRIMARY KEY,
    width integer NOT NULL,
    signed boolean NOT NULL,
    unit text NOT NULL,
    unit_us bigint,
    unit_months integer,
    epoch_us bigint NOT NULL,
    timestamp_bits integer NOT NULL,
    node_bits integer NOT NULL,
    sequence_bits integer NOT NULL,
    mode_b boolean NOT NULL
);
COMMENT ON TABLE chronoid_variants IS
  'The layouts SQL knows (from chronoid.variants): widths in bits, unit in us or months, '
  'epoch in us since 1970 UTC; mode_b marks those chronoid_next serves.';
TRUNCATE chronoid_variants;
INSERT INTO chronoid_variants VALUES
{_variant_rows()};

{sequences}

{chr(10).join(domains)}

DO $t$ BEGIN
  CREATE TYPE chronoid_parts AS (
      variant text, id bigint, "time" timestamptz, tick bigint, node bigint, sequence bigint
  );
EXCEPTION WHEN duplicate_object THEN NULL;
END $t$;

CREATE OR REPLACE FUNCTION chronoid_version() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT {SCRIPT_VERSION} $fn$;

-- Error helpers. They only ever raise, so IMMUTABLE is honest, and it keeps the STABLE and
-- IMMUTABLE SQL functions that call them in an ELSE branch inlinable.
CREATE OR REPLACE FUNCTION chronoid__raise(message text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $fn$
BEGIN
  RAISE EXCEPTION '%', message USING ERRCODE = 'invalid_parameter_value';
END
$fn$;

CREATE OR REPLACE FUNCTION chronoid__unsupported(variant text, only32 boolean DEFAULT false)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT chronoid__raise(format(
  'chronoid: variant %L is not served by chronoid_next%s: %s; allowed: %s',
  variant, CASE WHEN only32 THEN '32' ELSE '' END,
  CASE
    WHEN variant LIKE 'uchrono%' THEN
      'unsigned variants do not fit signed integer/bigint columns, use the chrono* form'
    WHEN variant IN ('chrono32bs', 'uchrono32bs') THEN
      'it has no node or sequence bits, so every ID of a 2-second tick would be equal'
    WHEN only32 AND variant IN (SELECT name FROM chronoid_variants WHERE mode_b) THEN
      'it is not a 32-bit variant, use chronoid_next'
    WHEN variant IN (SELECT name FROM chronoid_variants WHERE NOT mode_b) THEN
      'fewer than 2^{MIN_SUFFIX_BITS} IDs per tick: a session stalled between its clock read and '
      || 'nextval() could repeat an ID; use a coarser variant or Mode B/C in the application'
    ELSE 'unknown variant'
  END,
  CASE WHEN only32 THEN '{", ".join(n for n in MODE_B_VARIANTS if n.startswith("chrono32"))}'
       ELSE '{mode_b_list}' END))
$fn$ SET search_path FROM CURRENT;

-- (BASKET[idx mod 64] >> (64 - bits)) | 1, chronoid.mix.multiplier: a logical shift of the
-- unsigned basket entry, which bigint holds in two's complement.
CREATE OR REPLACE FUNCTION chronoid_multiplier(bits integer, idx integer) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE
  WHEN bits < 0 OR bits > 63 THEN
    chronoid__raise('chronoid: field width must be 0..63 bits, got ' || bits::text)
  WHEN bits = 0 THEN 1::bigint
  ELSE ((({_basket_array()})[(idx & 63) + 1] >> (64 - bits))
        & (9223372036854775807 >> (63 - bits))) | 1
END
$fn$;

-- (GOLDEN_64 >> (64 - bits)) | 1, chronoid.mix.weyl_step_constant.
CREATE OR REPLACE FUNCTION chronoid_weyl_step_constant(bits integer) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE
  WHEN bits < 0 OR bits > 63 THEN
    chronoid__raise('chronoid: field width must be 0..63 bits, got ' || bits::text)
  WHEN bits = 0 THEN 0::bigint
  ELSE (({_signed64(GOLDEN_64)}::bigint >> (64 - bits)) & (9223372036854775807 >> (63 - bits))) | 1
END
$fn$;

-- ((value * M) XOR salt) mod 2^bits, chronoid.mix.mix. Fields up to 31 bits multiply in
-- bigint without overflow ((v mod 2^b) * (M mod 2^b) < 2^62); wider ones go through numeric.
CREATE OR REPLACE FUNCTION chronoid_mix(value bigint, bits integer, idx integer, salt bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT CASE
  WHEN bits < 0 OR bits > 63 THEN
    chronoid__raise('chronoid: field width must be 0..63 bits, got ' || bits::text)
  WHEN bits <= 31 THEN
    (((value & (9223372036854775807 >> (63 - bits))) * chronoid_multiplier(bits, idx)) # salt)
      & (9223372036854775807 >> (63 - bits))
  ELSE
    (((value::numeric * chronoid_multiplier(bits, idx)::numeric)
       % (2::numeric ^ bits))::bigint # salt) & (9223372036854775807 >> (63 - bits))
END
$fn$;

-- The pure reference: chronoid.mix.compose(layout, tick, node, sequence, salt, idx,
-- mix_node=...), bit for bit. salt is an (N+S)-bit value: its low S bits salt the sequence.
CREATE OR REPLACE FUNCTION chronoid_compose(
    variant text, tick bigint, node bigint, sequence bigint, salt bigint, idx integer,
    mix_node boolean DEFAULT true
) RETURNS bigint LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE AS $fn$
DECLARE v chronoid_variants;
BEGIN
  SELECT * INTO v FROM chronoid_variants WHERE name = variant;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'chronoid: unknown variant % (allowed: %)', quote_literal(variant),
      (SELECT string_agg(name, ', ' ORDER BY name) FROM chronoid_variants)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF tick < 0 OR tick >= (1::bigint << v.timestamp_bits) THEN
    RAISE EXCEPTION 'chronoid: %: timestamp % outside 0..%', variant, tick,
      (1::bigint << v.timestamp_bits) - 1 USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF node < 0 OR node >= (1::bigint << v.node_bits) THEN
    RAISE EXCEPTION 'chronoid: %: node % outside 0..%', variant, node,
      (1::bigint << v.node_bits) - 1 USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF sequence < 0 OR sequence >= (1::bigint << v.sequence_bits) THEN
    RAISE EXCEPTION 'chronoid: %: sequence % outside 0..%', variant, sequence,
      (1::bigint << v.sequence_bits) - 1 USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN (tick << (v.node_bits + v.sequence_bits))
    | (CASE WHEN mix_node THEN chronoid_mix(node, v.node_bits, idx, salt >> v.sequence_bits)
            ELSE node END << v.sequence_bits)
    | chronoid_mix(sequence, v.sequence_bits, idx, salt);
END
$fn$ SET search_path FROM CURRENT;

-- An ID taken apart, as chronoid.layout.Layout.unpack: raw (mixed) node and sequence fields
-- and the UTC start of its tick.
CREATE OR REPLACE FUNCTION chronoid_decode(id bigint, variant text) RETURNS chronoid_parts
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
  v chronoid_variants;
  t bigint;
  us bigint;
  result chronoid_parts;
BEGIN
  SELECT * INTO v FROM chronoid_variants WHERE name = variant;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'chronoid: unknown variant % (allowed: %)', quote_literal(variant),
      (SELECT string_agg(name, ', ' ORDER BY name) FROM chronoid_variants)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF id < 0 OR id > 9223372036854775807 >> (63 - v.timestamp_bits - v.node_bits
                                            - v.sequence_bits) THEN
    RAISE EXCEPTION 'chronoid: %: ID % outside 0..%', variant, id,
      9223372036854775807 >> (63 - v.timestamp_bits - v.node_bits - v.sequence_bits)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  t := id >> (v.node_bits + v.sequence_bits);
  IF v.unit_us IS NOT NULL THEN
    us := v.epoch_us + t * v.unit_us;
    result."time" := (timestamp '1970-01-01' + make_interval(
        days => (us / {_US_PER_DAY})::integer,
        secs => ((us % {_US_PER_DAY}) / 1000000.0)::double precision)) AT TIME ZONE 'UTC';
  ELSE
    result."time" := (to_timestamp(v.epoch_us / 1000000) AT TIME ZONE 'UTC'
        + make_interval(months => (t * v.unit_months)::integer)) AT TIME ZONE 'UTC';
  END IF;
  result.variant := variant;
  result.id := id;
  result.tick := t;
  result.node := (id >> v.sequence_bits) & ((1::bigint << v.node_bits) - 1);
  result.sequence := id & ((1::bigint << v.sequence_bits) - 1);
  RETURN result;
END
$fn$ SET search_path FROM CURRENT;

-- Bake this install's constants into the inlinable per-variant functions. They cannot read
-- chronoid_config per call (an inlined SQL function has no FROM), and must not write it.
DO $bake$
DECLARE
  cfg chronoid_config;
  v record;
  mn bigint;
  node_mask bigint;
  body text := $template$
{_dynamic_functions()}$template$;
BEGIN
  SELECT * INTO cfg FROM chronoid_config;
  FOR v IN SELECT * FROM chronoid_variants WHERE mode_b ORDER BY name LOOP
    node_mask := (1::bigint << v.node_bits) - 1;
    mn := chronoid_multiplier(v.node_bits, cfg.multiplier_index);
    body := replace(body, '@MS:' || v.name || '@',
        chronoid_multiplier(v.sequence_bits, cfg.multiplier_index)::text);
    body := replace(body, '@K0:' || v.name || '@',
        (((cfg.node_seed & node_mask) * mn) & node_mask)::text);
    body := replace(body, '@K1:' || v.name || '@',
        ((chronoid_weyl_step_constant(v.node_bits) * mn) & node_mask)::text);
    body := replace(body, '@SALT:' || v.name || '@',
        (cfg.salt_seed & ((1::bigint << (v.node_bits + v.sequence_bits)) - 1))::text);
  END LOOP;
  body := replace(body, '@schema@', quote_ident(current_schema()));
  IF body LIKE '%@%' THEN
    RAISE EXCEPTION 'chronoid: unfilled placeholder in generated functions';
  END IF;
  EXECUTE body;
END
$bake$;

-- Self-check on this server: chronoid_next draws v with nextval and reads it again with
-- currval, relying on PostgreSQL evaluating an operator's left argument first. If a server
-- ever evaluated them the other way round, the suffix would not be make()'s: refuse to
-- install rather than risk duplicates. Uses one value of the chrono64s sequence.
DO $check$
DECLARE
  made bigint;
  v bigint;
BEGIN
  made := chronoid_next('chrono64s');
  v := currval('chronoid_seq_chrono64s');
  IF made & 1073741823 <> chronoid_make('chrono64s', clock_timestamp(), v) & 1073741823 THEN
    RAISE EXCEPTION 'chronoid: self-check failed: chronoid_next does not match chronoid_make '
      'for sequence value % on this server; not installing', v
      USING ERRCODE = 'internal_error';
  END IF;
END
$check$;
"""


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
