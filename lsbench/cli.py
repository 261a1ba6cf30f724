"""The lsbench command line: parses options, calls library functions, prints. No measuring logic here.

Every error a user can cause (``ZooError`` / ``LsbenchError``, and a bad option or argument) is printed as one
line on stderr and exits with code 2; an interrupted sweep exits 130 after saying where the finished results
are. Imports of the library happen inside each command, so ``lsbench --help`` starts without torch or timm.
"""
from __future__ import annotations

import functools
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Honest, reproducible benchmarks of lightweight vision backbones (LSNet and baselines).")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

FORMAT_HELP = "table | csv | json | md"


def _error_line(message: str) -> None:
    err_console.print(f"error: {' '.join(str(message).split())}", markup=False, highlight=False)


def _user_errors(fn):
    """Turn user-caused errors into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            errors = sys.modules.get("zoo.errors")  # not imported yet: then no ZooError can have been raised
            if errors is None or not isinstance(exc, errors.ZooError):
                raise
            _error_line(str(exc))
            raise typer.Exit(2) from None

    return wrapper


def _print_frame(frame, fmt: str, title: str | None = None) -> None:
    """A frame on stdout: a rich table for people, csv/json/md text for programs."""
    import pandas as pd
    from rich.table import Table

    from .report.render import render_frame

    if fmt != "table":
        typer.echo(render_frame(frame, fmt))
        return
    if not console.is_terminal:
        console.width = max(console.width, 200)  # logs and pipes: don't squeeze columns to 80
    table = Table(title=title)
    for col in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[col]) and not pd.api.types.is_bool_dtype(frame[col])
        table.add_column(str(col), justify="right" if numeric else "left")
    for _, row in frame.iterrows():
        table.add_row(*[_cell(v) for v in row])
    console.print(table)


def _cell(value) -> str:
    import pandas as pd

    if pd.api.types.is_scalar(value) and pd.isna(value):
        return "-"
    if isinstance(value, int) and abs(value) >= 100_000:
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def _warn_store(store) -> None:
    """One line when the store held records that could not be read (they are skipped, never fatal)."""
    warning = store.read_warning()
    if warning:
        err_console.print(warning, markup=False, highlight=False)


def _split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


@app.command("list")
@_user_errors
def list_cmd(family: Optional[str] = typer.Option(None, help="only this family (e.g. lsnet, repvit)"),
             fmt: str = typer.Option("table", "--format", help=FORMAT_HELP)) -> None:
    """List the registry: every benchmarked model with its parameters and published figures."""
    from .listing import zoo_listing
    from .options import check_format

    _print_frame(zoo_listing(family), check_format(fmt), title="lsbench model zoo")


@app.command()
@_user_errors
def profile(
    models: str = typer.Option("lsnet_t,repvit_m0_9", "--models", "-m",
                               help="comma-separated names, a family (lsnet, repvit...) or 'all'"),
    device: str = typer.Option("cpu", help="cpu | cuda (onnxruntime | executorch | litert: --runtime on the cpu)"),
    runtime: Optional[str] = typer.Option(None, help="eager | onnxruntime | executorch | litert (exported, on the CPU)"),
    preset: Optional[str] = typer.Option(None, help="cpu | lsnet | efficientvit | timm | quick"),
    quick: bool = typer.Option(False, "--quick", help="short windows for smoke runs and CI"),
    batch: Optional[int] = typer.Option(None, help="batch size (default: the preset's)"),
    resolution: Optional[int] = typer.Option(None, help="input side (default: each model's native size)"),
    dtype: Optional[str] = typer.Option(None, help="fp32 | fp16 | bf16"),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="autocast to --dtype instead of casting"),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last"),
    compile_: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model"),
    fused: Optional[bool] = typer.Option(None, "--fused/--unfused", help="reparameterize before timing"),
    features_only: Optional[bool] = typer.Option(None, "--features-only/--classifier",
                                                 help="time the backbone's stage maps (dense tasks), not the classifier"),
    threads: Optional[int] = typer.Option(None, help="CPU intra-op threads (default 1)"),
    interop_threads: Optional[int] = typer.Option(None, help="CPU inter-op threads (default 1)"),
    pin_cores: Optional[str] = typer.Option(None, help="pin to these cores, e.g. 0 or 0,1"),
    repeats: Optional[int] = typer.Option(None, help="timed iterations (at least), per round"),
    warmup: Optional[int] = typer.Option(None, help="warm-up iterations (at least), before each round"),
    rounds: Optional[int] = typer.Option(None, help="CPU: interleaved timing rounds over the models (at most, with "
                                                     "--precision; default 8)"),
    precision: Optional[str] = typer.Option(None, help="stop a model's rounds once its median's 95 % CI is within "
                                                       "±this (default 0.01 = ±1 %, after 3 rounds), or at --rounds; "
                                                       "'off': exactly --rounds rounds"),
    metrics: str = typer.Option("params,flops,latency", help="any of params, flops, latency"),
    counters: str = typer.Option("fvcore,ptflops,torch", help="FLOP counters to run"),
    out: Path = typer.Option(Path("results"), help="results directory (results.jsonl is appended)"),
    fmt: str = typer.Option("table", "--format", help=f"summary format: {FORMAT_HELP}"),
    wide: bool = typer.Option(False, "--wide", help="every summary column in the table (csv/json always have them)"),
    # training mode and isolation (issue 13)
    mode: Optional[str] = typer.Option(None, help="infer | train (a full training step: forward, loss, backward, "
                                                   "optimizer step; default preset timm on CUDA)"),
    optimizer: Optional[str] = typer.Option(None, help="train mode: sgd | adamw (default sgd)"),
    isolate: Optional[bool] = typer.Option(None, "--isolate/--no-isolate",
                                           help="each model's rounds in fresh processes (default: on for cuda)"),
    workers: int = typer.Option(0, "--workers", envvar="LSBENCH_WORKERS",
                                help="processes for the untimed work done before any timing (FLOP counts, "
                                     "exports): 0 = one per core, up to 4; 1 = in this process"),
) -> None:
    """Measure params, FLOPs and latency; every finished round is stored at once, reruns resume."""
    from .errors import LsbenchError
    from .options import check_format, split_models
    from .profile import job_key, preflight, profile_sweep, validate_job
    from .report.summary import compact_summary, profile_summary
    from .results import ResultsStore
    from .settings import RUNTIMES, resolve_settings
    from .untimed import check_workers

    check_format(fmt)
    names = split_models(models)
    if device in RUNTIMES:  # `--device onnxruntime`: shorthand for the runtime on the host CPU
        if runtime not in (None, device):
            raise LsbenchError(f"--device {device} and --runtime {runtime} disagree")
        device, runtime = "cpu", device
    cores = None
    if pin_cores:
        try:
            cores = tuple(int(c) for c in pin_cores.split(","))
        except ValueError:
            raise LsbenchError(f"--pin-cores takes core numbers like 0 or 0,1, got {pin_cores!r}") from None
    settings = resolve_settings(
        device, preset, runtime, quick, batch=batch, resolution=resolution, dtype=dtype, amp=amp,
        channels_last=channels_last, compile=compile_, fused=fused, features_only=features_only, threads=threads,
        interop_threads=interop_threads, pin_cores=cores, repeats=repeats, warmup=warmup, rounds=rounds,
        mode=mode, optimizer=optimizer)
    if precision is not None:  # 'off' (fixed rounds) cannot travel as an override: None means "not given" there
        try:
            target = None if precision.strip().lower() == "off" else float(precision)
        except ValueError:
            raise LsbenchError(f"--precision takes a fraction like 0.01 (±1 %) or 'off', got {precision!r}") from None
        settings = settings.replace(precision=target).validate()
    metric_list, counter_list = validate_job(_split_list(metrics), _split_list(counters))
    check_workers(workers)
    preflight(names, settings, metric_list)
    store = ResultsStore.open_for_writing(out)  # fail before measuring, not after
    from .isolate import default_isolation

    failed: list[str] = []
    _run_sweep(names, settings, store, metric_list, counter_list, profile_sweep,
               isolate=default_isolation(settings.device) if isolate is None else isolate, workers=workers,
               on_fail=lambda n, line: (failed.append(n), err_console.print(line, markup=False, highlight=False)))
    _warn_store(store)
    summary = profile_summary(store.frame(), names, job_key(settings, metric_list, counter_list))
    if fmt in ("table", "md") and not wide:
        summary = compact_summary(summary)
    where = settings.device if settings.runtime == "eager" else f"{settings.device} through {settings.runtime}"
    title = (f"{where}, preset {settings.preset}, batch {settings.batch}, {settings.dtype}, "
             f"threads {settings.threads}; results in {store.path}")
    _print_frame(summary, fmt, title=title)
    if "latency" in metric_list:
        from .compare import verdict_from_rounds

        _print_verdicts(verdict_from_rounds(store.records(), names, job_key(settings, metric_list, counter_list)), fmt)
    if failed:
        raise typer.Exit(1)


def _run_sweep(names, settings, store, metrics, counters, sweep, **options) -> None:
    """The sweep with a progress bar on stderr, holding the store's lock of this job (a second identical
    sweep waits, then skips what this one finished); Ctrl-C keeps every finished round and exits 130."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .profile import job_key

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                        TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=err_console,
                        transient=False)
    task = progress.add_task("profiling", total=len(names))
    if store.other_measurement_active():
        err_console.print(f"warning: another measurement is running on {store.directory}; it competes for the "
                          f"same cores", markup=False, highlight=False)
    key = job_key(settings, metrics, counters)
    try:
        with store.measuring(), store.job_lock(key, on_wait=lambda pid: err_console.print(
                f"waiting for another sweep with identical settings (pid {pid}) to finish", markup=False)), progress:
            sweep(names, settings, store, metrics, counters, **options,
                  on_start=lambda n: progress.update(task, description=f"profiling {n}"),
                  on_done=lambda n, records: (progress.advance(task), _say_decayed(progress.console, n, records)),
                  on_skip=lambda n: (progress.advance(task),
                                     progress.console.print(f"{n}: already measured with these settings, skipped")))
    except KeyboardInterrupt:
        err_console.print(f"interrupted: every finished round is kept in {store.path}; rerun to resume",
                          markup=False, highlight=False)
        raise typer.Exit(130) from None


