"""Wall time and precision of the paper job's profiling step: the job as it was (fixed rounds) vs as it is now.

The profiling step of ``nox -s paper`` is two ``lsbench profile`` commands over the paper's models (noxfile
``PAPER_MODELS``): eager (params, FLOPs, latency) and ONNX Runtime (latency). Each arm runs both commands as
fresh processes into its own temporary results folder:

* ``fixed``: the job before issue 13: the CPU preset's 5 interleaved rounds of 10 warm-up + 60 timed calls,
  and the untimed work (FLOP counts, ONNX exports) done in the sweep's own process, model by model
  (``--precision off --rounds 5 --repeats 60 --warmup 10 --workers 1``);
* ``adaptive``: the job as it is now: rounds of 10 + 30 calls, at least 3, until the pooled median's 95 % CI
  is within ±1 %, at most 8; the untimed work first, in one worker process per core, then the timing alone
  (the defaults).

The arms alternate command by command (A B for the eager step, B A for the ONNX Runtime step; reversed in the
next pair) so that drift of a shared machine lands on both; the ratio is taken pair by pair. For every model and runtime it reports the precision reached: the relative half-width
of the 95 % CI of the pooled median, by order statistics (what the stopping rule judges) and by the records'
seeded bootstrap. The load average before and after each run is recorded: on a loaded machine both arms'
times and precisions move, the ratio measured side by side much less.

    python benchmarks/paper_time.py --pairs 1 --out reports/cpu
    python benchmarks/paper_time.py --models lsnet_t,repvit_m0_9 --pairs 2   # a documented subset
"""
from __future__ import annotations

import argparse
import ast
import datetime as dt
import os
import statistics
import tempfile
from pathlib import Path

from commands import lsbench_command, run_command, write_result
from lsbench.env import fingerprint
from lsbench.profile import ROUND_METRIC
from lsbench.results import ResultsStore
from lsbench.timing import median_half_width

REPO = Path(__file__).resolve().parents[1]
ARMS = {
    "fixed": ["--precision", "off", "--rounds", "5", "--repeats", "60", "--warmup", "10", "--workers", "1"],
    "adaptive": [],
}


