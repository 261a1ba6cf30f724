"""Paper tables: the rounding rule, the comparison table from a hand-built results store, the deterministic
table, writers and staleness, and the reported-figure table."""
import math
import re

import pandas as pd
import pytest

import zoo
from lsbench.errors import LsbenchError
from lsbench.report.flags import check_table, flag, rounding_interval, within_rounding
from lsbench.report.render import render_table, stale_files, write_table
from lsbench.report.tables import deterministic_table, paper_table, reported_figure_table
from lsbench.results import Record, ResultsStore

H200 = {"gpu": {"name": "NVIDIA H200"}, "cpu_model": "Host CPU X", "torch_version": "2.x"}
CPU_FP = {"cpu_model": "Test CPU 9000", "torch_version": "2.x"}
LSNET_GPU = {"device": "cuda", "batch": 2048, "dtype": "fp32", "amp": False, "fused": True, "preset": "lsnet"}
QUICK_GPU = {**LSNET_GPU, "batch": 64, "preset": "lsnet+quick"}
CPU = {"device": "cpu", "batch": 1, "dtype": "fp32", "threads": 1, "fused": True, "preset": "cpu"}


def _rec(model, metric, value, unit, time, settings=None, fingerprint=None, **kw):
    return Record(model=model, metric=metric, value=value, unit=unit, time=time, settings=settings or {},
                  settings_key=kw.pop("settings_key", "k"), fingerprint=fingerprint or {}, **kw)


@pytest.fixture
def results(tmp_path):
    t = "2025-03-0{}T12:00:00.000+00:00".format
    store = ResultsStore(tmp_path / "results")
    store.append([
        _rec("lsnet_t", "params_fused", 11_370_488, "count", t(1), CPU, CPU_FP),
        _rec("lsnet_t", "macs", 0.316299, "GMac", t(1), CPU, CPU_FP, counter="fvcore",
             extra={"resolution": 224, "convention": "fvcore"}),
        _rec("lsnet_t", "macs", 0.9, "GMac", t(1), CPU, CPU_FP, counter="ptflops", extra={"resolution": 224}),
        # a count at another resolution never stands for the card's input size
        _rec("lsnet_t", "macs", 0.7, "GMac", t(2), CPU, CPU_FP, counter="fvcore", extra={"resolution": 320}),
        _rec("repvit_m0_9", "params_fused", 5_490_000, "count", t(1), CPU, CPU_FP),
        _rec("repvit_m0_9", "macs", 0.8156, "GMac", t(1), CPU, CPU_FP, counter="fvcore",
             extra={"resolution": 224}),
    ])
    store.append([  # GPU, LSNet protocol on an H200: lsnet_t twice (the newer wins) and repvit_m0_9
        _rec("lsnet_t", "throughput", 14_000.0, "img/s", t(2), LSNET_GPU, H200),
        _rec("lsnet_t", "throughput", 15_000.0, "img/s", t(4), LSNET_GPU, H200),
        _rec("repvit_m0_9", "throughput", 9_000.0, "img/s", t(3), LSNET_GPU, H200),
        _rec("lsnet_t", "latency", 0.2, "ms", t(4), LSNET_GPU, H200),  # GPU latency: not a CPU number
    ])
    store.append([  # a later smoke run with other settings, one model: does not replace the full run
        _rec("lsnet_s", "throughput", 2_000.0, "img/s", t(5), QUICK_GPU, H200),
    ])
    store.append([
        _rec("lsnet_t", "latency", 12.5, "ms", t(2), CPU, CPU_FP, stats={"median": 12.5}),
        _rec("repvit_m0_9", "latency", 20.25, "ms", t(2), CPU, CPU_FP),
        _rec("lsnet_t", "latency", 9.0, "ms", t(3), CPU, CPU_FP, extra={"runtime": "onnxruntime", "threads": 1}),
        _rec("lsnet_t", "latency", 99.0, "ms", t(3), CPU, CPU_FP, source="reported"),  # never a measurement
    ])
    return store.frame()


# ----------------------------------------------------------------------------- rounding

@pytest.mark.parametrize("measured, published, ok", [
    (11.37, 11.4, True), (11.46, 11.4, False), (11.35, 11.4, True), (11.45, 11.4, False),
    (0.0791, 0.079, True), (0.0785, 0.079, True), (0.0795, 0.079, False), (0.0784, 0.079, False),
    (5.49, 5.1, False), (0.3163, 0.3, True), (0.25, 0.3, True), (0.35, 0.3, False), (1.2475, 1.3, False),
    (13.96, 14.0, True), (14.06, 14.0, False), (14708.4, 14708, True), (14708.5, 14708, False),
    (0.059364, 0.06, True), (0.225436, 0.23, True),
])
def test_within_rounding(measured, published, ok):
    assert within_rounding(measured, published) is ok