def _say_decayed(out: Console, name: str, records) -> None:
    """One line when a train-mode batch was lowered after CUDA ran out of memory (the final batch is stored)."""
    for r in records:
        if r.metric == "throughput" and r.extra.get("oom_batches"):
            out.print(f"{name}: CUDA out of memory at batch {', '.join(map(str, r.extra['oom_batches']))}; "
                      f"measured at batch {r.extra['batch']}", markup=False, highlight=False)


@app.command()
@_user_errors
def flops(model: str = typer.Argument(..., help="model name"),
          resolution: Optional[int] = typer.Option(None, help="input side (default: native)"),
          counters: str = typer.Option("fvcore,ptflops,torch"),
          by_module: bool = typer.Option(False, "--by-module", help="per-module breakdown (fvcore)"),
          depth: Optional[int] = typer.Option(2, help="module depth of the breakdown"),
          unfused: bool = typer.Option(False, "--unfused", help="count the model as built, not fused"),
          fmt: str = typer.Option("table", "--format", help=FORMAT_HELP)) -> None:
    """FLOPs of one model from each counter, with its convention (and a per-module breakdown)."""
    from .counting import check_counters, flops_frame, model_flops, module_breakdown
    from .options import check_format, check_resolution

    check_format(fmt)
    check_resolution(resolution)
    counts, res = model_flops(model, check_counters(_split_list(counters)), resolution, fused=not unfused)
    form = "as built" if unfused else "reparameterized"
    _print_frame(flops_frame(counts), fmt, title=f"{model} at {res}x{res}, batch 1, {form}")
    if by_module:
        _print_frame(module_breakdown(counts[0], depth=depth), fmt, title=f"{counts[0].counter} by module")


