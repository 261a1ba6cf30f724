"""Repeatability of `lsbench profile` CPU latency: the CV of the median over repeated, independent runs.

Each run is a fresh `lsbench profile` process (latency only, default CPU preset unless overridden) writing
to its own results directory; the order of the models alternates between runs so that drift of the machine
does not land on one model. Prints and writes (``--out``) each run's median and the CV of the medians.

    python benchmarks/cpu_repeatability.py --models lsnet_t,repvit_m0_9 --runs 5 --out reports/cpu
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from lsbench.env import fingerprint
from lsbench.results import ResultsStore


def run_once(models: list[str], out: Path, extra: list[str]) -> dict[str, float]:
    cmd = [sys.executable, "-c", "from lsbench.cli import main; main()", "profile", "--models", ",".join(models),
           "--metrics", "latency", "--out", str(out), "--format", "csv", *extra]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    frame = ResultsStore(out).frame()
    rows = frame[frame["metric"] == "latency"]
    return {r["model"]: float(r["value"]) for _, r in rows.iterrows()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lsnet_t,repvit_m0_9")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="directory for repeatability.json")
    args, extra = parser.parse_known_args()
    models = args.models.split(",")
    medians: dict[str, list[float]] = {m: [] for m in models}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            order = models if i % 2 == 0 else models[::-1]
            result = run_once(order, Path(tmp) / f"run{i}", extra)
            for m in models:
                medians[m].append(result[m])
            print(f"run {i + 1}/{args.runs}: " + ", ".join(f"{m} {result[m]:.3f} ms" for m in models), flush=True)
    summary = {}
    for m, values in medians.items():
        mean = statistics.fmean(values)
        cv = statistics.stdev(values) / mean if len(values) > 1 else 0.0
        summary[m] = {"medians_ms": values, "median_of_medians_ms": statistics.median(values),
                      "cv_of_medians": cv}
        print(f"{m}: median of medians {statistics.median(values):.3f} ms, CV of the median {cv * 100:.2f}% "
              f"over {len(values)} runs")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        record = {"runs": args.runs, "extra_options": extra, "models": summary, "fingerprint": fingerprint("cpu")}
        (args.out / "repeatability.json").write_text(json.dumps(record, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
