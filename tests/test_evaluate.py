"""Top-1/top-5 evaluation on a synthetic ImageFolder whose correct answers are known by construction."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from lsbench.errors import LsbenchError
from lsbench.evaluate import evaluate

CLASSES = ["0_red", "1_green", "2_blue"]  # sorted: class index == the RGB channel
# per class folder: the dominant channel of each of its 4 images (one misfiled image in red and in blue)
DOMINANT = {"0_red": [0, 0, 0, 1], "1_green": [1, 1, 1, 1], "2_blue": [2, 2, 0, 2]}
EXPECTED_CORRECT = sum(d == i for i, c in enumerate(CLASSES) for d in DOMINANT[c])  # 10 of 12


class MeanColour(nn.Module):
    """Logits = per-channel mean of the (normalised) image: predicts the dominant colour."""

    def __init__(self, extra_outputs: int = 0):
        super().__init__()
        self.extra = extra_outputs

    def forward(self, x):
        logits = x.mean((2, 3))
        if self.extra:
            logits = torch.cat([logits, logits.new_full((len(x), self.extra), -100.0)], 1)
        return logits


def _colour(dominant: int, k: int) -> tuple[int, int, int]:
    c = [20 + 10 * k, 30, 40]
    c[dominant] = 230
    return tuple(c)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("imagefolder")
    for cls in CLASSES:
        (root / cls).mkdir()
        for k, d in enumerate(DOMINANT[cls]):
            Image.new("RGB", (48 + 8 * k, 40), _colour(d, k)).save(root / cls / f"img{k}.png")
    (root / "1_green" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (root / "2_blue" / "readme.txt").write_text("not an image extension: ignored, not reported")
    return root


SMALL = dict(resize=32, crop=24, workers=0, progress=False)


def test_top1_top5_and_skipped(folder):
    with pytest.warns(UserWarning, match="corrupt.jpg"):
        r = evaluate(MeanColour(), folder, batch_size=5, **SMALL)
    assert r["n"] == 12
    assert r["top1"] == EXPECTED_CORRECT / 12 == 10 / 12
    assert r["top5"] == 1.0  # 3 outputs: top-k with k = 3
    assert r["skipped"] == [str(folder / "1_green" / "corrupt.jpg")]


def test_default_preprocessing_and_more_outputs_than_classes(folder):
    # official 256 bicubic / 224 centre crop; 5 outputs: a true top-5 over 5 logits
    with pytest.warns(UserWarning):
        r = evaluate(MeanColour(extra_outputs=2), folder, batch_size=64, workers=0, progress=False)
    assert (r["top1"], r["top5"], r["n"]) == (10 / 12, 1.0, 12)


def test_workers_and_batch_of_only_corrupt_files(folder):
    # batch_size 1: one batch holds only the corrupt file; 2 worker processes
    with pytest.warns(UserWarning):
        r = evaluate(MeanColour(), folder, batch_size=1, resize=32, crop=24, workers=2, progress=True)
    assert (r["top1"], r["n"], len(r["skipped"])) == (10 / 12, 12, 1)


def test_user_errors(tmp_path, folder):
    with pytest.raises(LsbenchError, match="does not exist"):
        evaluate(MeanColour(), tmp_path / "missing", **SMALL)
    with pytest.raises(LsbenchError, match="ImageFolder"):
        evaluate(MeanColour(), tmp_path, **SMALL)  # no class folders
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("")
    with pytest.raises(LsbenchError, match="no image files"):
        evaluate(MeanColour(), tmp_path, **SMALL)
    (tmp_path / "a" / "bad.png").write_bytes(b"garbage")
    with pytest.raises(LsbenchError, match="could be read.*bad.png"):
        evaluate(MeanColour(), tmp_path, **SMALL)
    with pytest.raises(LsbenchError, match="interpolation"):
        evaluate(MeanColour(), folder, interpolation="cubic", **SMALL)
    with pytest.raises(LsbenchError, match="only 2 outputs"):
        evaluate(nn.Sequential(MeanColour(), nn.Linear(3, 2)), folder, **SMALL)


SCRIPT = """
import json, sys, warnings
import torch
from torch import nn
from lsbench.evaluate import evaluate

class MeanColour(nn.Module):
    def forward(self, x):
        return x.mean((2, 3))

warnings.simplefilter("ignore")
r = evaluate(MeanColour(), sys.argv[1], batch_size=2, resize=32, crop=24, workers=0, progress=False)
import os
rank = int(os.environ["RANK"])
if rank == 0:
    json.dump(r, open(sys.argv[2], "w"))
else:
    assert r is None, r
"""


def test_distributed_matches_single_process(folder, tmp_path):
    script = tmp_path / "dist_eval.py"
    script.write_text(textwrap.dedent(SCRIPT))
    out = tmp_path / "result.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                           str(script), str(folder), str(out)], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dist = json.loads(out.read_text())
    with pytest.warns(UserWarning):
        single = evaluate(MeanColour(), folder, batch_size=2, **SMALL)
    # 13 files, 2 ranks (7 + 6): every sample counted once, the corrupt one reported once
    expected = (10 / 12, 1.0, 12)
    assert (dist["top1"], dist["top5"], dist["n"]) == (single["top1"], single["top5"], single["n"]) == expected
    assert dist["skipped"] == single["skipped"]