@app.command()
@_user_errors
def erf(models: list[str] = typer.Argument(..., help="one or more model names"),
        images: Optional[Path] = typer.Option(None, "--images", help="image folder (default: scikit-image's photos)"),
        num_images: int = typer.Option(50, "--num-images", help="images to average over"),
        size: int = typer.Option(1024, "--size", help="input side in pixels"),
        checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="weights (default: random init)"),
        stages: bool = typer.Option(True, "--stages/--no-stages", help="also analyse every stage output"),
        device: str = typer.Option("cpu", help="cpu | cuda"),
        seed: int = typer.Option(0, help="seed of model init and image sampling"),
        out: Path = typer.Option(Path("reports/erf"), "--out", help="output directory"),
        fmt: str = typer.Option("table", "--format", help=FORMAT_HELP)) -> None:
    """Effective receptive field (RepLKNet method): heat maps, comparison figure, area-ratio table."""
    from .report.erf_plots import erf_report
    from .options import check_format, check_positive, check_resolution, require_device, split_models

    check_format(fmt)
    check_resolution(size, "--size")
    check_positive(num_images, "--num-images")
    names = split_models(models)
    require_device(device)
    table, written = erf_report(names, out, images=images, num_images=num_images, size=size,
                                checkpoint=checkpoint, stages=stages, device=device, seed=seed)
    _print_frame(table, fmt, title=f"ERF area ratios ({table['num_images'].iloc[0]} images at {size}px); "
                                   f"figures in {out}")


