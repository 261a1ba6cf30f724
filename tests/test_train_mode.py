"""`profile --mode train`: a timed call is a whole training step (forward, loss, backward, optimizer step), the
weights really change, the SKA backward runs through the zoo::ska custom op, the CUDA out-of-memory batch
decay follows timm's policy, and train-mode records are stored under their own settings key."""
from __future__ import annotations

import hashlib
import json
import statistics

import pytest
import torch
from timm.utils import decay_batch_step

import zoo
from lsbench.errors import LsbenchError
from lsbench.profile import prepare, profile_sweep, time_prepared
from lsbench.results import ResultsStore
from lsbench.settings import ProfileSettings, resolve_settings
from lsbench.timing import cpu_threads
from lsbench.training import decay_batch, retry_on_oom, train_step

from cli_helpers import run_cli

TINY = dict(batch=2, resolution=64, warmup=2, repeats=3, rounds=1)


@pytest.fixture(autouse=True)
def one_thread():
    """Steps called directly (outside the timer, which sets its own threads) run on one thread, as timed."""
    with cpu_threads(1):
        yield


def _train(**kw) -> ProfileSettings:
    return resolve_settings("cpu", None, mode="train", **{**TINY, **kw})


# ----------------------------------------------------------------------------------------- decay policy

def test_decay_batch_steps_between_powers_of_two_as_timm_documents():
    def chain(batch, steps):
        out = []
        while batch:
            batch = decay_batch(batch, steps)
            out.append(batch)
        return out

    # the sequences of timm's decay_batch_step docstring, written out by hand
    assert chain(64, 2) == [48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1, 0]
    assert chain(64, 1) == [32, 16, 8, 4, 2, 1, 0]
    assert chain(64, 4) == [56, 48, 40, 32, 28, 24, 20, 16, 14, 12, 10, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    assert chain(256, 2)[:4] == [192, 128, 96, 64] and decay_batch(2048) == 1536 and decay_batch(200) == 192


def test_decay_batch_agrees_with_timms_implementation():
    for steps in (1, 2, 4, 8):
        assert [decay_batch(b, steps) for b in range(0, 3000)] == [decay_batch_step(b, steps) for b in range(0, 3000)]
    # timm takes the power of two as math.log(b - 1) // math.log(2), which rounds log2(64) down to 5: with
    # 3 intra steps it then decays 65 to 62 (base 32) where its own rule (base 64) gives 64
    assert (decay_batch(65, 3), decay_batch_step(65, 3)) == (64, 62)


def test_retry_on_oom_decays_until_the_batch_fits_and_only_for_out_of_memory():
    tried, cleaned = [], []

    def run(batch):  # "fits" up to 40 images; a real CUDA out-of-memory exception type above
        tried.append(batch)
        if batch > 40:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {batch} MiB")
        return batch * 10

    assert retry_on_oom(run, 256, cleanup=lambda: cleaned.append(1)) == (320, [256, 192, 128, 96, 64, 48])
    assert tried == [256, 192, 128, 96, 64, 48, 32] and len(cleaned) == 6
    with pytest.raises(LsbenchError, match="lsnet_b: CUDA out of memory even at batch 1 \\(tried 3, 2, 1\\)"):
        retry_on_oom(lambda b: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("CUDA out of memory")), 3,
                     label="lsnet_b")
    calls = []
    with pytest.raises(ValueError):  # any other error is real: no retry
        retry_on_oom(lambda b: (calls.append(b), int("x")), 64)
    assert calls == [64]


# ----------------------------------------------------------------------------------------- the train step

def test_a_timed_train_step_updates_every_weight_and_covers_backward():
    settings = _train(optimizer="adamw")
    prepared = prepare("lsnet_t", settings)
    model, step = prepared.step.model, prepared.step
    prepared.example.requires_grad_(True)  # so that the module backward hook sees a gradient to its input
    assert model.training and prepared.form["fused"] is False and prepared.form["mode"] == "train"
    params = {n: p for n, p in model.named_parameters()}
    before = {n: p.detach().clone() for n, p in params.items()}
    counts = {"backward": 0, "optimizer": 0}
    grads = dict.fromkeys(params, 0)
    nonzero = set()

    def seen(t, n):
        grads[n] += t.grad is not None
        if t.grad.abs().max() > 0:
            nonzero.add(n)

    model.register_full_backward_hook(lambda *_: counts.__setitem__("backward", counts["backward"] + 1))
    step.optimizer.register_step_post_hook(lambda *_: counts.__setitem__("optimizer", counts["optimizer"] + 1))
    for n, p in params.items():
        p.register_post_accumulate_grad_hook(lambda t, n=n: seen(t, n))

    samples, extra = time_prepared(prepared, settings)

    # warm-up + timed + the one untimed call under the memory profiler: each a whole training step
    steps = settings.warmup + len(samples) + 1
    assert len(samples) == settings.repeats and step.steps == steps
    assert counts == {"backward": steps, "optimizer": steps}
    assert set(grads.values()) == {steps}  # every parameter got a gradient at every step
    assert all(p.grad is None for p in params.values())  # zero_grad(set_to_none) closed every step
    assert all(s["step"].item() == steps for s in step.optimizer.state.values())
    changed = {n for n, p in params.items() if not torch.equal(p.detach(), before[n])}
    # AdamW moves exactly the parameters whose gradient was not zero. At random init, the attention branches
    # behind a zero-initialised BN scale (LeViT-style proj) get zero gradients until that scale moves.
    assert changed == nonzero and len(changed) > 0.8 * len(params)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.num_batches_tracked.item() == steps for m in norms)  # BN statistics updated
    assert extra["memory"]["peak_bytes"] > 0


