"""The checkpoint loader on files the tests write: every format, wrappers, sha256, strict errors."""
import pytest
import torch
from safetensors.torch import save_file

import zoo
from zoo import ZooError, load_checkpoint, read_state_dict
from zoo.checkpoint import sha256_of


@pytest.fixture(scope="module")
def trained_sd():
    model = zoo.create_model("lsnet_t")
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_loaded(model, sd):
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k


@pytest.mark.parametrize("wrap", ["bare", "model", "state_dict", "module"])
@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin"])
def test_torch_formats_and_wrappers(tmp_path, trained_sd, wrap, suffix):
    payload = {
        "bare": trained_sd,
        "model": {"model": trained_sd, "epoch": 299, "max_accuracy": 74.9},
        "state_dict": {"state_dict": trained_sd},
        "module": {"model": {"module." + k: v for k, v in trained_sd.items()}},
    }[wrap]
    path = tmp_path / f"ckpt{suffix}"
    torch.save(payload, path)
    model = zoo.create_model("lsnet_t", checkpoint=path)
    _assert_loaded(model, trained_sd)


def test_safetensors_and_sha256(tmp_path, trained_sd):
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in trained_sd.items()}, str(path))
    digest = sha256_of(path)
    model = zoo.create_model("lsnet_t", checkpoint=path, sha256=digest)
    _assert_loaded(model, trained_sd)
    with pytest.raises(ZooError, match="sha256 mismatch"):
        read_state_dict(path, sha256="0" * 64)


def test_truncated_file_is_a_one_line_error(tmp_path, trained_sd):
    path = tmp_path / "broken.pth"
    torch.save(trained_sd, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ZooError, match="cannot read checkpoint") as err:
        zoo.create_model("lsnet_t", checkpoint=path)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ZooError, match="not found"):
        read_state_dict(tmp_path / "nope.pth")


def test_wrong_variant_names_missing_unexpected_and_misshaped_keys(tmp_path, trained_sd):
    path = tmp_path / "lsnet_t.pth"
    torch.save({"model": trained_sd}, path)
    with pytest.raises(ZooError) as err:
        zoo.create_model("lsnet_s", checkpoint=path)
    msg = str(err.value)
    assert "\n" not in msg
    assert "does not fit lsnet_s" in msg
    assert "missing (blocks1.0.mixer.conv.c.weight" in msg  # lsnet_s has stage-1 blocks, lsnet_t none
    assert "mis-shaped (patch_embed.0.c.weight: file (16, 3, 3, 3) vs model (24, 3, 3, 3)" in msg


def test_unexpected_keys_are_named(tmp_path, trained_sd):
    path = tmp_path / "extra.pth"
    torch.save({**trained_sd, "extra.weight": torch.zeros(3)}, path)
    with pytest.raises(ZooError, match=r"1 unexpected \(extra.weight\)"):
        zoo.create_model("lsnet_t", checkpoint=path)


def test_distilled_checkpoint_goes_into_distill_model(tmp_path):
    distill = zoo.create_model("lsnet_t_distill")
    path = tmp_path / "lsnet_t_distill.pth"
    torch.save({"model": distill.state_dict()}, path)
    model = zoo.create_model("lsnet_t_distill", checkpoint=path)
    _assert_loaded(model, distill.state_dict())
    with pytest.raises(ZooError, match="distilled checkpoint: use the model's _distill variant"):
        zoo.create_model("lsnet_t", checkpoint=path)


def test_other_class_count_drops_the_classifier_like_timm(tmp_path, trained_sd):
    path = tmp_path / "imagenet.pth"
    torch.save(trained_sd, path)
    model = zoo.create_model("lsnet_t", checkpoint=path, num_classes=10)
    sd = model.state_dict()
    assert sd["head.l.weight"].shape == (10, 384)
    assert torch.equal(sd["head.bn.weight"], trained_sd["head.bn.weight"])  # only the Linear is dropped
    assert torch.equal(sd["blocks4.3.mixer.m.qkv.c.weight"], trained_sd["blocks4.3.mixer.m.qkv.c.weight"])
    assert model.lsbench_checkpoint["dropped_classifier"] == ["head.l.weight", "head.l.bias"]


def test_baseline_checkpoint_round_trip(tmp_path):
    model = zoo.create_model("repvit_m0_9")
    path = tmp_path / "repvit.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    again = zoo.create_model("repvit_m0_9", checkpoint=path)
    _assert_loaded(again, model.state_dict())


def test_load_checkpoint_into_existing_model(tmp_path, trained_sd):
    path = tmp_path / "x.pth"
    torch.save(trained_sd, path)
    model = zoo.create_model("lsnet_t")
    report = load_checkpoint(model, path)
    assert report["sha256"] == sha256_of(path)
    _assert_loaded(model, trained_sd)


@pytest.mark.parametrize("name", ["lsnet_t", "repvit_m0_9"])
def test_features_only_backbone_from_checkpoint(tmp_path, name):
    whole = zoo.create_model(name)
    with torch.no_grad():
        for p in whole.parameters():
            p.normal_(0, 0.02)
    path = tmp_path / "ckpt.pth"
    torch.save({"model": whole.state_dict()}, path)
    backbone = zoo.create_model(name, checkpoint=path, sha256=sha256_of(path), features_only=True)
    sd = whole.state_dict()

    def original(key):  # timm's feature wrapper flattens e.g. stages.0 -> stages_0
        top, _, rest = key.partition(".")
        return key if key in sd else f"{top.replace('_', '.', 1)}.{rest}"

    _assert_loaded(backbone, {k: sd[original(k)] for k in backbone.state_dict()})
    assert backbone.lsbench_checkpoint["sha256"] == sha256_of(path)
    assert "state_dict" not in backbone.pretrained_cfg
    torch.save({"model": zoo.create_model("lsnet_s").state_dict()}, path)
    if name == "lsnet_t":  # the file is checked against the whole model: the same one-line error
        with pytest.raises(ZooError, match="does not fit lsnet_t"):
            zoo.create_model(name, checkpoint=path, features_only=True)


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("echo this must never run",))


def test_refusals_name_the_danger_and_never_suggest_unsafe_loading(tmp_path):
    """A pickle asking for a global is refused as code, naming the global; random bytes are not a checkpoint;
    neither message tells the user to turn weights_only off."""
    import torch

    from zoo.checkpoint import read_state_dict
    from zoo.errors import ZooError

    evil = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "x": _RunsCode()}, evil)
    import random

    for seed in range(5):  # random bytes fail in many ways inside torch.load: each is "not a checkpoint"
        noise = tmp_path / f"noise{seed}.pth"
        noise.write_bytes(random.Random(seed).randbytes(256))
        with pytest.raises(ZooError) as info:
            read_state_dict(noise)
        assert "not a PyTorch checkpoint" in str(info.value) and "weights_only" not in str(info.value)
        assert str(info.value).count(str(noise)) == 1
    with pytest.raises(ZooError) as info:
        read_state_dict(evil)
    message = str(info.value)
    assert "asks to run code" in message and "system" in message and "\n" not in message
    assert "weights_only" not in message


def test_safetensors_suffix_in_any_case(tmp_path):
    import torch
    from safetensors.torch import save_file

    from zoo.checkpoint import read_state_dict

    path = tmp_path / "weights.SAFETENSORS"
    save_file({"w": torch.arange(4.0)}, str(path))
    assert torch.equal(read_state_dict(path)["w"], torch.arange(4.0))