@app.command("eval")
@_user_errors
def eval_cmd(model: str = typer.Argument(..., help="model name"),
             data: Path = typer.Option(..., "--data", help="ImageFolder root (class sub-folders)"),
             checkpoint: Optional[Path] = typer.Option(None, "--checkpoint"),
             batch_size: int = typer.Option(64, "--batch-size"),
             workers: int = typer.Option(2, help="DataLoader workers"),
             resize: int = typer.Option(256), crop: int = typer.Option(224),
             interpolation: str = typer.Option("bicubic"),
             device: str = typer.Option("cpu", help="cpu | cuda"),
             num_classes: Optional[int] = typer.Option(None, "--num-classes", help="classifier size")) -> None:
    """Top-1/top-5 on an ImageFolder with the official preprocessing (torchrun-ready)."""
    from .evaluate import evaluate_model
    from .options import check_positive, require_device

    check_positive(batch_size, "--batch-size")
    check_positive(num_classes, "--num-classes")
    require_device(device)
    result = evaluate_model(model, data, checkpoint=checkpoint, num_classes=num_classes, batch_size=batch_size,
                            workers=workers, resize=resize, crop=crop, interpolation=interpolation, device=device)
    if result is None:  # a non-zero torchrun rank: rank 0 reports
        return
    weights = str(checkpoint) if checkpoint else "random init"
    typer.echo(f"{model} ({weights}): top-1 {result['top1'] * 100:.2f}%  top-5 {result['top5'] * 100:.2f}%  "
               f"on {result['n']} images ({len(result['skipped'])} unreadable skipped)")


