"""The results store under hostile data and hostile conditions: bad records, read-only stores, a full disk,
writers killed mid-write, and two sweeps on one store (issue 10)."""
import contextlib
import json
import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lsbench.errors import LsbenchError
from lsbench.results import Record, ResultsStore
from lsbench.settings import ProfileSettings

REPO = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _run(code: str, *args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=_env(),
                          capture_output=True, text=True, timeout=120, **kw)


def _spawn(code: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _good(model: str, **kw) -> Record:
    return Record(model=model, metric="latency", value=1.5, unit="ms", settings=ProfileSettings(batch=2), **kw)


def _every_line_parses(store: ResultsStore) -> list[dict]:
    data = store.path.read_bytes()
    assert not data or data.endswith(b"\n")
    return [json.loads(line) for line in data.splitlines()]


# --------------------------------------------------------------------------------------------- bad records

BASE = {"model": "lsnet_t", "metric": "latency", "value": 1, "unit": "ms"}
# The issue's reproductions, each with the reason `results check` must give.
ISSUE_REPROS = [
    ({"settings": "oops"}, "settings must be an object"),
    ({"stats": 5}, "stats must be an object"),
    ({"extra": [1]}, "extra must be an object"),
    ({"fingerprint": [1, 2]}, "fingerprint must be an object"),
    ({"batch_size": "x"}, "batch_size must be a positive integer"),
    ({"batch_id": [1]}, "batch_id must be a string or null"),
    ({"model": 123}, "model must be a non-empty string"),
]
MORE_BAD = [
    ({"model": ""}, "model must be a non-empty string"),
    ({"metric": None}, "metric must be a string"),
    ({"unit": 5}, "unit must be a string"),
    ({"value": "1"}, "value must be a number"),
    ({"value": True}, "value must be a number"),
    ({"value": 1e400}, "value must be finite"),
    ({"source": "guessed"}, "source must be one of"),
    ({"counter": 3}, "counter must be a string or null"),
    ({"time": 0}, "time must be a string"),
    ({"settings_key": {}}, "settings_key must be a string"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"batch_size": True}, "batch_size must be a positive integer"),
    ({"stats": {"median": "fast"}}, "stats.median must be a finite number"),
    ({"settings": {"batch": "x"}}, "settings.batch has the wrong type"),
    ({"settings": {"pin_cores": [0, "a"]}}, "settings.pin_cores has the wrong type"),
    ({"settings": {"amp": 1}}, "settings.amp has the wrong type"),
    ({"settings": {"measure_s": "long"}}, "settings.measure_s has the wrong type"),
]


def _write_lines(store: ResultsStore, lines: list[str]) -> None:
    store.directory.mkdir(parents=True, exist_ok=True)
    store.path.write_text("".join(line + "\n" for line in lines))


@pytest.mark.parametrize("change, reason", ISSUE_REPROS + MORE_BAD, ids=lambda v: json.dumps(v) if isinstance(v, dict) else "")
def test_a_bad_record_is_skipped_with_its_reason_and_the_good_ones_are_read(tmp_path, change, reason):
    store = ResultsStore(tmp_path)
    _write_lines(store, [_good("a").to_json(), json.dumps({**BASE, **change}), _good("b").to_json()])
    assert [r.model for r in store.records()] == ["a", "b"]
    assert store.skipped_lines == 1 and store.first_bad_line == 2
    assert store.bad_lines[0][1].startswith(reason), store.bad_lines
    warning = store.read_warning()
    assert warning == (f"warning: skipped 1 bad record(s) in {store.path} (first at line 2: {store.bad_lines[0][1]}); "
                       f"run `lsbench results check {tmp_path}`")
    assert "\n" not in warning
    frame = store.frame()  # the readers downstream see only good records
    assert list(frame["model"]) == ["a", "b"]


def test_every_issue_repro_in_one_store_is_listed_by_check(tmp_path):
    store = ResultsStore(tmp_path)
    lines, good_models = [_good("first").to_json()], ["first"]
    for change, _ in ISSUE_REPROS:
        good_models.append(f"after{len(lines)}")
        lines += [json.dumps({**BASE, **change}), _good(good_models[-1]).to_json()]
    lines += ["{not json", "[1, 2]", '{"model": "m"}']
    _write_lines(store, lines)
    report = store.check()
    assert report.records == len(good_models) == 1 + len(ISSUE_REPROS)
    assert [r.model for r in store.records()] == good_models
    n = len(lines)
    assert [line for line, _ in report.bad] == [2 * i + 2 for i in range(len(ISSUE_REPROS))] + [n - 2, n - 1, n]
    assert not report.ok
    reasons = [reason for _, reason in report.bad]
    assert all(got.startswith(want) for got, (_, want) in zip(reasons, ISSUE_REPROS)), reasons
    assert reasons[-3].startswith("not valid JSON") and reasons[-2] == "a record must be a JSON object, got an array"
    assert reasons[-1] == "missing field(s): metric, value, unit"
    assert store.read_warning().startswith(f"warning: skipped {len(reasons)} bad record(s)")