def test_rounding_interval_uses_the_number_as_written():
    assert [str(v) for v in rounding_interval(0.079)] == ["0.0785", "0.0795"]
    assert [str(v) for v in rounding_interval(14.0)] == ["13.95", "14.05"]
    assert [str(v) for v in rounding_interval(11.4)] == ["11.35", "11.45"]
    with pytest.raises(ValueError):
        within_rounding(math.nan, 1.0)


# ----------------------------------------------------------------------------- paper table

def test_paper_table_values_flags_and_newest_record(results):
    table = paper_table(results, models=["repvit_m0_9", "lsnet_s", "lsnet_t"])
    assert list(table["model"]) == ["lsnet_t", "lsnet_s", "repvit_m0_9"]  # registry order
    t = table.set_index("model")
    assert t.at["lsnet_t", "top1"] == 74.9 and t.at["lsnet_t", "top1_cite"] == "lsnet"
    assert t.at["lsnet_t", "params_fused_M"] == pytest.approx(11.370488)
    assert t.at["lsnet_t", "params_pub_M"] == 11.4 and t.at["lsnet_t", "params_ok"] == "✓"
    assert t.at["lsnet_t", "gmacs_fvcore"] == pytest.approx(0.316299) and t.at["lsnet_t", "macs_ok"] == "✓"
    assert t.at["repvit_m0_9", "params_ok"] == "✗ 5.49 vs 5.1"
    assert t.at["repvit_m0_9", "macs_ok"] == "✓"
    # GPU: the newest record of the group covering most models; the quick run of lsnet_s is not mixed in
    assert t.at["lsnet_t", "gpu_img_s"] == 15_000.0
    assert t.at["repvit_m0_9", "gpu_img_s"] == 9_000.0
    assert math.isnan(t.at["lsnet_s", "gpu_img_s"])
    assert t.at["lsnet_t", "gpu_device"] == "NVIDIA H200" and "preset lsnet" in t.at["lsnet_t", "gpu_protocol"]
    # published GPU figure on the measured GPU, fp32 protocol
    assert t.at["lsnet_t", "gpu_pub_img_s"] == 44941 and t.at["lsnet_t", "gpu_pub_device"] == "NVIDIA H200"
    assert t.at["lsnet_t", "gpu_pub_protocol"] == "lsnet_short"
    # CPU eager latency vs on-host runtime latency; the reported 99 ms and the GPU latency are never used
    assert t.at["lsnet_t", "cpu_ms"] == 12.5 and t.at["lsnet_t", "cpu_model"] == "Test CPU 9000"
    assert t.at["lsnet_t", "cpu_threads"] == 1 and t.at["lsnet_t", "cpu_batch"] == 1
    assert t.at["repvit_m0_9", "cpu_ms"] == 20.25
    assert t.at["lsnet_t", "mobile_ms"] == 9.0 and t.at["lsnet_t", "mobile_runtime"] == "onnxruntime"
    assert math.isnan(t.at["repvit_m0_9", "mobile_ms"])
    assert t.at["repvit_m0_9", "mobile_pub_ms"] == 0.9 and t.at["repvit_m0_9", "mobile_pub_device"] == "iPhone 12"
    # nothing measured for lsnet_s except the quick GPU run: empty, never 0
    assert math.isnan(t.at["lsnet_s", "params_fused_M"]) and t.at["lsnet_s", "params_ok"] is None
    assert pd.isna(t.at["lsnet_s", "cpu_threads"])
    provenance = "\n".join(table.attrs["provenance"])
    assert "NVIDIA H200" in provenance and "2025-03-02 to 2025-03-04" in provenance
    assert "1 other settings/hardware group" in provenance


def test_paper_table_never_takes_a_train_step(tmp_path):
    """A train-mode run of the same models (more of them, newer) is not an inference figure: the GPU
    throughput and CPU latency columns keep the inference records."""
    t = "2025-03-0{}T12:00:00.000+00:00".format
    store = ResultsStore(tmp_path / "results")
    train_gpu = {**LSNET_GPU, "batch": 256, "mode": "train", "optimizer": "sgd", "preset": "timm+train"}
    train_cpu = {**CPU, "mode": "train", "optimizer": "sgd", "fused": False, "preset": "cpu+train"}
    store.append([
        _rec("lsnet_t", "throughput", 15_000.0, "img/s", t(1), LSNET_GPU, H200),
        _rec("lsnet_t", "latency", 12.5, "ms", t(1), CPU, CPU_FP),
        *[_rec(m, "throughput", 3_000.0, "img/s", t(2), train_gpu, H200) for m in ("lsnet_t", "repvit_m0_9")],
        *[_rec(m, "latency", 800.0, "ms", t(2), train_cpu, CPU_FP) for m in ("lsnet_t", "repvit_m0_9")],
    ])
    table = paper_table(store.frame(), models=["lsnet_t", "repvit_m0_9"]).set_index("model")
    assert table.at["lsnet_t", "gpu_img_s"] == 15_000.0 and table.at["lsnet_t", "cpu_ms"] == 12.5
    assert math.isnan(table.at["repvit_m0_9", "gpu_img_s"]) and math.isnan(table.at["repvit_m0_9", "cpu_ms"])