@app.command()
@_user_errors
def table(results: Path = typer.Option(Path("results"), "--results", help="results directory to read"),
          models: Optional[str] = typer.Option(None, "--models", "-m", help="models (default: the registry)"),
          deterministic: bool = typer.Option(False, "--deterministic",
                                             help="params/FLOPs/reported columns only, computed here"),
          gpu: Optional[str] = typer.Option(None, help="pick GPU results: preset, GPU name or settings key"),
          cpu: Optional[str] = typer.Option(None, help="pick CPU results: preset, CPU model or settings key"),
          mobile: Optional[str] = typer.Option(None, help="pick on-host runtime results: runtime name"),
          out: Path = typer.Option(Path("reports/tables"), "--out", help="where md/csv/tex go"),
          check: bool = typer.Option(False, "--check", help="exit 1 when a measured figure misses a published one"),
          check_stale: bool = typer.Option(False, "--check-stale",
                                           help="write nothing; exit 1 when the files in --out are stale"),
          fmt: str = typer.Option("table", "--format", help=FORMAT_HELP)) -> None:
    """The paper's comparison table (Markdown, CSV, LaTeX): measured beside published, mismatches flagged."""
    from .options import check_format, split_models
    from .report.flags import check_table
    from .report.render import stale_files, write_table
    from .report.tables import table_outputs
    from .results import open_results

    check_format(fmt)
    names = split_models(models) if models else None
    store = None if deterministic else open_results(results)
    outputs = table_outputs(names, None if store is None else store.frame(), gpu=gpu, cpu=cpu, mobile=mobile,
                            results_label=str(results))
    if store is not None:
        _warn_store(store)
    if check_stale:
        stale = [p for stem, (frame, cmd, renderer) in outputs.items()
                 for p in stale_files(frame, out, stem, command=cmd, renderer=renderer)]
        for path in stale:
            err_console.print(f"stale: {path} (regenerate with `lsbench table --deterministic`)", markup=False)
        raise typer.Exit(1 if stale else 0)
    written = [p for stem, (frame, cmd, renderer) in outputs.items()
               for p in write_table(frame, out, stem, command=cmd, renderer=renderer)]
    made = next(iter(outputs.values()))[0]
    _print_frame(made, fmt, title=f"written: {', '.join(str(p) for p in written)}")
    if check:
        problems = check_table(made)
        for line in problems:
            err_console.print(f"mismatch: {line}", markup=False)
        if problems:
            raise typer.Exit(1)


@app.command()
@_user_errors
def pareto(results: Path = typer.Option(Path("results"), "--results", help="results directory to read"),
           device: str = typer.Option("cpu", help="one device: cpu, cuda, a GPU/CPU name, or a runtime"),
           metric: Optional[str] = typer.Option(None, help="latency | throughput | energy_per_image (default: throughput for "
                                                           "--reported, latency for measured)"),
           reported: bool = typer.Option(False, "--reported", help="published figures only (e.g. the paper's)"),
           overlay: bool = typer.Option(False, "--overlay", help="add the published figures on the same device"),
           protocol: Optional[str] = typer.Option(None, help="published protocol when a device has several"),
           models: Optional[str] = typer.Option(None, "--models", "-m"),
           beside: bool = typer.Option(False, "--beside-published",
                                       help="measured throughput of the LSNet figure's models beside that figure"),
           out: Path = typer.Option(Path("reports/figures"), "--out", help="output directory")) -> None:
    """Accuracy against latency or throughput on one device under one protocol, frontier drawn."""
    from .options import split_models
    from .report.pareto import pareto_figure
    from .results import open_results

    names = split_models(models) if models else None
    store = None if reported else open_results(results)
    paths = pareto_figure(None if store is None else store.frame(), device, out, metric=metric, overlay=overlay,
                          protocol=protocol, models=names, beside_published=beside)
    if store is not None:
        _warn_store(store)
    console.print("written: " + ", ".join(str(p) for p in paths))


