"""The report writer as a listener of the run's events: it writes on RunFinished(result).

The engine never calls the writer: it emits RunFinished carrying the Result, and this
listener (subscribed before the console, so the reports exist when the verdict line
names their folder) writes result.json, junit.xml and report.html.
"""

from __future__ import annotations

from pathlib import Path

from chaos.observe.events import Event, RunFinished
from chaos.report.mask import Masker
from chaos.report.writer import write_reports


class ReportWriter:
    """Writes a run's reports into ``RunFinished.report_dir`` when the run finishes."""

    def __init__(self, masker: Masker | None = None) -> None:
        self.masker = masker
        self.written: dict[str, Path] = {}

    def __call__(self, event: Event) -> None:
        if not isinstance(event, RunFinished) or event.result is None:
            return
        self.written = write_reports(event.result, Path(event.report_dir), event.records,
                                     event.t0, masker=self.masker)
