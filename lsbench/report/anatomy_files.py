"""The files of a cost anatomy run: its frames as CSV and Markdown, and the roofline figure."""
from __future__ import annotations

import os
from pathlib import Path

from lsbench.anatomy import by_part, by_stage
from lsbench.anatomy_job import AnatomyRun
from lsbench.options import writable_dir
from lsbench.roofline import ceilings_frame

from .render import render_frame
from .roofline_plot import plot_roofline

__all__ = ["save_anatomy"]


def save_anatomy(run: AnatomyRun, out: str | os.PathLike[str]) -> list[Path]:
    """Write the frames (CSV + Markdown) and the roofline figure (PNG + SVG) into ``out``; returns the paths."""
    out = writable_dir(out)
    parts = run.parts
    frames = {"anatomy_parts": parts, "anatomy_by_part": by_part(parts), "anatomy_by_stage": by_stage(parts),
              "anatomy_totals": run.totals, "roofline_ceilings": ceilings_frame(run.ceilings)}
    written = []
    for stem, frame in frames.items():
        for fmt in ("csv", "md"):
            path = out / f"{stem}.{fmt}"
            path.write_text(render_frame(frame, fmt) + ("\n" if fmt == "md" else ""))
            written.append(path)
    s = run.settings
    title = (f"{s.device}, {s.threads} thread{'s' if s.threads > 1 else ''}, batch {s.batch}, {s.dtype}"
             if s.device == "cpu" else f"{s.device}, batch {s.batch}, {s.dtype}")
    written += plot_roofline(by_part(parts), run.ceilings, out / f"roofline_{s.device}", title=title)
    return written