@app.command()
@_user_errors
def export(model: str = typer.Argument(..., help="model name"),
           formats: str = typer.Option("onnx", "--format", help="onnx, pte, tflite, coreml (comma-separated)"),
           resolution: Optional[int] = typer.Option(None, help="input side (default: native)"),
           batch: int = typer.Option(1, help="static batch of the artifact"),
           checkpoint: Optional[Path] = typer.Option(None, "--checkpoint"),
           out: Path = typer.Option(Path("exports"), "--out", help="output directory"),
           tol: float = typer.Option(1e-4, help="max error relative to the output scale")) -> None:
    """Write deployable artifacts of the deploy (fused) form, each checked against eager PyTorch."""
    from rich.table import Table

    from .export import check_formats, export_registry_model
    from .options import check_positive, check_resolution

    check_resolution(resolution)
    check_positive(batch, "batch")
    fmts = check_formats(_split_list(formats))
    results, res = export_registry_model(model, fmts, out, resolution=resolution, batch=batch,
                                         checkpoint=checkpoint, tol=tol)
    shown = Table(title=f"{model} at {res}x{res}, batch {batch}, reparameterized")
    for col in ("format", "path", "MB", "max rel err", "checked in", "passed"):
        shown.add_column(col)
    for result in results:
        rel = "-" if result.max_rel_err is None else f"{result.max_rel_err:.2e}"
        shown.add_row(result.format, str(result.path), f"{result.size_bytes / 1e6:.1f}", rel,
                      result.check_runtime or (result.check_note or "-"), str(result.passed))
    console.print(shown)


# --- anatomy (issue 12): one block, parsing only; the work is lsbench.anatomy_job ---------------------
@app.command()
@_user_errors
def anatomy(models: list[str] = typer.Argument(..., help="one or more model names (or a family, 'all')"),
            device: str = typer.Option("cpu", help="cpu | cuda"),
            batch: int = typer.Option(1, help="batch size"),
            resolution: Optional[int] = typer.Option(None, help="input side (default: each model's native size)"),
            threads: int = typer.Option(1, help="CPU intra-op threads (the ceilings are measured at this count)"),
            counter: str = typer.Option("fvcore", help="MAC counter: fvcore | ptflops | torch"),
            warmup: Optional[int] = typer.Option(None, help="warm-up calls before the first round (default 10)"),
            repeats: Optional[int] = typer.Option(None, help="timed calls per round and form (default 20)"),
            rounds: Optional[int] = typer.Option(None, help="alternating hooked/unhooked rounds (default 12)"),
            out: Path = typer.Option(Path("reports/anatomy"), "--out",
                                     help="directory for frames, figures and results.jsonl"),
            fmt: str = typer.Option("table", "--format", help=FORMAT_HELP)) -> None:
    """Why a backbone is fast or slow: per-part latency, MACs, bytes, intensity, on a measured roofline."""
    from .anatomy import by_part
    from .anatomy_job import anatomy_settings, run_anatomy, sum_check
    from .report.anatomy_files import save_anatomy
    from .counting import check_counters
    from .options import check_format, split_models
    from .results import ResultsStore

    check_format(fmt)
    check_counters(counter)
    names = split_models(models)
    settings = anatomy_settings(device, batch, resolution, threads, warmup=warmup, repeats=repeats, rounds=rounds)
    store = ResultsStore.open_for_writing(out)
    run = run_anatomy(names, settings, counter=counter, store=store,
                      on_start=lambda n: err_console.print(f"measuring {n}"))
    written = save_anatomy(run, out)
    _print_frame(by_part(run.parts), fmt, title="time, MACs and bytes per part")
    _print_frame(sum_check(run.totals), fmt, title=f"parts' sum vs latency measured the normal way; "
                                        f"{len(written)} files and results.jsonl in {out}")


# --- compare (issue 13): one block, parsing only; the work is lsbench.compare ---------------------------
def _print_verdicts(lines: list[str], fmt: str) -> None:
    """Verdict lines after a frame: on stdout beside a table or Markdown, on stderr when stdout is csv/json."""
    for line in lines:
        if fmt in ("table", "md"):
            typer.echo(line)
        else:
            err_console.print(line, markup=False, highlight=False)