def test_paper_table_selectors(results):
    t = paper_table(results, models=["lsnet_t", "lsnet_s"], gpu="lsnet+quick").set_index("model")
    assert t.at["lsnet_s", "gpu_img_s"] == 2_000.0 and math.isnan(t.at["lsnet_t", "gpu_img_s"])
    t = paper_table(results, models=["lsnet_t"], gpu={"settings_batch": 2048},
                    published_gpu=("NVIDIA RTX 3090", "lsnet")).set_index("model")
    assert t.at["lsnet_t", "gpu_img_s"] == 15_000.0 and t.at["lsnet_t", "gpu_pub_img_s"] == 14708
    t = paper_table(results, models=["lsnet_t"], cpu="no such cpu").set_index("model")
    assert math.isnan(t.at["lsnet_t", "cpu_ms"])


def test_paper_table_without_measurements_is_empty_not_zero():
    frame = pd.DataFrame(columns=["model", "metric", "value", "unit", "source", "counter", "settings_key", "time"])
    for table in (paper_table(frame), paper_table(None, models=["lsnet_t", "fastvit_t8"])):
        assert len(table) in (len(zoo.list_models()), 2)
        for column in ("params_fused_M", "gmacs_fvcore", "gpu_img_s", "cpu_ms", "mobile_ms"):
            assert table[column].isna().all(), column
        assert table["params_ok"].isna().all() and table["macs_ok"].isna().all()
        assert check_table(table) == []
    t = paper_table(None, models=["fastvit_t8"]).set_index("model")
    # default published GPU column: the LSNet paper's RTX 3090 figure
    assert t.at["fastvit_t8", "gpu_pub_img_s"] == 3909 and t.at["fastvit_t8", "gpu_pub_device"] == "NVIDIA RTX 3090"
    assert t.at["fastvit_t8", "mobile_pub_device"] == "iPhone 12 Pro"


def test_mismatch_flag_never_shows_a_value_that_would_match():
    assert flag(1.247538, 1.3) == "✗ 1.248 vs 1.3"  # not "1.25", which would round to 1.3
    assert flag(5.49, 5.1) == "✗ 5.49 vs 5.1"
    assert flag(0.3163, 0.3) == "✓" and flag(None, 0.3) is None and flag(0.3, None) is None


def test_check_table_messages(results):
    messages = check_table(paper_table(results, models=["lsnet_t", "repvit_m0_9"]))
    assert len(messages) == 1
    assert messages[0].startswith("repvit_m0_9: params (fused) measured 5.49 M does not round to the published 5.1 M")
    assert "[5.05, 5.15)" in messages[0] and "(repvit)" in messages[0]


def test_unknown_model_is_one_line_error():
    with pytest.raises(zoo.ZooError, match="lsnet_tt"):
        paper_table(None, models=["lsnet_tt"])


# ----------------------------------------------------------------------------- deterministic table

@pytest.fixture(scope="module")
def det():
    return deterministic_table(["mobilenetv3_small_100", "lsnet_t"])


def test_deterministic_table_counts(det):
    assert list(det["model"]) == ["lsnet_t", "mobilenetv3_small_100"]
    t = det.set_index("model")
    assert round(t.at["lsnet_t", "params_fused_M"] * 1e6) == 11_370_488
    assert round(t.at["lsnet_t", "params_M"] * 1e6) == 11_409_832
    assert round(t.at["lsnet_t", "gmacs_fvcore"], 4) == 0.3163
    assert t.at["lsnet_t", "input"] == 224
    assert (det["params_ok"] == "✓").all() and (det["macs_ok"] == "✓").all()
    assert check_table(det) == []
    assert det.attrs["deterministic"] is True


