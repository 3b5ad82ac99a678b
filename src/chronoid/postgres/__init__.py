"""Mode B inside PostgreSQL: ``chronoid_next(variant)`` as a plain SQL script, and its installer.

``chronoid pg install --dsn DSN`` applies the script; ``chronoid pg sql`` prints it for a
migration tool. See ``docs/postgres.md`` for the design, the uniqueness guarantee and the
benchmarks.
"""
