"""nox sessions: tests, the reports' freshness check, and regeneration of the paper's tables and figures.

All sessions reuse one venv per session with the project installed from pyproject.toml (torch and
torchvision pinned there to the only pair that imports beside timm on the CPU build machines).
"""
import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session):
    """The test suite (CUDA-marked tests skip without a GPU)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def reports(session):
    """Fail when the committed deterministic tables in reports/ are stale."""
    session.install("-e", ".")
    session.run("lsbench", "table", "--deterministic", "--check-stale")


@nox.session
def paper(session):
    """Regenerate reports/: deterministic tables, CPU latency tables (quick windows) and figures.

    Latency tables record where and when they were measured. Quick enough for CI's 2 cores.
    """
    session.install("-e", ".")
    session.run("lsbench", "table", "--deterministic")
    session.run("lsbench", "profile", "--models", "lsnet,efficientvit,repvit_m0_9,repvit_m1_1,mobilenetv3",
                "--metrics", "latency", "--repeats", "30", "--warmup", "5", "--out", "reports/results")
    session.run("lsbench", "table", "--results", "reports/results")
    session.run("lsbench", "pareto", "--results", "reports/results", "--device", "cpu")
    session.run("lsbench", "pareto", "--reported", "--device", "NVIDIA RTX 3090")
