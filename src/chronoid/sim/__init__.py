"""The evidence suite (``chronoid sim``): every spec 002 claim simulated or measured.

Each scenario returns a :class:`~chronoid.sim.model.ScenarioResult` (claim, method,
measured figures, verdict, plots); :mod:`chronoid.sim.report` turns a run into
``report.md`` plus PNG plots. Needs the ``sim`` extra (numpy, matplotlib).
"""

from chronoid.sim.model import Context, Plot, ScenarioResult, Series, Table, Verdict

__all__ = ["Context", "Plot", "ScenarioResult", "Series", "Table", "Verdict"]
