"""The append-only results store: one JSON record per line in <directory>/results.jsonl.

Reading never writes: ``ResultsStore(directory)`` touches nothing, so a read-only store can be
read, and every line is checked against the Record schema on the way in; a bad line is skipped,
counted and reported (``read_warning()``, ``check()``) while every good line is kept.

Writing is all or nothing per batch. An append runs under an exclusive flock: it first removes
what a killed writer may have left at the end of the file (a partial last line, an incomplete last
batch), then writes the batch and fsyncs; when the write fails (disk full, file size limit) it
truncates the file back to its size before the write and raises one line. Every batch carries an
id and its size, so a resumed sweep re-measures an item whose batch was cut short.

Two sweeps on one store coordinate through flocks in ``<directory>/.locks``: ``job_lock(key)``
lets one sweep per job key measure at a time, and ``measuring()`` marks a process that measures
(and tells whether another one already does: they compete for the same cores).
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import functools
import hashlib
import json
import math
import os
import re
import shlex
import types
import typing
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from lsbench.errors import LsbenchError
from lsbench.settings import ProfileSettings

if TYPE_CHECKING:
    import pandas as pd

SOURCES = ("measured", "reported")
RESULTS_FILE = "results.jsonl"
LOCK_DIR = ".locks"
MEASURING_LOCK = "measuring"
BASE_COLUMNS = ["model", "metric", "value", "unit", "source", "counter", "settings_key", "job_key", "partial",
                "time", "fingerprint", "cpu_model", "gpu_name", "torch_version", "hardware", "runtime"]

_TAIL_CHUNK = 1 << 16
_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a ProfileSettings annotation (ints pass as floats; lists as tuples)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return _is_int(value)
    if hint is float:
        return _is_number(value) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if typing.get_origin(hint) is tuple:
        (item, *_rest) = typing.get_args(hint) or (Any,)
        return isinstance(value, (list, tuple)) and all(_matches(v, item) for v in value)
    return True  # an annotation this checker does not know: accept rather than drop data


@functools.lru_cache(maxsize=1)
def _settings_types() -> dict[str, Any]:
    try:
        return typing.get_type_hints(ProfileSettings)
    except (NameError, TypeError):  # an annotation that cannot be resolved at run time: check fields by name only
        return {}


def _settings_problem(settings: dict[str, Any]) -> str | None:
    """Why stored settings would break readers, or None. Known fields must have their type (the
    tables filter and group on them); fields unknown to this version are kept (forward compatible)."""
    types_by_name = _settings_types()
    for name, value in settings.items():
        hint = types_by_name.get(name)
        if hint is not None and not _matches(value, hint):
            return f"settings.{name} has the wrong type ({_type_name(value)})"
    return None


def _record_problem(r: "Record") -> tuple[type[Exception], str] | None:
    """The first schema violation of a record as (exception type, reason), or None when it is valid."""
    if not isinstance(r.model, str) or not r.model:
        return TypeError, f"model must be a non-empty string, got {_type_name(r.model)}"
    for name in ("metric", "unit", "settings_key", "time"):
        if not isinstance(getattr(r, name), str):
            return TypeError, f"{name} must be a string, got {_type_name(getattr(r, name))}"
    if not _is_number(r.value):
        return TypeError, f"value must be a number, got {_type_name(r.value)}"
    if not math.isfinite(r.value):
        return ValueError, f"value must be finite, got {r.value}"
    if r.source not in SOURCES:
        return ValueError, f"source must be one of {SOURCES}, got {r.source!r}"
    for name in ("stats", "settings", "fingerprint", "extra"):
        if not isinstance(getattr(r, name), dict):
            return TypeError, f"{name} must be an object, got {_type_name(getattr(r, name))}"
    for name, value in r.stats.items():
        if value is not None and not (_is_number(value) and math.isfinite(value)):
            return TypeError, f"stats.{name} must be a finite number or null, got {_type_name(value)}"
    problem = _settings_problem(r.settings)
    if problem:
        return TypeError, problem
    for name in ("counter", "batch_id"):
        if getattr(r, name) is not None and not isinstance(getattr(r, name), str):
            return TypeError, f"{name} must be a string or null, got {_type_name(getattr(r, name))}"
    if r.batch_size is not None and not (_is_int(r.batch_size) and r.batch_size > 0):
        return TypeError, f"batch_size must be a positive integer or null, got {r.batch_size!r}"
    return None


@dataclass
class Record:
    """One number about one model, with everything needed to interpret and reproduce it.

    `stats` may be given as a TimingStats and `settings` as a ProfileSettings; both are stored
    as plain dicts (and settings_key is filled from the settings when left empty).
    `batch_id`/`batch_size` are set by ResultsStore.append to detect a batch cut short.
    Every field is type-checked on construction, so a record read back is one the readers can use.
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
        problem = _record_problem(self)
        if problem:
            kind, reason = problem
            raise kind(reason)
        self.value = float(self.value)

    def to_json(self) -> str:
        """One line of strict JSON (no NaN/Infinity, so any JSON reader can load the file)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, line: str | bytes) -> "Record":
        """Parse and check one line; fields unknown to this version are ignored (forward compatibility).

        Raises ValueError or TypeError whose message is the reason, ready for `results check`."""
        try:
            data = json.loads(line)
        except UnicodeDecodeError:
            raise ValueError("not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(data, dict):
            raise ValueError(f"a record must be a JSON object, got {_type_name(data)}")
        fields = dataclasses.fields(cls)
        missing = [f.name for f in fields if f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING and f.name not in data]
        if missing:
            raise ValueError(f"missing field(s): {', '.join(missing)}")
        names = {f.name for f in fields}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class StoreCheck:
    """What `ResultsStore.check()` found: good records, bad lines and batches cut short."""

    path: Path
    records: int
    bad: list[tuple[int, str]]  # (1-based line number, reason)
    incomplete: list[tuple[int, str]]  # (line of the batch's first record, description)

    @property
    def ok(self) -> bool:
        return not self.bad


class ResultsStore:
    """Append-only JSONL store of Records in `directory`, safe for parallel and killed writers.

    The constructor does no I/O: reading works on a read-only store, and the directory and file
    are created at the first append (or at once by `open_for_writing`, to fail before measuring).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / RESULTS_FILE
        self.bad_lines: list[tuple[int, str]] = []  # (line, reason) of the lines the last read skipped
        self.incomplete_batches: list[tuple[int, str]] = []

    @classmethod
    def open_for_writing(cls, directory: str | os.PathLike[str]) -> "ResultsStore":
        """A store whose directory and file exist and are writable now (LsbenchError otherwise)."""
        store = cls(directory)
        os.close(store._open_for_append())
        return store

    # ----------------------------------------------------------------------------------- reading

    @property
    def skipped_lines(self) -> int:
        """How many lines the last read skipped as bad."""
        return len(self.bad_lines)

    @property
    def first_bad_line(self) -> int | None:
        """1-based number of the first line the last read skipped, or None."""
        return self.bad_lines[0][0] if self.bad_lines else None

    def read_warning(self) -> str | None:
        """One line for a command to print when the last read skipped bad records, else None."""
        if not self.bad_lines:
            return None
        line, reason = self.bad_lines[0]
        return (f"warning: skipped {len(self.bad_lines)} bad record(s) in {self.path} (first at line {line}: "
                f"{reason}); run `lsbench results check {shlex.quote(str(self.directory))}`")

    def _read_bytes(self) -> bytes:
        try:
            handle = open(self.path, "rb")  # read-only: flock needs no write permission
        except (FileNotFoundError, NotADirectoryError):
            return b""
        except OSError as exc:
            raise LsbenchError(f"cannot read results from {self.path}: {exc.strerror or exc}") from None
        with handle:  # closing releases the lock
            with contextlib.suppress(OSError):  # a file system without flock (ENOLCK): read unlocked
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH)  # never read a batch while it is being written
            return handle.read()

    def records(self) -> list[Record]:
        """All valid records in file order; bad lines are skipped and listed in `bad_lines`."""
        data = self._read_bytes()
        lines = data.split(b"\n")
        out: list[Record] = []
        bad: list[tuple[int, str]] = []
        first_line: dict[int, int] = {}  # index in out -> line number
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = Record.from_json(line)
            except (ValueError, TypeError) as exc:
                unterminated = number == len(lines) and not data.endswith(b"\n")
                reason = "truncated last line (a writer was interrupted; the next append removes it)" \
                    if unterminated else str(exc)
                bad.append((number, reason))
                continue
            first_line[len(out)] = number
            out.append(record)
        self.bad_lines = bad
        self.incomplete_batches = _incomplete_batches(out, first_line)
        return out

    def check(self) -> StoreCheck:
        """Read the whole store and report every bad line and every batch cut short."""
        if not self.path.is_file():
            raise LsbenchError(f"no results in {self.directory} ({self.path} does not exist)")
        records = self.records()
        return StoreCheck(self.path, len(records), list(self.bad_lines), list(self.incomplete_batches))

    def completed(self) -> set[tuple[str, str]]:
        """(model, job key) pairs with at least one fully written batch that is not partial progress (the
        job key is ``job_key``, or ``settings_key`` for records written outside a job)."""
        return {(r.model, r.job_key or r.settings_key) for r in _complete(self.records()) if not r.partial}

    # ----------------------------------------------------------------------------------- writing

    def _write_error(self, exc: OSError, path: Path | None = None) -> LsbenchError:
        return LsbenchError(f"cannot write results to {path or self.path}: {exc.strerror or exc}")

    def _open_for_append(self) -> int:
        """O_RDWR|O_APPEND descriptor of the results file, creating it (and its directories) durably."""
        try:
            _make_dirs(self.directory)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return os.open(self.path, os.O_RDWR | os.O_APPEND)
            try:
                _fsync_dir(self.directory)  # the new file's name is on disk before any record is
            except OSError:
                os.close(fd)
                raise
            return fd
        except OSError as exc:
            raise self._write_error(exc) from None

    def append(self, records: Sequence[Record]) -> list[Record]:
        """Durably append `records` as one batch; returns them stamped with the batch id/size.

        All or nothing: on any OSError (ENOSPC, EFBIG, EIO) the file is truncated back to its size
        before this write and one LsbenchError line is raised; the store stays valid. Before
        writing, the tail a killed writer left is repaired (see `_repair_tail`)."""
        if not records:
            return []
        batch_id = uuid.uuid4().hex
        stamped = [dataclasses.replace(r, batch_id=batch_id, batch_size=len(records)) for r in records]
        data = "".join(r.to_json() + "\n" for r in stamped).encode("utf-8")
        fd = self._open_for_append()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                start, fence = _repair_tail(fd)
            except OSError as exc:
                raise self._write_error(exc) from None
            try:
                view = memoryview(fence + data)
                while view:
                    written = os.write(fd, view)
                    if written <= 0:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    view = view[written:]
                os.fsync(fd)
            except OSError as exc:
                with contextlib.suppress(OSError):  # best effort: nothing of this batch stays behind
                    os.ftruncate(fd, start)
                    os.fsync(fd)
                raise self._write_error(exc) from None
        finally:
            os.close(fd)  # also releases the lock
        return stamped

    # ------------------------------------------------------------------------ two sweeps, one store

    def _lock_path(self, name: str) -> Path:
        lock_dir = self.directory / LOCK_DIR
        try:
            _make_dirs(lock_dir)
        except OSError as exc:
            raise self._write_error(exc, lock_dir) from None
        return lock_dir / name

    @contextlib.contextmanager
    def job_lock(self, job_key: str, on_wait: Callable[[int | None], None] | None = None) -> Iterator[None]:
        """Hold the lock of one job key: a second process with the same key blocks here until the
        first leaves (then, reading the store, it skips what the first finished).

        When the lock is taken, `on_wait(pid)` is called once with the holder's pid (None when it
        cannot be read) before blocking. The lock is an flock on `.locks/<key>.lock`, released by the
        kernel even when the holder is killed; the file (kept, never unlinked: unlinking a lock file
        races with its waiters) holds the pid of the current holder."""
        name = job_key if _SAFE_KEY.fullmatch(job_key) else hashlib.sha1(job_key.encode()).hexdigest()[:16]
        fd = self._open_lock(f"{name}.lock")
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait(_read_pid(fd))
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    def _open_lock(self, name: str) -> int:
        path = self._lock_path(name)
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._write_error(exc, path) from None

    @contextlib.contextmanager
    def measuring(self) -> Iterator[bool]:
        """Mark this process as measuring on this store for the block; yields whether another
        process was already measuring (a shared flock on `.locks/measuring` per measuring process;
        an exclusive non-blocking probe succeeds only when nobody else holds it)."""
        fd = self._open_lock(MEASURING_LOCK)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                others = False
            except BlockingIOError:
                others = True
            fcntl.flock(fd, fcntl.LOCK_SH)  # waits at most for another process's probe
            yield others
        finally:
            os.close(fd)

    def other_measurement_active(self) -> bool:
        """Whether a process is inside `measuring()` on this store. Creates nothing (read-only safe).
        Call it before entering `measuring()` yourself: this process's own lock counts too."""
        try:
            fd = os.open(self.directory / LOCK_DIR / MEASURING_LOCK, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

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



def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(directory: Path) -> None:
    """mkdir -p that fsyncs the parent of every directory it creates, so the names survive a crash."""
    missing = []
    path = directory
    while not path.exists():  # an existing non-directory then fails mkdir with "Not a directory"
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            if not path.is_dir():
                raise
            continue
        _fsync_dir(path.parent)


def _reverse_lines(fd: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(start offset, line without its newline) of every line before `end`, last line first; a last
    line without a newline is included. Reads backwards in chunks, so a long file costs only its tail."""
    line_end = end - 1 if end and os.pread(fd, 1, end - 1) == b"\n" else end
    pos, pending = line_end, b""  # pending: bytes [pos, line_end) of the lines not yet yielded
    while True:
        cut = pending.rfind(b"\n")
        if cut >= 0:
            yield pos + cut + 1, pending[cut + 1:]
            pending = pending[:cut]
        elif pos == 0:
            if line_end > 0 or pending:
                yield 0, pending
            return
        else:
            size = min(_TAIL_CHUNK, pos)
            pos -= size
            pending = os.pread(fd, size, pos) + pending


def _parse(line: bytes) -> Record | None:
    try:
        return Record.from_json(line)
    except (ValueError, TypeError):
        return None


def _repair_tail(fd: int) -> tuple[int, bytes]:
    """Remove what a killed writer left at the end of the file; returns (new size, bytes to write first).

    Safe because the caller holds the exclusive flock: every writer writes its whole batch while
    holding it, so no live writer can be half-way through the end of the file; whatever is
    incomplete there belongs to a writer that died. A partial last line (no newline) is truncated
    away, unless it already is a whole valid record, which only gets its newline. Then, when the
    last batch holds fewer records than its batch_size and starts cleanly (after a record of
    another batch, or at the start of the file), its records are truncated too: resume re-measures
    that item anyway, so keeping them would make duplicates. A bad line before the tail is left
    alone, for `results check` to report."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0, b""
    end, fence = size, b""
    unterminated = os.pread(fd, 1, size - 1) != b"\n"
    batch_id: str | None = None
    want = have = 0
    batch_start = end
    clean = False
    for start, line in _reverse_lines(fd, size):
        if unterminated:
            unterminated = False
            record = _parse(line)
            if record is None:
                end = start
                continue
            fence = b"\n"
        elif not line.strip():
            continue
        else:
            record = _parse(line)
            if record is None:
                break  # a bad line we did not write: leave the batch (if any) for check to report
        if batch_id is None:
            if record.batch_id is None or record.batch_size is None:
                break
            batch_id, want = record.batch_id, record.batch_size
        elif record.batch_id != batch_id:
            clean = True
            break
        have += 1
        batch_start = start
        if have >= want:
            break
    else:
        clean = True  # reached the start of the file
    if batch_id is not None and have < want and clean:
        end, fence = batch_start, b""
    if end != size:
        os.ftruncate(fd, end)
        os.fsync(fd)
    return end, fence


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


def _incomplete_batches(records: Sequence[Record], first_line: dict[int, int]) -> list[tuple[int, str]]:
    """(line of first record, description) of each batch with fewer records than its batch_size."""
    counts: dict[str, int] = {}
    starts: dict[str, tuple[int, int]] = {}
    for i, r in enumerate(records):
        if r.batch_id is not None and r.batch_size is not None:
            counts[r.batch_id] = counts.get(r.batch_id, 0) + 1
            starts.setdefault(r.batch_id, (first_line.get(i, 0), r.batch_size))
    return [(line, f"batch {bid[:8]} of {starts[bid][1]} record(s) has only {counts[bid]}: it was cut short and "
                   "does not count as done")
            for bid, (line, size) in starts.items() if counts[bid] < size]


def open_results(directory: str | os.PathLike[str]) -> ResultsStore:
    """The store in ``directory`` for reading; a one-line error when there is nothing to read yet."""
    if not (Path(directory) / RESULTS_FILE).is_file():
        raise LsbenchError(f"no results in {directory}: run `lsbench profile --out {directory}` first")
    return ResultsStore(directory)
