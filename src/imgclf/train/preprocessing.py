"""The one place that decides a run's preprocessing (image size, resize, mean/std, interpolation)
from its configuration and model. `imgclf train`, `lr-find` and `bench train` all ask here; the
answer is recorded in model.json, where evaluate, predict, export and serve read it.
"""

from __future__ import annotations

from ..data.preprocess import Preprocess
from ..models import default_img_size
from ..models.imagenet import imagenet_preprocess
from ..models.pretrained import pretrained_preprocess
from .config import TrainConfig
from .input_choices import fit_to_data


def resolve_preprocess(cfg: TrainConfig, recorded: dict | None = None) -> Preprocess:
    """The preprocessing a run with ``cfg`` trains with.

    - size: ``--img-size``, else the size the ``--pretrained imagenet`` weights were trained at
      (224, 240, 260 for EfficientNet-Lite0/1/2), else the model's native size (32 for compact
      nets, timm's ``pretrained_cfg`` input size);
    - mean, std and interpolation: those the ``--pretrained`` weights were trained with, when
      known (the packaged ImageNet weights' own, timm's ``pretrained_cfg``, or the source run's
      model.json); otherwise ImageNet's
      statistics and bilinear resizing;
    - resize mode and channels: ``--resize`` and ``--channels``, else chosen from the data's
      headers (:mod:`.input_choices`), with mean and std as one grey channel's for a grayscale model.

    ``recorded``: what a resumed run's checkpoint says it trained with, which wins (the
    pretrained source may have changed or gone since).
    """
    if recorded:
        return Preprocess.from_dict(recorded)
    size = cfg.img_size or (imagenet_preprocess(cfg.model)["img_size"] if cfg.pretrained == "imagenet" else default_img_size(cfg.model))
    stats = pretrained_preprocess(cfg.pretrained, cfg.model) if cfg.pretrained else None
    if not stats:
        return fit_to_data(Preprocess(size), cfg)
    mean = tuple(float(v) for v in stats["mean"])
    # A grey source run's statistics have one value; fit_to_data repeats them for an RGB model.
    return fit_to_data(Preprocess(
        size, mean=mean, std=tuple(float(v) for v in stats["std"]),
        interpolation=stats.get("interpolation", "bilinear"), channels=len(mean),
    ), cfg)  # fmt: skip