def test_invalid_utf8_line_is_reported(tmp_path):
    store = ResultsStore(tmp_path)
    store.append([_good("a")])
    with open(store.path, "ab") as handle:
        handle.write(b'{"model": "\xff\xfe"}\n')
    store.append([_good("b")])
    assert [r.model for r in store.records()] == ["a", "b"]
    assert store.bad_lines == [(2, "not UTF-8 text")]


def test_unknown_fields_and_settings_are_kept_forward_compatible(tmp_path):
    store = ResultsStore(tmp_path)
    line = {**json.loads(_good("a").to_json()), "from_the_future": 1}
    line["settings"]["new_knob"] = {"any": "shape"}
    _write_lines(store, [json.dumps(line)])
    (record,) = store.records()
    assert store.skipped_lines == 0 and store.read_warning() is None
    assert record.settings["new_knob"] == {"any": "shape"} and record.settings["batch"] == 2
    assert store.frame()["settings_new_knob"].iloc[0] == {"any": "shape"}


def test_records_written_are_records_readable():
    with pytest.raises(TypeError, match="settings must be an object"):
        Record(model="m", metric="latency", value=1.0, unit="ms", settings="oops")
    with pytest.raises(TypeError, match="batch_size"):
        Record(model="m", metric="latency", value=1.0, unit="ms", batch_size=-1)


def test_check_counts_a_batch_cut_short(tmp_path):
    store = ResultsStore(tmp_path)
    store.append([_good("a")])
    store.append([_good("b"), _good("b"), _good("b")])
    lines = store.path.read_bytes().splitlines(keepends=True)
    store.path.write_bytes(b"".join(lines[:3]))  # a kill after 2 of the 3 records of b's batch
    report = store.check()
    assert report.ok and report.records == 3
    assert [line for line, _ in report.incomplete] == [2] and "only 2" in report.incomplete[0][1]


def test_check_of_a_directory_without_results_is_a_user_error(tmp_path):
    with pytest.raises(LsbenchError, match="no results in"):
        ResultsStore(tmp_path / "nothing").check()
    assert not (tmp_path / "nothing").exists()


# --------------------------------------------------------------------------------------------- read-only

def test_reading_creates_nothing(tmp_path):
    store = ResultsStore(tmp_path / "fresh")
    assert store.records() == [] and store.frame().empty and store.completed() == set()
    assert not store.other_measurement_active()
    assert not (tmp_path / "fresh").exists()


@contextlib.contextmanager
def _read_only(directory: Path):
    """Make `directory` really read-only: a read-only bind mount where this process may mount (root
    here), file modes otherwise (a non-root user, as in CI); root without mount rights cannot test it."""
    bound = subprocess.run(["mount", "--bind", str(directory), str(directory)], capture_output=True).returncode == 0
    if bound:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], capture_output=True).returncode:
            subprocess.run(["umount", str(directory)], check=True)
            bound = False
    try:
        if not bound:
            if os.geteuid() == 0:
                pytest.skip("root without mount rights: neither file modes nor a read-only mount can stop writes")
            for path in directory.rglob("*"):
                path.chmod(0o555 if path.is_dir() else 0o444)
            directory.chmod(0o555)
        yield
    finally:
        if bound:
            subprocess.run(["umount", str(directory)], check=True)
        else:
            directory.chmod(0o755)
            for path in directory.rglob("*"):
                path.chmod(0o755 if path.is_dir() else 0o644)