@app.command()
@_user_errors
def compare(models: list[str] = typer.Argument(..., help="two or more model names; ratios are to the first"),
            device: str = typer.Option("cpu", help="cpu | cuda"),
            precision: float = typer.Option(0.02, help="stop when every ratio's 95 % CI is within ±this (0.02 = ±2 %)"),
            max_time: float = typer.Option(120.0, "--max-time", help="stop before a round would end past this many seconds "
                                                                        "(the --min-rounds always run)"),
            min_rounds: int = typer.Option(5, "--min-rounds", help="rounds always run before the stopping rule"),
            preset: Optional[str] = typer.Option(None, help="timing windows (default: cpu on the CPU, lsnet_short on CUDA)"),
            threads: Optional[int] = typer.Option(None, help="CPU intra-op threads (default 1)"),
            batch: Optional[int] = typer.Option(None, help="batch size (default: the preset's)"),
            resolution: Optional[int] = typer.Option(None, help="input side (default: each model's native size)"),
            warmup: Optional[int] = typer.Option(None, help="warm-up iterations before each round"),
            repeats: Optional[int] = typer.Option(None, help="timed iterations per model and round"),
            out: Optional[Path] = typer.Option(None, "--out", help="results directory to store latencies and ratios"),
            fmt: str = typer.Option("table", "--format", help=FORMAT_HELP)) -> None:
    """Is A faster than B? Paired interleaved rounds on fresh builds until each ratio's CI is tight enough."""
    from .compare import comparison_frame, comparison_verdicts, compare_models
    from .errors import LsbenchError
    from .options import check_format, check_positive, check_resolution, require_device, split_models
    from .results import ResultsStore
    from .settings import resolve_settings

    check_format(fmt)
    names = split_models(models)
    if len(names) < 2:
        raise LsbenchError(f"compare needs at least 2 different models, got {', '.join(names)}")
    require_device(device)
    check_resolution(resolution)
    check_positive(min_rounds, "--min-rounds")
    preset = preset or ("lsnet_short" if device == "cuda" else "cpu")
    settings = resolve_settings(device, preset, batch=batch, resolution=resolution, threads=threads, warmup=warmup,
                                repeats=repeats)
    store = ResultsStore.open_for_writing(out) if out is not None else None
    result = compare_models(names, settings, precision=precision, max_time_s=max_time, min_rounds=min_rounds,
                            store=store, on_round=lambda r, cis: err_console.print(
                                f"round {r}: widest CI ±{max(c.half_width for c in cis.values()) * 100:.1f} %"
                                if r > 1 else "round 1 timed", markup=False, highlight=False))
    how = {"precision": f"reached ±{precision * 100:g} %", "time limit": "stopped at the time limit"}.get(
        result.stopped_by, result.stopped_by)
    _print_frame(comparison_frame(result), fmt, title=f"latency ratio to {names[0]} {result.context}; {how} "
                                                      f"after {result.rounds} rounds, {result.elapsed_s:.0f} s")
    _print_verdicts(comparison_verdicts(result), fmt)


