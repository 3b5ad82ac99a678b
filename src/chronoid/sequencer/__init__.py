"""The sequencer service (``chronoid serve``): durable, RESP-compatible sequence numbers.

Layout (after mini-redis): :mod:`.protocol` (sans-I/O parser and reply encoder),
:mod:`.commands` (dispatch), :mod:`.store` (durable watermarks), :mod:`.sequences` (counters
and reservations), :mod:`.server` (asyncio), :mod:`.client` (sync client and range cache),
:mod:`.metrics` (Prometheus), :mod:`.cli`.
"""