def test_read_only_store_is_read_and_writing_is_one_line_error(tmp_path):
    store = ResultsStore(tmp_path / "ro")
    store.append([_good("a"), _good("b")])
    before = store.path.read_bytes()
    with _read_only(store.directory):
        with pytest.raises(OSError):  # the directory really refuses writes
            (store.directory / "probe").write_text("x")
        reader = ResultsStore(store.directory)
        assert [r.model for r in reader.records()] == ["a", "b"] and len(reader.frame()) == 2
        assert reader.completed() and not reader.other_measurement_active()
        with pytest.raises(LsbenchError, match="cannot write results to") as info:
            reader.append([_good("c")])
        message = str(info.value)
        assert "\n" not in message and ("Read-only file system" in message or "Permission denied" in message)
        with pytest.raises(LsbenchError, match="cannot write results to"):
            with reader.job_lock("k"):
                pass
    assert store.path.read_bytes() == before


# --------------------------------------------------------------------------------------------- full disk

_FILL = """
import resource, signal, sys
from lsbench.errors import LsbenchError
from lsbench.results import Record, ResultsStore
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then returns short / EFBIG instead of killing us
store = ResultsStore(sys.argv[1])
limit = store.path.stat().st_size + int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
small = Record(model="small", metric="params", value=1, unit="count")
store.append([small])  # fits under the limit
big = [Record(model=f"big{i}", metric="params", value=i, unit="count", extra={"pad": "x" * 400}) for i in range(10)]
try:
    store.append(big)
except LsbenchError as exc:
    print(exc)
    sys.exit(3)
"""


def test_a_write_past_the_file_size_limit_rolls_back(tmp_path):
    store = ResultsStore(tmp_path)
    store.append([_good("a")])
    proc = _run(_FILL, tmp_path, 1500)  # the small record fits, the ~5 KB batch does not
    assert proc.returncode == 3, proc.stderr
    message = proc.stdout.strip()
    assert message == f"cannot write results to {store.path}: File too large"
    records = store.records()
    assert [r.model for r in records] == ["a", "small"] and store.skipped_lines == 0
    assert len(_every_line_parses(store)) == 2  # no partial line, no orphan record of the big batch
    store.append([_good("after")])
    assert [r.model for r in store.records()] == ["a", "small", "after"]


@pytest.fixture
def tiny_tmpfs(tmp_path):
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (the RLIMIT_FSIZE test covers a failed write)")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


def test_disk_full_is_one_line_and_leaves_the_store_valid(tiny_tmpfs):
    store = ResultsStore(tiny_tmpfs / "run")
    store.append([_good("a")])
    batch = [Record(model=f"big{i}", metric="params", value=i, unit="count", extra={"pad": "x" * 8000})
             for i in range(16)]  # ~130 KB: more than the 64 KB file system holds
    with pytest.raises(LsbenchError) as info:
        store.append(batch)
    assert str(info.value) == f"cannot write results to {store.path}: No space left on device"
    assert [r.model for r in store.records()] == ["a"] and store.skipped_lines == 0
    assert len(_every_line_parses(store)) == 1
    store.append([_good("b")])  # the space the failed write took is free again
    assert [r.model for r in store.records()] == ["a", "b"]


# --------------------------------------------------------------------------------------- kill mid-write

_HUGE_WRITER = """
import sys
from lsbench.results import Record, ResultsStore
store = ResultsStore(sys.argv[1])
pad = "x" * 20000
i = 0
while True:
    store.append([Record(model=f"m{i}", metric="params", value=j, unit="count", extra={"pad": pad})
                  for j in range(300)])  # ~6 MB per batch, one write()
    i += 1
"""


def test_writer_killed_mid_write_leaves_nothing_after_the_next_append(tmp_path):
    rng = random.Random(0)
    store = ResultsStore(tmp_path)
    store.append([_good("first")])
    cut_short = 0
    for attempt in range(4):
        proc = _spawn(_HUGE_WRITER, tmp_path)
        try:
            start_size = store.path.stat().st_size
            deadline = time.monotonic() + 60
            while store.path.stat().st_size == start_size:  # it is writing
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.004))  # a 6 MB write lasts milliseconds: kill in or near it
            proc.kill()
        finally:
            proc.kill()
            proc.communicate(timeout=60)
        report = store.check()
        cut_short += bool(report.bad or report.incomplete)
        store.append([_good(f"after{attempt}")])
        lines = _every_line_parses(store)
        report = store.check()
        assert report.ok and report.incomplete == [], (report.bad, report.incomplete)
        sizes = {}
        for line in lines:
            sizes.setdefault(line["batch_id"], []).append(line["batch_size"])
        assert all(len(v) == v[0] for v in sizes.values())  # every batch whole: no orphans
        assert [r.model for r in store.records() if r.model.startswith(("first", "after"))] == \
            ["first"] + [f"after{i}" for i in range(attempt + 1)]
    print(f"{cut_short} of 4 kills left a partial tail")  # informational: where the kill lands is chance


