"""Optimisers with imgclf's parameter grouping."""

from __future__ import annotations

import torch
from torch import nn

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    *,
    decay_norm_and_bias: bool = False,
    bias_lr_scale: float = 1.0,
    lr_scales: dict[int, float] | None = None,
) -> list[dict]:
    """Split parameters into weights (matrices, kernels), normalisation parameters and other
    vectors (biases).

    By default norms and biases get no weight decay: decaying them only fights the
    normalisation. Normalisation parameters learn ``bias_lr_scale`` x faster; with
    ``decay_norm_and_bias`` their decay is divided by the same factor, so they shrink by the
    same fraction per step as the weights. Frozen parameters are left out, except vectors whose
    training a model switches on and off by epoch (``requires_grad`` toggled). ``lr_scales``
    (parameter id -> factor) gives layer-wise learning rates.
    """
    norm_params = {id(p) for m in model.modules() if isinstance(m, _NORMS) for p in m.parameters(recurse=False)}
    weights, norms, vectors = [], [], []
    for p in model.parameters():
        if p.ndim > 1:
            if p.requires_grad:
                weights.append(p)
        else:
            (norms if id(p) in norm_params else vectors).append(p)
    vector_decay = weight_decay if decay_norm_and_bias else 0.0
    kinds = [(weights, 1.0, weight_decay), (norms, bias_lr_scale, vector_decay / bias_lr_scale), (vectors, 1.0, vector_decay)]
    groups: dict[tuple, dict] = {}
    for params, scale, decay in kinds:
        for p in params:
            layer = (lr_scales or {}).get(id(p), 1.0)
            # As in timm's layer decay, only the rate is scaled: lower layers also decay less.
            key = (scale, decay, layer)
            groups.setdefault(key, {"params": [], "lr": lr * scale * layer, "weight_decay": decay})["params"].append(p)
    return list(groups.values())


def make_optimizer(model: nn.Module, cfg, lr_scales: dict[int, float] | None = None) -> torch.optim.Optimizer:
    groups = param_groups(
        model, cfg.lr, cfg.weight_decay, decay_norm_and_bias=cfg.decay_norm_and_bias, bias_lr_scale=cfg.bias_lr_scale,
        lr_scales=lr_scales,
    )  # fmt: skip
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def layer_decay_scales(model: nn.Module, decay: float) -> dict[int, float]:
    """Learning-rate factors (parameter id -> factor) for layer-wise decay: 1 for the head, then
    ``decay`` more per layer towards the input.

    timm models use timm's layer assignment (``param_groups_layer_decay``, what
    ``create_optimizer_v2(layer_decay=...)`` builds on). ``create_optimizer_v2`` itself is not
    used: it leaves each group's rate at the base rate and records the factor as ``lr_scale``,
    which only timm's own schedulers apply (with torch's LambdaLR, layer decay would silently do
    nothing: checked with timm 1.0.31), and its groups have no place for --bias-lr-scale and
    --decay-norm-and-bias, which the fast-small preset sets. imgclf's compact nets have no
    ``group_matcher`` (timm would put every parameter in one layer): their top-level blocks are
    the layers.
    """
    if hasattr(model, "group_matcher"):
        from timm.optim import param_groups_layer_decay

        groups = param_groups_layer_decay(model, weight_decay=0.0, layer_decay=decay)
        return {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    from ..models.pretrained import backbone_groups

    blocks = backbone_groups(model)
    return {id(p): decay ** (len(blocks) - i) for i, block in enumerate(blocks) for p in block}
