"""Replay report: recorded data through the real pipeline, written up as HTML and CSV."""

from services.report.pipeline import ReportError, ReportOptions, run_pipeline
from services.report.progress import Progress
from services.report.render import ReportData, episodes_csv, render_html

__all__ = [
    "Progress",
    "ReportData",
    "ReportError",
    "ReportOptions",
    "episodes_csv",
    "render_html",
    "run_pipeline",
]
