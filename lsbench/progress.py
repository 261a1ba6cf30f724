"""The progress bar of long loops (ERF images, evaluation batches): on stderr, gone when done, off in tests."""
from __future__ import annotations

__all__ = ["progress_bar"]


def progress_bar(enabled: bool = True):
    """A rich Progress with description, bar, done/total and time left; ``enabled=False`` draws nothing."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    disable=not enabled, transient=True)
