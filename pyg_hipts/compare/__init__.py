"""Side-by-side comparisons of potentials on the same data, split and budget (``pyg-hipts
compare``): a worker process per model, and the report."""

from pyg_hipts.compare.report import ModelResult, write_report
from pyg_hipts.compare.runner import read_comparison

__all__ = ["ModelResult", "read_comparison", "write_report"]