def test_the_sgd_step_is_nesterov_momentum_with_the_recorded_learning_rate():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    model.num_classes = 5
    x = torch.randn(4, 3, 2, 2)
    step = train_step(model, x, "sgd")
    w0 = model[1].weight.detach().clone()
    loss = torch.nn.functional.cross_entropy(model(x), step.target)
    (g,) = torch.autograd.grad(loss, model[1].weight)
    step()
    # first step: momentum buffer = g, Nesterov update = g + 0.9 * g, lr 1e-4 (timm benchmark.py's recipe)
    torch.testing.assert_close(model[1].weight.detach(), w0 - 1e-4 * 1.9 * g)


def test_the_train_step_runs_the_ska_custom_op_and_its_backward_on_the_cpu():
    settings = _train()
    prepared = prepare("lsnet_t", settings)
    ska_modules = sum(isinstance(m, zoo.ska.SKA) for m in prepared.step.model.modules())
    assert ska_modules > 0 and prepared.form["ska_kernel"] == "pytorch"
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        prepared.step()
    names = [e.name() for e in prof.profiler.kineto_results.events()]  # raw events: prof.events() takes seconds
    assert names.count("zoo::ska") == ska_modules
    assert names.count("zoo::ska_backward") == ska_modules  # the registered backward, once per SKA call


def test_a_distilled_model_trains_on_both_heads():
    prepared = prepare("lsnet_t_distill", _train())
    model = prepared.step.model
    out = model(prepared.example)
    assert isinstance(out, tuple) and len(out) == 2  # (head, head_dist) in train mode, as the official loop
    heads = {name: p.detach().clone() for name, p in model.named_parameters() if name.startswith("head")}
    assert any(n.startswith("head_dist.") for n in heads) and any(n.startswith("head.") for n in heads)
    prepared.step()
    # the loss averages both heads' cross-entropy, so both heads move
    assert all(not torch.equal(p.detach(), heads[n]) for n, p in model.named_parameters() if n in heads)

# ----------------------------------------------------------------------------------------- settings and CLI

def test_train_settings_have_their_own_key_and_infer_keys_are_unchanged():
    infer = ProfileSettings()
    data = {k: v for k, v in infer.as_dict().items()
            if k not in ("preset", "mode", "optimizer", "precision", "min_rounds", "max_s")}
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    assert infer.key() == hashlib.sha1(blob.encode()).hexdigest()[:12]  # the key before the fields existed
    train = _train()
    assert train.optimizer == "sgd" and train.fused is False and train.preset == "cpu+train"
    assert len({train.key(), train.replace(optimizer="adamw").key(), train.replace(mode="infer", optimizer=None,
                                                                                      fused=True).key()}) == 3
    cuda = resolve_settings("cuda", None, mode="train")
    assert (cuda.preset, cuda.batch, cuda.warmup, cuda.repeats, cuda.fused) == ("timm+train", 256, 10, 40, False)


def test_profile_mode_train_end_to_end_on_the_cli(tmp_path):
    out = tmp_path / "store"
    args = ["profile", "--models", "lsnet_t", "--mode", "train", "--optimizer", "adamw", "--batch", "2",
            "--resolution", "64", "--warmup", "1", "--repeats", "2", "--rounds", "2", "--metrics", "params,latency",
            "--format", "csv", "--out", str(out)]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    records = ResultsStore(out).records()
    by = {r.metric: r for r in records if not r.partial}
    assert {"params", "latency", "throughput", "peak_memory"} <= set(by)
    rounds = [r for r in records if r.metric == "latency_round"]
    assert len(rounds) == 2 and all(r.extra["train_steps"] == 1 + 2 + 1 for r in rounds)
    samples = [s for r in rounds for s in r.extra["samples_s"]]
    assert by["throughput"].value == pytest.approx(2 / statistics.fmean(samples))
    assert by["latency"].value == pytest.approx(statistics.median(samples) * 1e3)
    settings = by["latency"].settings
    assert (settings["mode"], settings["optimizer"], settings["fused"]) == ("train", "adamw", False)
    assert by["latency"].extra["form"]["optimizer"]["class"] == "torch.optim.AdamW"
    assert by["latency"].settings_key == _train(optimizer="adamw", warmup=1, repeats=2, rounds=2).key()
    again = run_cli(*args)  # a rerun resumes: nothing is measured twice
    assert again.exit_code == 0 and "already measured with these settings, skipped" in again.output
    assert len(ResultsStore(out).records()) == len(records)


# ----------------------------------------------------------------------------------------- CUDA

@pytest.mark.cuda
def test_cuda_train_mode_decays_the_batch_after_a_real_out_of_memory_and_records_the_final_batch(tmp_path):
    """The caching allocator is capped so that batch 512 of lsnet_t cannot train at 224 px; the sweep lowers
    the batch (timm's policy) until a step fits and stores throughput at that batch."""
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, 3 * 2**30 / total))
    try:
        settings = resolve_settings("cuda", None, mode="train", batch=512, warmup=2, repeats=3, warmup_s=None,
                                    measure_s=None, amp=True, dtype="bf16")
        records = profile_sweep(["lsnet_t"], settings, ResultsStore(tmp_path), metrics=["latency"])
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    throughput = next(r for r in records if r.metric == "throughput")
    batch, failed = throughput.extra["batch"], throughput.extra["oom_batches"]
    assert failed and failed[0] == 512 and batch == decay_batch(failed[-1]) and batch < 512
    assert throughput.settings["batch"] == 512 and throughput.extra["batch_requested"] == 512
    assert throughput.extra["form"]["ska_kernel"] == "triton"
    rounds = [r for r in records if r.metric == "latency_round"]
    samples = rounds[0].extra["samples_s"]
    assert throughput.value == pytest.approx(batch / statistics.fmean(samples))