def test_writers_and_staleness(det, tmp_path):
    out = tmp_path / "reports"
    paths = write_table(det, out, "deterministic", command="lsbench table --deterministic")
    assert [p.name for p in paths] == ["deterministic.md", "deterministic.csv", "deterministic.tex"]
    md = paths[0].read_text(encoding="utf-8")
    assert "lsbench table --deterministic" in md and "| lsnet_t" in md and "11.370" in md
    assert not re.search(r"20\d\d-\d\d-\d\d", md)  # no timestamps in the deterministic table
    csv = pd.read_csv(paths[1])
    assert list(csv.columns) == list(det.columns) and csv.loc[0, "params_fused_M"] == 11.370488
    tex = paths[2].read_text(encoding="utf-8")
    assert "\\begin{tabular}" in tex and "lsnet\\_t" in tex and "\\checkmark" in tex and "✓" not in tex
    assert stale_files(det, out, "deterministic", command="lsbench table --deterministic") == []
    before = [p.read_bytes() for p in paths]
    write_table(det, out, "deterministic", command="lsbench table --deterministic")
    assert [p.read_bytes() for p in paths] == before  # byte-identical regeneration
    paths[0].write_text(md.replace("11.370", "11.371"), encoding="utf-8")
    paths[1].unlink()
    assert stale_files(det, out, "deterministic", command="lsbench table --deterministic") == paths[:2]
    with pytest.raises(LsbenchError):
        write_table(det, out, "a/b")


def test_paper_table_renders_provenance_and_flags(results, tmp_path):
    table = paper_table(results, models=["lsnet_t", "repvit_m0_9"])
    md = render_table(table, "md")
    assert "NVIDIA H200" in md and "Test CPU 9000" in md and "2025-03-02" in md
    assert "✗ 5.49 vs 5.1" in md
    tex = render_table(table, "tex")
    assert "$\\times$ 5.49 vs 5.1" in tex
    with pytest.raises(LsbenchError):
        render_table(table, "html")


def test_reported_figure_table():
    table = reported_figure_table()
    assert len(table) == sum(len(zoo.get_card(m).figures) for m in zoo.list_models(include_reported=True))
    row = table[(table["model"] == "lsnet_t") & (table["metric"] == "throughput")
                & (table["device"] == "NVIDIA RTX 3090")].iloc[0]
    assert row["value"] == 14708 and row["protocol"] == "lsnet" and row["citation"].startswith("Wang et al., LSNet")
    assert table["citation"].notna().all()


def test_paper_table_shows_the_peak_memory_of_the_same_job(tmp_path):
    store = ResultsStore(tmp_path)
    store.append([_rec("lsnet_t", "latency", 12.5, "ms", "2025-03-01T00:00:00+00:00", CPU, CPU_FP, job_key="j1"),
                  _rec("lsnet_t", "peak_memory", 3 * 2**20, "B", "2025-03-01T00:00:00+00:00", CPU, CPU_FP,
                       job_key="j1"),
                  # another job's peak (say a batch-64 run) is never shown beside this latency
                  _rec("lsnet_t", "peak_memory", 99 * 2**20, "B", "2025-03-02T00:00:00+00:00", CPU, CPU_FP,
                       job_key="j2")])
    t = paper_table(store.frame(), models=["lsnet_t"]).set_index("model")
    assert t.at["lsnet_t", "cpu_ms"] == 12.5 and t.at["lsnet_t", "cpu_peak_MiB"] == 3.0
    assert math.isnan(t.at["lsnet_t", "gpu_peak_MiB"])


def test_paper_view_reads_like_a_paper_table(results):
    from lsbench.report.tables import paper_view, render_paper

    table = paper_table(results, models=["lsnet_t", "lsnet_b", "repvit_m0_9"])
    view = paper_view(table)
    tiers = list(view.loc[view["_tier"] == True, "Model"])  # noqa: E712
    assert tiers == ["FLOPs < 0.4 G", "0.4 G ≤ FLOPs < 1.0 G", "FLOPs ≥ 1.0 G"]
    rows = view[view["_tier"] != True].set_index("Model")  # noqa: E712
    assert rows.at["repvit_m0_9", "Params (M)"] == "5.5†"  # measured 5.49 does not round to the published 5.1
    assert "† repvit_m0_9 params: 5.49 vs 5.1" in view.attrs["footnotes"]
    assert rows.at["lsnet_b", "Params (M)"] == "23.2*"  # nothing measured: the published figure, marked
    gpu = [c for c in view.columns if c.startswith("Throughput")][0]
    assert gpu == "Throughput, NVIDIA H200 (img/s)" and rows.at["lsnet_t", gpu] == "15,000"
    md = render_paper(table, "md")
    assert "**FLOPs < 0.4 G**" in md and "* published figure" in md
    assert render_paper(table, "csv").splitlines()[0].startswith("model,family,top1")  # the wide frame
    assert "\\multicolumn{7}{l}{\\textit{FLOPs < 0.4 G}}" in render_paper(table, "tex")
