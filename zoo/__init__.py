"""lsbench's model zoo: LSNet written here (checkpoint-compatible with the official code) and the timm
baselines it is compared with, each with its published figures as cited data. The SKA operator lives in
``zoo.ska`` (``zoo.ska.ska`` is its single dispatch point).

``import zoo`` registers ``lsnet_{t,s,b}[_distill]`` with timm, pretrained configs included, so
``timm.create_model("lsnet_t", features_only=True)``, ``timm.list_pretrained("lsnet*")`` and the rest of timm's
model API work as for timm's own models.
"""
from .checkpoint import checkpoint_filter_fn, load_checkpoint, read_state_dict
from .errors import ZooError
from .lsnet import LKP, LSConv, LSNet, LSNET_CONFIGS
from .registry import Figure, ModelCard, copy_model, create_model, get_card, list_models, reparameterize
from .ska import SKA

__all__ = ["LSNet", "LKP", "LSConv", "SKA", "LSNET_CONFIGS", "create_model", "list_models", "get_card",
           "reparameterize", "copy_model", "load_checkpoint", "read_state_dict", "checkpoint_filter_fn", "ModelCard",
           "Figure", "ZooError"]