_KILLED_BY_THE_KERNEL = """
import resource, signal, sys
from lsbench.results import Record, ResultsStore
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it by default; the kernel's default kills
store = ResultsStore(sys.argv[1])
limit = store.path.stat().st_size + int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
store.append([Record(model=f"big{i}", metric="params", value=i, unit="count", extra={"pad": "x" * 400})
              for i in range(10)])
"""


def test_writer_killed_between_two_writes_of_one_batch_is_repaired(tmp_path):
    # Deterministic kill mid-batch: the first write() stops short at the file size limit, the second one
    # raises SIGXFSZ, whose default action kills the writer with part of its batch on disk.
    import signal

    store = ResultsStore(tmp_path)
    store.append([_good("a")])
    size = store.path.stat().st_size
    proc = _run(_KILLED_BY_THE_KERNEL, tmp_path, 1200)
    assert proc.returncode == -signal.SIGXFSZ, proc.stderr
    assert store.path.stat().st_size == size + 1200  # the partial batch a kill mid-write leaves
    whole = store.path.read_bytes()[size:].count(b"\n")
    assert whole >= 1 and not store.path.read_bytes().endswith(b"\n")
    report = store.check()
    assert report.records == 1 + whole and len(report.bad) == 1 and "truncated last line" in report.bad[0][1]
    assert [line for line, _ in report.incomplete] == [2]
    assert ("big0", "") not in store.completed()
    store.append([_good("b")])
    assert [r.model for r in store.records()] == ["a", "b"] and store.skipped_lines == 0
    assert len(_every_line_parses(store)) == 2


def test_incomplete_last_batch_and_partial_line_are_truncated(tmp_path):
    store = ResultsStore(tmp_path)
    store.append([_good("a")])
    store.append([_good("b1"), _good("b2"), _good("b3")])
    lines = store.path.read_bytes().splitlines(keepends=True)
    store.path.write_bytes(b"".join(lines[:3]) + lines[3][:25])  # b's batch: 2 records and half a line
    assert [r.model for r in store.records()] == ["a", "b1", "b2"] and ("b1", "") not in store.completed()
    store.append([_good("c")])
    assert [r.model for r in store.records()] == ["a", "c"] and store.skipped_lines == 0
    assert len(_every_line_parses(store)) == 2


def test_whole_last_record_without_newline_is_kept(tmp_path):
    store = ResultsStore(tmp_path)
    store.append([_good("a")])
    store.path.write_bytes(store.path.read_bytes().rstrip(b"\n"))  # killed just before the newline
    store.append([_good("b")])
    assert [r.model for r in store.records()] == ["a", "b"] and store.skipped_lines == 0


def test_a_foreign_bad_line_before_the_tail_is_left_alone(tmp_path):
    store = ResultsStore(tmp_path)
    store.append([_good("a1"), _good("a2")])
    lines = store.path.read_bytes().splitlines(keepends=True)
    store.path.write_bytes(b"hand edit\n" + lines[1])  # a batch whose start we cannot see
    store.append([_good("b")])
    assert [r.model for r in store.records()] == ["a2", "b"] and store.bad_lines[0][0] == 1


def test_tail_repair_reads_only_the_tail_of_a_long_file(tmp_path):
    store = ResultsStore(tmp_path)
    store.append([_good(f"m{i}", extra={"pad": "y" * 5000}) for i in range(100)])  # ~0.5 MB, many chunks
    store.append([_good("b1"), _good("b2")])
    data = store.path.read_bytes()
    store.path.write_bytes(data[: data.rindex(b'{"batch_id"')])  # b's batch lost its second record
    store.append([_good("c")])
    assert [r.model for r in store.records()][-2:] == ["m99", "c"] and len(store.records()) == 101


# -------------------------------------------------------------------------------- two sweeps, one store

