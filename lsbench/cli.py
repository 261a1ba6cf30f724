"""The lsbench command line: parses options, calls library functions, prints. No measuring logic here.

Every error a user can cause (``ZooError`` / ``LsbenchError``) is printed as one line on stderr and exits
with code 2; an interrupted sweep exits 130 after saying where the finished results are.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from zoo.errors import ZooError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Honest, reproducible benchmarks of lightweight vision backbones (LSNet and baselines).")
console = Console()
err_console = Console(stderr=True)

FORMATS = ("table", "csv", "json", "md")


def _user_errors(fn):
    """Turn user-caused errors into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ZooError as exc:
            err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _split(models: str) -> list[str]:
    """'a,b' -> [a, b]; 'all' -> the registry; a family name (e.g. 'lsnet') -> its models."""
    import zoo

    names: list[str] = []
    for item in (m.strip() for m in models.split(",")):
        if not item:
            continue
        if item == "all":
            names += zoo.list_models()
        elif item not in zoo.list_models() and zoo.list_models(family=item):
            names += zoo.list_models(family=item)
        else:
            zoo.get_card(item)
            names.append(item)
    if not names:
        from .errors import LsbenchError
        raise LsbenchError("no models given")
    return list(dict.fromkeys(names))


def _print_frame(frame, fmt: str, title: str | None = None) -> None:
    from .report.summary import render

    import pandas as pd

    if fmt != "table":
        typer.echo(render(frame, fmt))
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


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        from .errors import LsbenchError
        raise LsbenchError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    return fmt


@app.command("list")
@_user_errors
def list_cmd(family: Optional[str] = typer.Option(None, help="only this family (e.g. lsnet, repvit)"),
             fmt: str = typer.Option("table", "--format", help="table | csv | json | md")) -> None:
    """List the registry: every benchmarked model with its parameters and published figures."""
    from .listing import zoo_listing

    _print_frame(zoo_listing(family), _check_format(fmt), title="lsbench model zoo")


@app.command()
@_user_errors
def profile(
    models: str = typer.Option("lsnet_t,repvit_m0_9", "--models", "-m",
                               help="comma-separated names, a family (lsnet, repvit...) or 'all'"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    preset: Optional[str] = typer.Option(None, help="cpu | lsnet | efficientvit | timm | quick"),
    quick: bool = typer.Option(False, "--quick", help="short windows for smoke runs and CI"),
    batch: Optional[int] = typer.Option(None, help="batch size (default: the preset's)"),
    resolution: Optional[int] = typer.Option(None, help="input side (default: each model's native size)"),
    dtype: Optional[str] = typer.Option(None, help="fp32 | fp16 | bf16"),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="autocast to --dtype instead of casting"),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last"),
    compile_: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model"),
    fused: Optional[bool] = typer.Option(None, "--fused/--unfused", help="reparameterize before timing"),
    threads: Optional[int] = typer.Option(None, help="CPU intra-op threads (default 1)"),
    interop_threads: Optional[int] = typer.Option(None, help="CPU inter-op threads (default 1)"),
    pin_cores: Optional[str] = typer.Option(None, help="pin to these cores, e.g. 0 or 0,1"),
    repeats: Optional[int] = typer.Option(None, help="timed iterations (at least), per round"),
    warmup: Optional[int] = typer.Option(None, help="warm-up iterations (at least), before each round"),
    rounds: Optional[int] = typer.Option(None, help="CPU: interleaved timing rounds over the models (default 5)"),
    metrics: str = typer.Option("params,flops,latency", help="any of params, flops, latency"),
    counters: str = typer.Option("fvcore,ptflops,torch", help="FLOP counters to run"),
    out: Path = typer.Option(Path("results"), help="results directory (results.jsonl is appended)"),
    fmt: str = typer.Option("table", "--format", help="summary format: table | csv | json | md"),
) -> None:
    """Measure params, FLOPs and latency; each finished model is stored at once, reruns resume."""
    from .errors import LsbenchError
    from .profile import job_key, profile_sweep, validate_job
    from .report.summary import profile_summary
    from .results import ResultsStore
    from .settings import get_preset
    from .settings import quick as quick_settings

    _check_format(fmt)
    names = _split(models)
    overrides = {k: v for k, v in dict(
        batch=batch, resolution=resolution, dtype=dtype, amp=amp, channels_last=channels_last,
        compile=compile_, fused=fused, threads=threads, interop_threads=interop_threads,
        repeats=repeats, warmup=warmup, rounds=rounds).items() if v is not None}
    if pin_cores:
        try:
            overrides["pin_cores"] = tuple(int(c) for c in pin_cores.split(","))
        except ValueError:
            raise LsbenchError(f"--pin-cores takes core numbers like 0 or 0,1, got {pin_cores!r}") from None
    name = preset or ("lsnet" if device == "cuda" else "cpu")
    base = get_preset(name)
    if device != base.device:
        if preset is not None:
            raise LsbenchError(f"preset {preset!r} runs on {base.device}, not {device}")
        overrides["device"] = device
    settings = base.replace(**overrides).validate()
    if quick:
        settings = quick_settings(settings)
    metric_list = [m.strip() for m in metrics.split(",") if m.strip()]
    counter_list = [c.strip() for c in counters.split(",") if c.strip()]
    validate_job(metric_list, counter_list)
    store = ResultsStore(out)
    if settings.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise LsbenchError("device cuda requested but CUDA is not available on this machine")

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                        TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=err_console,
                        transient=False)
    task = progress.add_task("profiling", total=len(names))
    try:
        with progress:
            profile_sweep(
                names, settings, store, metric_list, counter_list,
                on_start=lambda n: progress.update(task, description=f"profiling {n}"),
                on_done=lambda n, _: progress.advance(task),
                on_skip=lambda n: (progress.advance(task),
                                   progress.console.print(f"{n}: already measured with these settings, skipped")),
            )
    except KeyboardInterrupt:
        err_console.print(f"interrupted: finished results are kept in {store.path}; rerun to resume")
        raise typer.Exit(130) from None
    summary = profile_summary(store.frame(), names, job_key(settings, metric_list, counter_list))
    title = (f"{settings.device}, preset {settings.preset}, batch {settings.batch}, {settings.dtype}, "
             f"threads {settings.threads}; results in {store.path}")
    _print_frame(summary, fmt, title=title)


