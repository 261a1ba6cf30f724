import hashlib
import json

import pytest

from lsbench.errors import LsbenchError
from lsbench.settings import PRESETS, ProfileSettings, get_preset, quick


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"batch": 0}, "batch"),
        ({"resolution": 16}, "resolution"),
        ({"dtype": "int8"}, "dtype"),
        ({"device": "tpu"}, "device"),
        ({"threads": 0}, "threads"),
        ({"repeats": 0}, "repeats"),
        ({"warmup": -1}, "warmup"),
        ({"measure_s": 0.0}, "measure_s"),
        ({"warmup_s": -0.1}, "warmup_s"),
        ({"interop_threads": 0}, "interop_threads"),
        ({"pin_cores": (-1,)}, "pin_cores"),
        ({"amp": True}, "amp"),
        ({"compile": True, "jit_trace": True}, "compile"),
        ({"tf32": "yes"}, "tf32"),
    ],
)
def test_validate_rejects_bad_settings_with_one_line(changes, message):
    with pytest.raises(LsbenchError, match=message) as info:
        ProfileSettings(**changes).validate()
    assert "\n" not in str(info.value)


def test_validate_accepts_defaults_and_edges():
    assert ProfileSettings().validate() == ProfileSettings()
    ProfileSettings(batch=1, resolution=32, warmup=0, repeats=1, dtype="bf16", amp=True).validate()


def test_as_dict_is_json_ready_and_round_trips():
    s = ProfileSettings(pin_cores=[3, 1, 3], warmup_s=5, preset="x")
    d = s.as_dict()
    assert d["pin_cores"] == [1, 3]
    assert d["warmup_s"] == 5.0 and isinstance(d["warmup_s"], float)
    assert ProfileSettings.from_dict(json.loads(json.dumps(d))) == s
    with pytest.raises(LsbenchError, match="bogus"):
        ProfileSettings.from_dict({**d, "bogus": 1})


def test_key_is_sha1_of_sorted_json_without_preset_label():
    s = ProfileSettings(batch=4, resolution=224)
    # fields added after records were stored (mode, optimizer, the adaptive stop) stay out while at their
    # defaults: old keys hold
    later = {("mode", "infer"), ("optimizer", None), ("precision", None), ("min_rounds", 3), ("max_s", None)}
    fields = {k: v for k, v in s.as_dict().items() if k != "preset" and (k, v) not in later}
    expected = hashlib.sha1(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    assert s.key() == expected
    assert len(s.key()) == 12


def test_key_is_stable_and_sensitive_to_every_measured_field():
    base = ProfileSettings()
    assert base.key() == ProfileSettings().key()
    # Same measurement reached through another label or through equal values of another type.
    assert base.replace(preset="cpu").key() == base.key()
    assert ProfileSettings(warmup_s=5).key() == ProfileSettings(warmup_s=5.0).key()
    assert ProfileSettings(pin_cores=[1, 0]).key() == ProfileSettings(pin_cores=(0, 1)).key()
    changed = [
        base.replace(batch=2), base.replace(resolution=256), base.replace(dtype="bf16"),
        base.replace(channels_last=True), base.replace(fused=False), base.replace(threads=2),
        base.replace(repeats=50), base.replace(measure_s=1.0), base.replace(device="cuda"),
        base.replace(tf32=True), base.replace(tf32=False), base.replace(mode="train", fused=False),
    ]
    keys = {s.key() for s in changed}
    assert len(keys) == len(changed) and base.key() not in keys


def test_paper_presets_hold_the_published_protocols():
    lsnet = get_preset("lsnet")
    assert (lsnet.device, lsnet.batch, lsnet.dtype) == ("cuda", 2048, "fp32")
    assert (lsnet.warmup_s, lsnet.measure_s) == (5.0, 10.0)
    assert lsnet.fused and lsnet.sync_each
    assert not (lsnet.amp or lsnet.compile or lsnet.channels_last or lsnet.cudnn_benchmark)
    assert lsnet.tf32 is None  # PyTorch defaults, as the RepViT script ran

    evit = get_preset("efficientvit")
    assert (evit.device, evit.batch, evit.dtype, evit.amp, evit.jit_trace, evit.fused) == (
        "cuda", 2048, "fp16", True, True, True)
    assert (evit.warmup_s, evit.measure_s) == (10.0, 60.0)

    timm = get_preset("timm")
    assert (timm.device, timm.batch, timm.warmup, timm.repeats) == ("cuda", 256, 10, 40)
    assert timm.cudnn_benchmark and timm.tf32 and not timm.fused

    cpu = get_preset("cpu")
    assert (cpu.device, cpu.batch, cpu.dtype, cpu.threads, cpu.warmup, cpu.repeats, cpu.rounds, cpu.fused) == (
        "cpu", 1, "fp32", 1, 10, 30, 8, True)
    assert (cpu.precision, cpu.min_rounds, cpu.max_s) == (0.01, 3, None)  # adaptive: ±1 %, 3 to 8 rounds
    assert all(p.preset == name for name, p in PRESETS.items())


def test_get_preset_applies_and_validates_overrides():
    s = get_preset("lsnet", batch=256, resolution=384)
    assert (s.batch, s.resolution, s.warmup_s, s.preset) == (256, 384, 5.0, "lsnet")
    with pytest.raises(LsbenchError, match="batch"):
        get_preset("cpu", batch=0)
    with pytest.raises(LsbenchError, match="unknown settings field"):
        get_preset("cpu", batchsize=2)


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(LsbenchError) as info:
        get_preset("repvit")
    for name in ("cpu", "lsnet", "efficientvit", "timm", "quick"):
        assert name in str(info.value)


def test_quick_shortens_windows_and_caps_batch():
    q = quick(get_preset("lsnet"))
    assert (q.device, q.batch, q.warmup_s, q.measure_s, q.dtype, q.fused) == ("cuda", 64, 0.5, 1.0, "fp32", True)
    assert q.repeats <= 10 and q.preset == "lsnet+quick"
    assert quick(q) == q  # idempotent

    t = quick(get_preset("timm"))  # count-based on cuda still gets short time windows
    assert (t.warmup, t.repeats, t.warmup_s, t.measure_s, t.batch) == (3, 10, 0.5, 1.0, 64)

    c = quick(get_preset("cpu", batch=4))
    assert (c.warmup, c.repeats, c.warmup_s, c.measure_s, c.batch) == (3, 10, None, None, 4)
    assert get_preset("quick").key() == quick(get_preset("cpu")).key()
    assert quick(get_preset("cpu", batch=32)).batch == 8


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        ProfileSettings().batch = 2  # type: ignore[misc]
