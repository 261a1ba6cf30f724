"""nox sessions: tests, the reports' freshness check, and regeneration of the paper's tables and figures.

Each session installs the project from pyproject.toml (torch and torchvision pinned there to the only pair
that imports beside timm on the CPU build machines).
"""
import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

# The models of the CPU latency tables: LSNet and the baselines of the paper's comparison that run in a
# few seconds each on one core (the larger RepViT/FastViT variants are left to GPU runs).
PAPER_MODELS = ("lsnet_t,lsnet_s,lsnet_b,efficientvit_m0,efficientvit_m1,efficientvit_m2,efficientvit_m3,"
                "efficientvit_m4,efficientvit_m5,repvit_m0_9,repvit_m1_0,repvit_m1_1,mobilenetv3_small_100,"
                "mobilenetv3_large_100,fastvit_t8,fastvit_t12")
RESULTS = "reports/results"
# The LSNet throughput figure's models that the registry can build (lsbench.report.pareto.figure_models()),
# measured on this CPU under the LSNet protocol scaled down: batch 16 at 224 px, fused, fp32, 1 thread (the
# cores are shared; one thread per measurement keeps the neighbours' load out of it), 3 interleaved rounds.
LSNET_FIGURE_MODELS = ("lsnet_t,lsnet_s,lsnet_b,efficientvit_m3,efficientvit_m4,efficientvit_m5,fastvit_t8,"
                       "fastvit_t12,fastvit_s12,fasternet_t0,fasternet_t1,fasternet_t2,mobilevit_xxs,mobilevit_xs,"
                       "mobilevit_s,edgenext_xx_small,edgenext_x_small,edgenext_small")
LSNET_FIGURE_RESULTS = "reports/lsnet_figure_cpu"


@nox.session
def tests(session):
    """The test suite (CUDA tests skip without a GPU)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def reports(session):
    """Fail when the committed deterministic tables in reports/tables are stale."""
    session.install("-e", ".")
    session.run("lsbench", "table", "--deterministic", "--check-stale")


@nox.session
def paper(session):
    """Regenerate reports/: deterministic tables, CPU and ONNX Runtime latency tables, Pareto figures.

    Latency is measured on this machine (1 thread, batch 1, the cpu preset's adaptive interleaved rounds: at
    least 3 rounds of 10 warm-up + 30 timed calls, until each model's median is known to ±1 % (95 % CI), at
    most 8; each latency record says whether precision or the cap stopped it); every record keeps the CPU
    model, versions and settings, and the latency tables say where and when they were measured. Each profile
    does its untimed work (FLOP counts, ONNX exports) first, one worker process per core, then times alone.
    benchmarks/paper_time.py times this step against the job as it was (fixed 5 x 60 rounds, untimed work
    in the sweep's process). Pass --fresh to drop earlier results instead of resuming.
    """
    session.install("-e", ".")
    if "--fresh" in session.posargs:
        session.run("rm", "-rf", RESULTS, external=True)
    session.run("lsbench", "table", "--deterministic")
    session.run("lsbench", "profile", "--models", PAPER_MODELS, "--out", RESULTS, "--format", "md")
    session.run("lsbench", "profile", "--models", PAPER_MODELS, "--runtime", "onnxruntime", "--metrics", "latency",
                "--out", RESULTS, "--format", "md")
    session.run("lsbench", "table", "--results", RESULTS, "--cpu", "cpu", "--mobile", "onnxruntime")
    session.run("lsbench", "pareto", "--results", RESULTS, "--device", "cpu")
    session.run("lsbench", "pareto", "--results", RESULTS, "--device", "onnxruntime")
    session.run("lsbench", "pareto", "--reported", "--device", "NVIDIA RTX 3090")
    session.run("lsbench", "pareto", "--reported", "--device", "NVIDIA H200", "--protocol", "lsnet_short")
    if "--fresh" in session.posargs:
        session.run("rm", "-rf", LSNET_FIGURE_RESULTS, external=True)
    session.run("lsbench", "profile", "--models", LSNET_FIGURE_MODELS, "--batch", "16", "--resolution", "224",
                "--threads", "1", "--metrics", "latency", "--warmup", "2", "--repeats", "8", "--rounds", "3",
                "--out", LSNET_FIGURE_RESULTS, "--format", "md")
    session.run("lsbench", "pareto", "--results", LSNET_FIGURE_RESULTS, "--device", "cpu", "--beside-published")


# The scaling curves of reports/scaling/: the LSNet comparison models from 224 to 1024 px, plus a batch sweep.
SCALING_MODELS = "lsnet_t,lsnet_b,repvit_m0_9,efficientvit_m4,fastvit_t8,mobilenetv3_large_100"


@nox.session
def scaling(session):
    """Regenerate reports/scaling/: latency, MACs and peak memory from 224 to 1024 px (batch 1) and at batch
    1, 4, 16 (224 px), 1 thread, with each model's fitted exponent. Resumes: stored points are not re-measured
    (pass --fresh to drop them). About 25 minutes on a busy 2-core machine."""
    session.install("-e", ".")
    if "--fresh" in session.posargs:
        session.run("rm", "-rf", "reports/scaling/results.jsonl", external=True)
    session.run("lsbench", "scale", "--models", SCALING_MODELS, "--resolution", "224,320,448,640,896,1024",
                "--batch", "1,4,16", "--warmup", "1", "--repeats", "4", "--rounds", "1", "--out", "reports/scaling")