def paper_models() -> str:
    """PAPER_MODELS as the noxfile defines it (read from its source, so nox need not be installed)."""
    tree = ast.parse((REPO / "noxfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PAPER_MODELS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit("noxfile.py defines no PAPER_MODELS")


def profiling_step(models: str, out: Path, arm_options: list[str]) -> list[list[str]]:
    """The paper session's two profile commands, with an arm's options."""
    return [
        lsbench_command("profile", "--models", models, "--out", str(out), "--format", "md", *arm_options),
        lsbench_command("profile", "--models", models, "--runtime", "onnxruntime", "--metrics", "latency",
                        "--out", str(out), "--format", "md", *arm_options),
    ]


def run_pair(models: str, tmp: Path, index: int) -> dict:
    """Both arms' profiling steps, command by command in the order A B then B A (ABBA within the pair, the
    whole order reversed in odd pairs), so that a linear drift of the machine lands on both arms equally."""
    arms = list(ARMS) if index % 2 == 0 else list(ARMS)[::-1]
    outs = {arm: tmp / f"pair{index}-{arm}" for arm in ARMS}
    steps: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    commands = {arm: profiling_step(models, outs[arm], ARMS[arm]) for arm in ARMS}
    for j in range(len(commands[arms[0]])):
        for arm in (arms if j % 2 == 0 else arms[::-1]):
            step = run_command(commands[arm][j], REPO)
            steps[arm].append(step)
            print(f"  {arm}: {step['command'][:60]}... {step['wall_s']:.0f} s wall, {step['cpu_s']:.0f} s CPU, "
                  f"load {step['loadavg_before'][0]:.1f} -> {step['loadavg_after'][0]:.1f}", flush=True)
    pair: dict = {"order": arms}
    for arm in ARMS:
        pair[arm] = {"wall_s": sum(s["wall_s"] for s in steps[arm]), "cpu_s": sum(s["cpu_s"] for s in steps[arm]),
                     "steps": steps[arm], "precision": precision_table(outs[arm])}
    return pair


def precision_table(out: Path) -> dict[str, dict]:
    """'runtime/model' -> rounds, samples, stop reason and the CI half-widths (relative) of the pooled median."""
    records = ResultsStore(out).records()
    table = {}
    for r in records:
        if r.metric != "latency":
            continue
        runtime = r.settings.get("runtime", "eager")
        rounds = [x.extra["samples_s"] for x in records
                  if x.metric == ROUND_METRIC and x.model == r.model and x.job_key == r.job_key]
        pooled = [s for samples in rounds for s in samples]
        table[f"{runtime}/{r.model}"] = {
            "median_ms": r.value, "rounds": len(rounds), "samples": len(pooled), "stop": r.extra.get("stop"),
            "half_width_order": median_half_width(pooled),
            "half_width_bootstrap": (r.stats["ci_high"] - r.stats["ci_low"]) / 2 / r.stats["median"],
        }
    return table


def summarize_precision(table: dict[str, dict]) -> dict:
    widths = [v["half_width_order"] for v in table.values()]
    return {"models": len(widths), "max": max(widths), "median": statistics.median(widths),
            "within_1pct": sum(w <= 0.01 for w in widths),
            "stops": {s: sum(v["stop"] == s for v in table.values()) for s in sorted({str(v["stop"]) for v in table.values()})}}


def compare_precision(pair: dict) -> dict:
    """'runtime/model' -> (fixed, adaptive) order-statistic half-widths of one pair."""
    fixed, adaptive = pair["fixed"]["precision"], pair["adaptive"]["precision"]
    return {k: [fixed[k]["half_width_order"], adaptive[k]["half_width_order"]] for k in sorted(fixed) if k in adaptive}


def load_note(pairs: list[dict]) -> str:
    """What the machine's load was around the runs (1-minute load average), for the reader of the result."""
    loads = [x for p in pairs for arm in ARMS for st in p[arm]["steps"]
             for x in (st["loadavg_before"][0], st["loadavg_after"][0])]
    quiet = max(loads) <= os.cpu_count() / 2 + 0.5
    return (f"1-minute load {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores around the runs: "
            + ("a quiet machine (this benchmark's own process only)" if quiet else
               "a shared machine; compare the ratios measured side by side, not the absolute times"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="default: the noxfile's PAPER_MODELS (the full job)")
    parser.add_argument("--pairs", type=int, default=1, help="A/B pairs; the order alternates pair by pair")
    parser.add_argument("--out", type=Path, default=None, help="directory for paper_time.json")
    args = parser.parse_args()
    models = args.models or paper_models()
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    pairs = []
    with tempfile.TemporaryDirectory(prefix="paper-time-") as tmp:
        for i in range(args.pairs):
            print(f"pair {i + 1}/{args.pairs}", flush=True)
            pair = run_pair(models, Path(tmp), i)
            for arm in ARMS:
                print(f"  {arm}: {pair[arm]['wall_s']:.0f} s wall, {pair[arm]['cpu_s']:.0f} s CPU; precision "
                      f"{summarize_precision(pair[arm]['precision'])}", flush=True)
            pair["wall_ratio"] = pair["adaptive"]["wall_s"] / pair["fixed"]["wall_s"]
            pair["cpu_ratio"] = pair["adaptive"]["cpu_s"] / pair["fixed"]["cpu_s"]
            pairs.append(pair)
            print(f"pair {i + 1}: adaptive / fixed wall {pair['wall_ratio']:.3f}, CPU {pair['cpu_ratio']:.3f}",
                  flush=True)
    result = {
        "what": "paper job profiling step (eager + ONNX Runtime profile of PAPER_MODELS), fixed vs adaptive",
        "models": models.split(","), "full_job": args.models is None, "arms": ARMS,
        "started_utc": started, "finished_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "pairs": pairs,
        "wall_ratio_median": statistics.median(p["wall_ratio"] for p in pairs),
        "cpu_ratio_median": statistics.median(p["cpu_ratio"] for p in pairs),
        "precision_summary": {arm: [summarize_precision(p[arm]["precision"]) for p in pairs] for arm in ARMS},
        "per_model_half_width": [compare_precision(p) for p in pairs],
        "note": load_note(pairs),
        "fingerprint": fingerprint("cpu"), "cpu_count": os.cpu_count(),
    }
    print(f"adaptive / fixed: wall {result['wall_ratio_median']:.3f}, CPU {result['cpu_ratio_median']:.3f} "
          f"(median over {len(pairs)} pair(s))")
    write_result(args.out, "paper_time.json", result)


if __name__ == "__main__":
    main()
