"""`cortexgraph sweep`: many specs, settings and seeds as one Optuna study (file.py: the sweep file; study.py:
its trials, each a run folder; report.py: what they found)."""

from .file import Sweep, SweepFile, load_sweep
from .report import write_report
from .study import SweepError, open_study, run_sweep

__all__ = ["Sweep", "SweepError", "SweepFile", "load_sweep", "open_study", "run_sweep", "write_report"]
