"""The append-only results store: one JSON record per line in <directory>/results.jsonl.

Appends are single O_APPEND writes under an exclusive flock, followed by fsync, so parallel
writers never interleave and a killed writer leaves at worst one truncated final line, which
readers skip (and count) and the next writer fences off with a newline. Every batch carries
an id and its size, so a resumed sweep re-measures an item whose batch was cut short.
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from lsbench.errors import LsbenchError
from lsbench.settings import ProfileSettings

if TYPE_CHECKING:
    import pandas as pd

SOURCES = ("measured", "reported")
RESULTS_FILE = "results.jsonl"
BASE_COLUMNS = ["model", "metric", "value", "unit", "source", "counter", "settings_key", "job_key", "partial",
                "time", "fingerprint", "cpu_model", "gpu_name", "torch_version", "hardware", "runtime"]


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Record:
    """One number about one model, with everything needed to interpret and reproduce it.

    `stats` may be given as a TimingStats and `settings` as a ProfileSettings; both are stored
    as plain dicts (and settings_key is filled from the settings when left empty).
    `batch_id`/`batch_size` are set by ResultsStore.append to detect a batch cut short.
    """

    model: str
    metric: str
    value: float
    unit: str
    stats: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    settings_key: str = ""
    fingerprint: dict[str, Any] = field(default_factory=dict)
    source: str = "measured"
    counter: str | None = None
    time: str = field(default_factory=_utc_now)
    extra: dict[str, Any] = field(default_factory=dict)
    batch_id: str | None = None
    batch_size: int | None = None
    # what a resumed job looks for: the settings' key plus what was measured (lsbench.profile.job_key);
    # empty for records written outside a job, which are then found by settings_key
    job_key: str = ""
    # progress towards a job (e.g. one timing round) that does not by itself complete it
    partial: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.settings, ProfileSettings):
            if not self.settings_key:
                self.settings_key = self.settings.key()
            self.settings = self.settings.as_dict()
        if dataclasses.is_dataclass(self.stats) and not isinstance(self.stats, type):
            self.stats = dataclasses.asdict(self.stats)
        if self.source not in SOURCES:
            raise ValueError(f"record source must be one of {SOURCES}, got {self.source!r}")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise TypeError(f"record value must be a number, got {type(self.value).__name__}")
        self.value = float(self.value)
        if not math.isfinite(self.value):
            raise ValueError(f"record value must be finite, got {self.value}")

    def to_json(self) -> str:
        """One line of strict JSON (no NaN/Infinity, so any JSON reader can load the file)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, line: str | bytes) -> "Record":
        """Parse one line; fields unknown to this version are ignored (forward compatibility)."""
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("a record line must hold a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class ResultsStore:
    """Append-only JSONL store of Records in `directory`, safe for parallel and killed writers."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / RESULTS_FILE
        self.skipped_lines = 0  # corrupt lines seen by the last read
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
        except OSError as exc:
            raise LsbenchError(
                f"cannot write results to {self.path}: {exc.strerror or exc}"
            ) from None

    def append(self, records: Sequence[Record]) -> list[Record]:
        """Durably append `records` as one batch; returns them stamped with the batch id/size."""
        if not records:
            return []
        batch_id = uuid.uuid4().hex
        stamped = [dataclasses.replace(r, batch_id=batch_id, batch_size=len(records)) for r in records]
        data = "".join(r.to_json() + "\n" for r in stamped).encode("utf-8")
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                # A writer was killed mid-line: end that line so it stays one skippable line
                # instead of swallowing the first record of this batch.
                data = b"\n" + data
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)  # also releases the lock
        return stamped

    def _read_lines(self) -> list[bytes]:
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            return []
        with handle:  # closing releases the lock
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH)  # never read a batch while it is being written
            return handle.read().split(b"\n")

    def records(self) -> list[Record]:
        """All readable records in file order; corrupt lines are skipped and counted."""
        out: list[Record] = []
        skipped = 0
        for line in self._read_lines():
            if not line.strip():
                continue
            try:
                out.append(Record.from_json(line))
            except (ValueError, TypeError):  # JSONDecodeError and UnicodeDecodeError included
                skipped += 1
        self.skipped_lines = skipped
        return out

    def completed(self) -> set[tuple[str, str]]:
        """(model, job key) pairs with at least one fully written batch that is not partial progress (the
        job key is ``job_key``, or ``settings_key`` for records written outside a job)."""
        return {(r.model, r.job_key or r.settings_key) for r in _complete(self.records()) if not r.partial}

    def frame(self) -> "pd.DataFrame":
        """Tidy table, one row per record; stats_*, settings_* and extra_* are flattened, and the
        ``hardware`` and ``runtime`` columns say what ran each measurement (:mod:`lsbench.query`)."""
        import pandas as pd

        from lsbench import query

        rows = []
        for r in self.records():
            fp = r.fingerprint or {}
            gpu = fp.get("gpu") or fp.get("cuda_device") or {}
            row: dict[str, Any] = {
                "model": r.model, "metric": r.metric, "value": r.value, "unit": r.unit,
                "source": r.source, "counter": r.counter, "settings_key": r.settings_key,
                "job_key": r.job_key or None, "partial": r.partial,
                "time": r.time, "fingerprint": fp, "cpu_model": fp.get("cpu_model"),
                "gpu_name": gpu.get("name") if isinstance(gpu, dict) else None,
                "torch_version": fp.get("torch_version"),
            }
            for prefix, values in (("stats", r.stats), ("settings", r.settings), ("extra", r.extra)):
                for name, value in (values or {}).items():
                    row[f"{prefix}_{name}"] = value
            rows.append(row)
        if not rows:
            return pd.DataFrame(columns=BASE_COLUMNS)
        frame = pd.DataFrame(rows)
        frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601", errors="coerce")
        frame["hardware"] = query.hardware(frame)
        frame["runtime"] = query.runtime(frame)
        return frame


def _complete(records: Iterable[Record]) -> list[Record]:
    """Records whose batch is fully present (records written without batch info count as whole)."""
    records = list(records)
    seen: dict[str, int] = {}
    for r in records:
        if r.batch_id is not None:
            seen[r.batch_id] = seen.get(r.batch_id, 0) + 1
    return [
        r for r in records
        if r.batch_id is None or r.batch_size is None or seen[r.batch_id] >= r.batch_size
    ]


def _default_key(item: Any) -> tuple[str, str]:
    """Key of a (model, settings) item, settings being a ProfileSettings or its key string."""
    try:
        model, settings = item
    except (TypeError, ValueError):
        raise TypeError(
            "run_sweep items must be (model, settings) pairs, or pass key=item -> (model, settings_key)"
        ) from None
    return str(model), settings.key() if isinstance(settings, ProfileSettings) else str(settings)


def run_sweep(
    items: Iterable[Any],
    measure: Callable[[Any], Sequence[Record]],
    store: ResultsStore,
    key: Callable[[Any], tuple[str, str]] = _default_key,
    on_skip: Callable[[Any], None] | None = None,
) -> list[Record]:
    """Measure every item not yet in `store`, storing each item's records as soon as it is done.

    `key(item)` gives (model, settings_key); an item is skipped when a complete batch with that
    key is stored. Each item's records are appended as one batch before the next item starts,
    so an interrupted sweep (Ctrl-C, SIGKILL) loses at most the item in progress, and a
    KeyboardInterrupt propagates once the finished items are on disk. Returns the new records.
    """
    finished: set[tuple[str, str]] = store.completed()
    new: list[Record] = []
    for item in items:
        item_key = key(item)
        if item_key in finished:
            if on_skip is not None:
                on_skip(item)
            continue
        records = list(measure(item))
        for r in records:
            if (r.model, r.job_key or r.settings_key) != item_key:
                raise ValueError(
                    f"measure returned a record for {(r.model, r.job_key or r.settings_key)} while measuring {item_key}:"
                    " resume could never recognise this item as done"
                )
        new.extend(store.append(records))
        if records:
            finished.add(item_key)
    return new


def open_results(directory: str | os.PathLike[str]) -> ResultsStore:
    """The store in ``directory`` for reading; a one-line error when there is nothing to read yet."""
    if not (Path(directory) / RESULTS_FILE).is_file():
        raise LsbenchError(f"no results in {directory}: run `lsbench profile --out {directory}` first")
    return ResultsStore(directory)