_HOLDER = """
import os, sys
from lsbench.results import ResultsStore
store = ResultsStore(sys.argv[1])
with store.job_lock(sys.argv[2], on_wait=lambda pid: print(f"waiting {pid}", flush=True)):
    print(f"held {os.getpid()}", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


def test_job_lock_makes_an_identical_sweep_wait_and_names_the_holder(tmp_path):
    first = _spawn(_HOLDER, tmp_path, "job1")
    second = other = None
    try:
        assert first.stdout.readline() == f"held {first.pid}\n"
        assert (tmp_path / ".locks" / "job1.lock").read_text() == f"{first.pid}\n"
        other = _spawn(_HOLDER, tmp_path, "job2")  # another job key does not wait
        assert other.stdout.readline() == f"held {other.pid}\n"
        second = _spawn(_HOLDER, tmp_path, "job1")
        assert second.stdout.readline() == f"waiting {first.pid}\n"
        time.sleep(0.5)
        assert second.poll() is None  # still blocked while the first holds the key
        first.stdin.write("\n")
        first.stdin.flush()
        assert first.stdout.readline() == "released\n"
        assert second.stdout.readline() == f"held {second.pid}\n"
        assert (tmp_path / ".locks" / "job1.lock").read_text() == f"{second.pid}\n"
    finally:
        for proc in filter(None, (first, second, other)):
            proc.kill()
            proc.communicate(timeout=60)


def test_job_lock_of_a_killed_holder_is_free(tmp_path):
    holder = _spawn(_HOLDER, tmp_path, "job")
    try:
        assert holder.stdout.readline().startswith("held")
        holder.kill()
        holder.wait(timeout=60)
    finally:
        holder.kill()
        holder.communicate(timeout=60)
    waited = []
    with ResultsStore(tmp_path).job_lock("job", on_wait=waited.append):
        pass
    assert waited == []


def test_job_lock_of_an_odd_key_stays_inside_the_lock_directory(tmp_path):
    with ResultsStore(tmp_path).job_lock("../../escape key"):
        names = os.listdir(tmp_path / ".locks")
    assert len(names) == 1 and names[0].endswith(".lock") and "/" not in names[0]
    assert sorted(os.listdir(tmp_path)) == [".locks"]


_MEASURER = """
import sys
from lsbench.results import ResultsStore
with ResultsStore(sys.argv[1]).measuring() as others:
    print(f"measuring others={others}", flush=True)
    sys.stdin.readline()
"""


def test_another_measurement_on_the_store_is_seen(tmp_path):
    store = ResultsStore(tmp_path)
    assert not store.other_measurement_active()
    with store.measuring() as others:
        assert others is False
    assert not store.other_measurement_active()
    proc = _spawn(_MEASURER, tmp_path)
    try:
        assert proc.stdout.readline() == "measuring others=False\n"
        assert store.other_measurement_active()
        with store.measuring() as others:
            assert others is True
        second = _spawn(_MEASURER, tmp_path)
        try:
            assert second.stdout.readline() == "measuring others=True\n"
        finally:
            second.kill()
            second.communicate(timeout=60)
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=60)
        assert not store.other_measurement_active()
    finally:
        proc.kill()
        proc.communicate(timeout=60)


# ------------------------------------------------------------------------------------ lsbench results check

def _cli(*args):
    from typer.testing import CliRunner

    from lsbench.cli import app

    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_results_check_lists_bad_records_and_exits_1(tmp_path):
    store = ResultsStore(tmp_path)
    _write_lines(store, [_good("a").to_json(), json.dumps({**BASE, "settings": "oops"}), _good("b").to_json(),
                         json.dumps({**BASE, "model": 123})])
    result = _cli("results", "check", str(tmp_path))
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        f"{store.path}:2: settings must be an object, got a string",
        f"{store.path}:4: model must be a non-empty string, got a number",
        f"{store.path}: 2 good record(s), 2 bad",
    ]


def test_results_check_of_a_healthy_store_exits_0(tmp_path):
    ResultsStore(tmp_path).append([_good("a"), _good("b")])
    result = _cli("results", "check", str(tmp_path))
    assert result.exit_code == 0 and result.stdout.splitlines() == [f"{tmp_path / 'results.jsonl'}: 2 good record(s), 0 bad"]


@pytest.mark.parametrize("target", ["missing", "file"])
def test_results_check_of_no_store_is_one_line_exit_2(tmp_path, target):
    path = tmp_path / target
    if target == "file":
        path.write_text("x")
    result = _cli("results", "check", str(path))
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no results in ") and "Traceback" not in result.output
    assert target == "file" or not path.exists()


def test_first_append_fsyncs_the_new_file_s_directory(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    store = ResultsStore(tmp_path / "new" / "run")
    store.append([_good("a")])
    # the two new directories' parents, then the file's directory, then the file's data
    assert synced == [str(tmp_path), str(tmp_path / "new"), str(tmp_path / "new" / "run"), str(store.path)]
    synced.clear()
    store.append([_good("b")])
    assert synced == [str(store.path)]  # an existing file: only its data
