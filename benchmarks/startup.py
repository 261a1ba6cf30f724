"""Start-up time of the CLI: `lsbench --help` and `lsbench list`, whole processes, median of N runs.

With --baseline DIR (another checkout, e.g. `git worktree add /tmp/old <commit>`), each command runs in turn
in this checkout and in DIR (A B A B ...), and the ratio is taken pair by pair, so the machine's drift moves
both sides alike. Targets (issue 11): `--help` <= 0.5 s, `list` <= 2 s on the 2-core CI machine.

    python benchmarks/startup.py [--runs 7] [--baseline /tmp/old] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {"help": ["--help"], "list": ["list", "--format", "csv"]}


def _run(checkout: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from lsbench.cli import main; main()", *args], cwd=checkout, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    report = {"python": platform.python_version(), "machine": platform.machine(), "cpu": cpu,
              "cores": os.cpu_count(), "load_average_at_start": os.getloadavg(),
              "runs": args.runs, "checkout": str(REPO), "baseline": str(args.baseline) if args.baseline else None,
              "commands": {}}
    for name, argv in COMMANDS.items():
        _run(REPO, argv)  # warm the file cache once
        if args.baseline:
            _run(args.baseline, argv)
        new, old = [], []
        for _ in range(args.runs):
            new.append(_run(REPO, argv))
            if args.baseline:
                old.append(_run(args.baseline, argv))
        row = {"median_s": statistics.median(new), "min_s": min(new), "max_s": max(new)}
        if old:
            row.update(baseline_median_s=statistics.median(old),
                       ratio_median=statistics.median(n / o for n, o in zip(new, old)))
        report["commands"][name] = row
        line = f"lsbench {' '.join(argv)}: median {row['median_s']:.2f} s [{row['min_s']:.2f}, {row['max_s']:.2f}]"
        if old:
            line += f"; baseline {row['baseline_median_s']:.2f} s; ratio {row['ratio_median']:.3f}"
        print(line)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