@app.command()
@_user_errors
def flops(model: str = typer.Argument(..., help="model name"),
          resolution: Optional[int] = typer.Option(None, help="input side (default: native)"),
          counters: str = typer.Option("fvcore,ptflops,torch"),
          by_module: bool = typer.Option(False, "--by-module", help="per-module breakdown (fvcore)"),
          depth: Optional[int] = typer.Option(2, help="module depth of the breakdown"),
          unfused: bool = typer.Option(False, "--unfused", help="count the model as built, not fused"),
          fmt: str = typer.Option("table", "--format", help="table | csv | json | md")) -> None:
    """FLOPs of one model from each counter, with its convention (and a per-module breakdown)."""
    import zoo

    from .counting import count_flops, flops_frame, module_breakdown
    from .errors import LsbenchError

    _check_format(fmt)
    card = zoo.get_card(model)
    res = resolution or card.input_size
    if res < 32:
        raise LsbenchError(f"resolution must be at least 32, got {res}")
    built = zoo.create_model(model).eval()
    counts = count_flops(built, (1, 3, res, res), [c.strip() for c in counters.split(",")], fused=not unfused)
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
        fmt: str = typer.Option("table", "--format", help="table | csv | json | md")) -> None:
    """Effective receptive field (RepLKNet method): heat maps, comparison figure, area-ratio table."""
    from .erf import erf_analysis, load_images
    from .errors import LsbenchError
    from .report.erf_plots import plot_erf, plot_erf_comparison
    from .report.summary import render

    _check_format(fmt)
    if size < 32 or num_images < 1:
        raise LsbenchError(f"--size must be >= 32 and --num-images >= 1, got {size} and {num_images}")
    if len(models) == 1 and "," in models[0]:
        models = models[0].split(",")
    names = _split(",".join(models))
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise LsbenchError("device cuda requested but CUDA is not available on this machine")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LsbenchError(f"cannot write to {out}: {exc.strerror}") from None
    batch = load_images(images, num_images=num_images, size=size, seed=seed)
    weights = {n: checkpoint for n in names}
    maps, table = erf_analysis(names, batch, weights=weights, stages=stages, seed=seed, device=device)
    for name in names:
        final = table[(table["model"] == name) & (table["layer"] == "final")].iloc[0]
        plot_erf(maps[name]["final"], f"{name} ERF", out / f"erf_{name}", weights=final["weights"],
                 num_images=len(batch), size=size)
    if len(names) > 1:
        plot_erf_comparison(maps, table, out / ("erf_compare_" + "_".join(names)))
    stem = out / ("erf_ratios_" + "_".join(names))
    (stem.with_suffix(".csv")).write_text(render(table, "csv"))
    (stem.with_suffix(".md")).write_text(render(table, "md") + "\n")
    _print_frame(table, fmt, title=f"ERF area ratios ({len(batch)} images at {size}px); figures in {out}")


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
    import zoo

    from .errors import LsbenchError
    from .evaluate import evaluate

    if batch_size < 1:
        raise LsbenchError(f"--batch-size must be at least 1, got {batch_size}")
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise LsbenchError("device cuda requested but CUDA is not available on this machine")
    net = zoo.create_model(model, checkpoint=checkpoint, num_classes=num_classes)
    result = evaluate(net, data, batch_size=batch_size, workers=workers, resize=resize, crop=crop,
                      interpolation=interpolation, device=device)
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
          fmt: str = typer.Option("table", "--format", help="table | csv | json | md")) -> None:
    """The paper's comparison table (Markdown, CSV, LaTeX): measured beside published, mismatches flagged."""
    from .report.tables import (check_table, deterministic_table, paper_table, reported_figure_table,
                                stale_files, write_table)
    from .results import ResultsStore

    _check_format(fmt)
    names = _split(models) if models else None
    if deterministic:
        made = deterministic_table(names)
        outputs = {"deterministic": (made, "lsbench table --deterministic"),
                   "published_figures": (reported_figure_table(names), "lsbench table --deterministic")}
    else:
        if not (results / "results.jsonl").is_file():
            from .errors import LsbenchError
            raise LsbenchError(f"no results in {results}: run `lsbench profile --out {results}` first")
        made = paper_table(ResultsStore(results).frame(), names, gpu=gpu, cpu=cpu, mobile=mobile)
        outputs = {"paper": (made, f"lsbench table --results {results}")}
    if check_stale:
        stale = [p for stem, (frame, cmd) in outputs.items() for p in stale_files(frame, out, stem, command=cmd)]
        for path in stale:
            err_console.print(f"stale: {path} (regenerate with `lsbench table --deterministic`)")
        raise typer.Exit(1 if stale else 0)
    written = [p for stem, (frame, cmd) in outputs.items() for p in write_table(frame, out, stem, command=cmd)]
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
           metric: Optional[str] = typer.Option(None, help="latency | throughput (default: throughput for "
                                                           "--reported, latency for measured)"),
           reported: bool = typer.Option(False, "--reported", help="published figures only (e.g. the paper's)"),
           overlay: bool = typer.Option(False, "--overlay", help="add the published figures on the same device"),
           protocol: Optional[str] = typer.Option(None, help="published protocol when a device has several"),
           models: Optional[str] = typer.Option(None, "--models", "-m"),
           out: Path = typer.Option(Path("reports/figures"), "--out", help="output directory")) -> None:
    """Accuracy against latency or throughput on one device under one protocol, frontier drawn."""
    from .report.pareto import measured_points, plot_pareto, reported_pareto_frame
    from .results import ResultsStore

    from .errors import LsbenchError

    names = _split(models) if models else None
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LsbenchError(f"cannot write to {out}: {exc.strerror}") from None
    if reported:
        metric = metric or "throughput"
        points = reported_pareto_frame(device, metric, protocol=protocol, models=names)
        paths = plot_pareto(points, metric, device, None, out, source="reported", models=names)
    else:
        if not (results / "results.jsonl").is_file():
            from .errors import LsbenchError
            raise LsbenchError(f"no results in {results}: run `lsbench profile --out {results}` first")
        metric = metric or "latency"
        frame = ResultsStore(results).frame()
        points = measured_points(frame, metric, device, names)
        extra = None
        if overlay and points.attrs.get("device"):
            try:
                extra = reported_pareto_frame(points.attrs["device"], metric, models=names)
            except ZooError:
                extra = None
        paths = plot_pareto(frame, metric, device, None, out, source="measured", overlay=extra, models=names)
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
    import zoo

    from .errors import LsbenchError
    from .export import export_model

    card = zoo.get_card(model)
    res = resolution or card.input_size
    if res < 32 or batch < 1:
        raise LsbenchError(f"resolution must be >= 32 and batch >= 1, got {res} and {batch}")
    net = zoo.reparameterize(zoo.create_model(model, checkpoint=checkpoint).eval(), inplace=True)
    table = Table(title=f"{model} at {res}x{res}, batch {batch}, reparameterized")
    for col in ("format", "path", "MB", "max rel err", "checked in", "passed"):
        table.add_column(col)
    for fmt in [f.strip() for f in formats.split(",") if f.strip()]:
        result = export_model(net, model, fmt, out, input_size=(batch, 3, res, res), tol=tol)
        rel = "-" if result.max_rel_err is None else f"{result.max_rel_err:.2e}"
        table.add_row(fmt, str(result.path), f"{result.size_bytes / 1e6:.1f}", rel,
                      result.check_runtime or (result.check_note or "-"), str(result.passed))
    console.print(table)


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
            fmt: str = typer.Option("table", "--format", help="table | csv | json | md")) -> None:
    """Why a backbone is fast or slow: per-part latency, MACs, bytes, intensity, on a measured roofline."""
    from .anatomy import by_part
    from .anatomy_job import anatomy_settings, run_anatomy, save_anatomy, sum_check
    from .counting import check_counters
    from .results import ResultsStore

    _check_format(fmt)
    check_counters(counter)
    names = _split(",".join(models))
    settings = anatomy_settings(device, batch, resolution, threads, warmup=warmup, repeats=repeats, rounds=rounds)
    store = ResultsStore(out)
    run = run_anatomy(names, settings, counter=counter, store=store,
                      on_start=lambda n: err_console.print(f"measuring {n}"))
    written = save_anatomy(run, out)
    _print_frame(by_part(run.parts), fmt, title="time, MACs and bytes per part")
    _print_frame(sum_check(run.totals), fmt, title=f"parts' sum vs latency measured the normal way; "
                                        f"{len(written)} files and results.jsonl in {out}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    sys.exit(main())
