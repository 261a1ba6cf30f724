"""`lsbench erf lsnet_b` with its defaults (50 images at 1024 px, per-stage maps), timed end to end as a user
runs it: the code as it was when issue 14 asked for a leaner ERF against the code now, whole commands in turn.

The baseline is a checkout of the commit before the ERF changes (504f86f^: one ``forward_features`` and one
``stage_outputs`` pass per image, a backward per layer with ``stage3`` computed again as ``final``, weight
gradients tracked, the model as built). Each run is a fresh process with that checkout first on PYTHONPATH,
in the order A B B A (then B A A B), so that drift of the machine lands on both; the ratio is taken pair by
pair. Every run writes its area-ratio table, and the tables of the two versions are compared row by row.

    git worktree add /tmp/erf-baseline 504f86f^
    python benchmarks/erf_end_to_end.py --baseline /tmp/erf-baseline --pairs 2 --out reports/erf
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
from pathlib import Path

import pandas as pd

from commands import lsbench_command, run_command, write_result
from lsbench.env import fingerprint

REPO = Path(__file__).resolve().parents[1]
MODEL = "lsnet_b"
ISSUE_QUIET_BASELINE_S = 2.4 * 60  # issue 14: the baseline's defaults on this host when quiet
TARGET_S = 1.5 * 60


def area_table(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / f"erf_ratios_{MODEL}.csv").sort_values(["layer", "threshold"]).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="checkout of the code before the changes")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="directory for erf_end_to_end.json")
    args = parser.parse_args()
    if not (args.baseline / "lsbench" / "erf.py").is_file():
        raise SystemExit(f"{args.baseline} is not an lsbench checkout")
    code = {"baseline": args.baseline.resolve(), "now": REPO}
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    runs: dict[str, list[dict]] = {arm: [] for arm in code}
    tables: dict[str, pd.DataFrame] = {}
    with tempfile.TemporaryDirectory(prefix="erf-e2e-") as tmp:
        for p in range(args.pairs):
            order = ["baseline", "now", "now", "baseline"] if p % 2 == 0 else ["now", "baseline", "baseline", "now"]
            for k, arm in enumerate(order):
                out = Path(tmp) / f"{arm}-{p}-{k}"
                run = run_command(lsbench_command("erf", MODEL, "--out", str(out), "--format", "csv"), code[arm])
                runs[arm].append(run)
                tables.setdefault(arm, area_table(out))
                print(f"pair {p + 1} {arm}: {run['wall_s']:.1f} s wall, {run['cpu_s']:.1f} s CPU, "
                      f"load {run['loadavg_before'][0]:.1f} -> {run['loadavg_after'][0]:.1f}", flush=True)
    # pair p holds two runs of each arm: compare their means, pair by pair
    ratios = [statistics.fmean(r["wall_s"] for r in runs["now"][2 * p:2 * p + 2])
              / statistics.fmean(r["wall_s"] for r in runs["baseline"][2 * p:2 * p + 2]) for p in range(args.pairs)]
    a, b = tables["baseline"], tables["now"]
    same_rows = a[["layer", "threshold", "side"]].equals(b[["layer", "threshold", "side"]])
    ratio_diff = float((a["ratio"] - b["ratio"]).abs().max())
    median_ratio = statistics.median(ratios)
    result = {
        "what": f"lsbench erf {MODEL} with its defaults, whole command, baseline (504f86f^) vs now, ABBA pairs",
        "started_utc": started, "finished_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "runs": runs, "wall_ratio_per_pair": ratios, "wall_ratio_median": median_ratio,
        "wall_s_median": {arm: statistics.median(r["wall_s"] for r in rs) for arm, rs in runs.items()},
        "cpu_s_median": {arm: statistics.median(r["cpu_s"] for r in rs) for arm, rs in runs.items()},
        "issue_quiet_baseline_s": ISSUE_QUIET_BASELINE_S, "target_s": TARGET_S,
        "now_scaled_to_issue_baseline_s": median_ratio * ISSUE_QUIET_BASELINE_S,
        "target_ratio": TARGET_S / ISSUE_QUIET_BASELINE_S,
        "outputs": {"same_squares_every_layer_and_threshold": same_rows, "max_area_ratio_difference": ratio_diff},
        "fingerprint": fingerprint("cpu"), "cpu_count": os.cpu_count(),
    }
    print(f"now / baseline wall: {median_ratio:.3f} (per pair {', '.join(f'{r:.3f}' for r in ratios)}); "
          f"scaled to the issue's quiet {ISSUE_QUIET_BASELINE_S:.0f} s: {median_ratio * ISSUE_QUIET_BASELINE_S:.0f} s "
          f"(target {TARGET_S:.0f} s); same squares: {same_rows}, largest area-ratio difference {ratio_diff:.2e}")
    write_result(args.out, "erf_end_to_end.json", result)


if __name__ == "__main__":
    main()
