"""One block per family at its native stage-3 shape, batch 1, fused (deploy) form, single thread."""
import pytest
import torch

import zoo


def _block(name: str, path: str):
    model = zoo.reparameterize(zoo.create_model(name).eval())
    module = model.get_submodule(path)
    return module


# (model, block path, input shape of that block at the model's native resolution)
BLOCKS = [
    ("lsnet_t", "blocks3.3", (1, 256, 7, 7)),          # LSConv block (LKP + SKA) + FFN
    ("lsnet_t", "blocks4.3", (1, 384, 4, 4)),          # attention block + FFN
    ("lsnet_t", "blocks3.2", (1, 256, 7, 7)),          # RepVGGDW + SE block + FFN
    ("repvit_m0_9", "stages.2.blocks.1", (1, 192, 14, 14)),
    ("efficientvit_m4", "stages.1.blocks.1", (1, 256, 14, 14)),
    ("mobilenetv3_large_100", "blocks.4.1", (1, 112, 14, 14)),
    ("fastvit_t8", "stages.2.blocks.1", (1, 192, 16, 16)),
]


@pytest.mark.parametrize("name,path,shape", BLOCKS, ids=[f"{n}:{p}" for n, p, _ in BLOCKS])
def test_block_forward(benchmark, name, path, shape):
    block = _block(name, path)
    x = torch.randn(shape)
    with torch.inference_mode():
        out = block(x)
        assert out.shape[0] == shape[0]
        benchmark(block, x)