# --- scale (issue 13): one block, parsing only; the work is lsbench.scaling -----------------------------
@app.command()
@_user_errors
def scale(models: str = typer.Option("lsnet_t,repvit_m0_9", "--models", "-m",
                                     help="comma-separated names, a family (lsnet, repvit...) or 'all'"),
          resolution: str = typer.Option("224,320,448,640,896,1024", help="input sides of the resolution sweep"),
          batch: str = typer.Option("1", help="batch sizes: the first is the resolution sweep's, the rest are "
                                              "swept at --batch-resolution"),
          batch_resolution: Optional[int] = typer.Option(None, help="side of the batch sweep (default: the "
                                                                    "first --resolution)"),
          device: str = typer.Option("cpu", help="cpu | cuda"),
          threads: Optional[int] = typer.Option(None, help="CPU intra-op threads (default 1)"),
          dtype: Optional[str] = typer.Option(None, help="fp32 | fp16 | bf16"),
          warmup: Optional[int] = typer.Option(None, help="warm-up calls per round (default 3 on the CPU)"),
          repeats: Optional[int] = typer.Option(None, help="timed calls per round (default 10 on the CPU)"),
          rounds: Optional[int] = typer.Option(None, help="rounds per point, each on a fresh build (default 2 "
                                                          "on the CPU)"),
          counter: str = typer.Option("fvcore", help="MAC counter: fvcore | ptflops | torch"),
          out: Path = typer.Option(Path("reports/scaling"), "--out",
                                   help="directory for results.jsonl, tables and figures"),
          fmt: str = typer.Option("table", "--format", help=FORMAT_HELP)) -> None:
    """Latency/throughput, MACs and peak memory against resolution and batch size, with fitted exponents."""
    import shlex

    from .counting import check_counters
    from .options import check_format, check_resolution, split_models
    from .profile import check_host
    from .report.scaling_plot import exponents_table, points_table, save_scaling
    from .results import ResultsStore
    from .scaling import parse_sizes, scale_settings, scale_sweep

    check_format(fmt)
    names = split_models(models)
    sides = parse_sizes(resolution, "--resolution", minimum=32)
    batches = parse_sizes(batch, "--batch", example="1,4,16")
    check_resolution(batch_resolution, "--batch-resolution")
    settings = scale_settings(device, threads=threads, dtype=dtype, warmup=warmup, repeats=repeats, rounds=rounds)
    check_counters([counter])
    check_host(settings)
    store = ResultsStore.open_for_writing(out)
    run = scale_sweep(names, sides, batches, settings, store, counter=counter, batch_resolution=batch_resolution,
                      on_start=lambda p: err_console.print(f"measuring {p.model} at {p.resolution} px, batch {p.batch}",
                                                           markup=False, highlight=False),
                      on_skip=lambda p: err_console.print(f"{p.model} at {p.resolution} px, batch {p.batch}: already "
                                                          "measured with these settings, skipped", markup=False,
                                                          highlight=False))
    _warn_store(store)
    command = "lsbench scale " + " ".join(shlex.quote(a) for a in sys.argv[1:] if a != "scale") \
        if sys.argv[1:2] == ["scale"] else None
    written = save_scaling(run, out, command=command)
    shown = ["model", "resolution", "batch", "built_at_size", "status", "latency_ms", "throughput_img_s", "gmacs",
             "peak_memory_mib"]
    _print_frame(points_table(run)[shown], fmt, title=f"{len(run.new)} new record(s); results in {store.path}")
    _print_frame(exponents_table(run).drop(columns=["note"]), fmt,
                 title=f"exponents (log-log least squares against pixels or batch); {len(written)} files in {out}")


results_app = typer.Typer(no_args_is_help=True, help="Inspect a results store.")
app.add_typer(results_app, name="results")


@results_app.command("check")
@_user_errors
def results_check(directory: Path = typer.Argument(..., help="results directory (holds results.jsonl)")) -> None:
    """List every bad record of a results store (line and reason); exit 1 when there are any."""
    from .results import ResultsStore

    report = ResultsStore(directory).check()
    for line, reason in report.bad:
        typer.echo(f"{report.path}:{line}: {reason}")
    for line, note in report.incomplete:
        typer.echo(f"{report.path}:{line}: note: {note}")
    typer.echo(f"{report.path}: {report.records} good record(s), {len(report.bad)} bad")
    if not report.ok:
        raise typer.Exit(1)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {' '.join(str(message).split())}\n"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: usage errors are one line and exit 2, like every other user error."""
    warnings.formatwarning = _one_line_warning
    try:
        code = app(args=argv, prog_name="lsbench", standalone_mode=False)
    except typer.Abort:
        err_console.print("interrupted", markup=False)
        code = 130
    except typer.TyperException as exc:  # typer's own click: usage errors, bad parameters, no such command
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        _error_line(f"{message}{where}")
        code = getattr(exc, "exit_code", 2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
