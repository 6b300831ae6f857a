"""``imagenet:ARCH`` as a model: the packaged ImageNet-1k weights, 1000 ImageNet labels, no training.

`imgclf predict imagenet:tf_efficientnet_lite0 photo.jpg` (and ``imgclf.load("imagenet:...")``)
opens one of these like a run: a :class:`~.backends.TorchBackend` and a checked
:class:`~.bundle.ModelMeta` whose preprocessing is the weights' own (size, mean 127/255, std
128/255, bicubic; :func:`imgclf.models.imagenet.imagenet_preprocess`).

The weights' evaluation crop (TF's centre crop of 87.5% of the shorter side) is not applied:
imgclf's one preprocessing definition (:class:`~imgclf.data.preprocess.Preprocess`) has no crop
fraction, and serving the same pixels a fine-tuned run would see keeps one path. Measured on
TrashNet (all 430 test photos), the crop changes the zero-shot 1000-way top-1 of lite0 for a
minority of images; see the report of issue 13 for the figure.
"""

from __future__ import annotations

from ..data.preprocess import Preprocess
from ..errors import UserError
from .backends import TorchBackend
from .bundle import ModelMeta

PREFIX = "imagenet:"


def is_imagenet_spec(path) -> bool:
    """Whether ``path`` names packaged ImageNet weights (``imagenet:ARCH``) rather than a run."""
    return str(path).startswith(PREFIX)


def imagenet_meta(arch: str) -> ModelMeta:
    """The metadata of ``arch`` with its ImageNet weights: 1000 classes, the weights' preprocessing."""
    from ..models.imagenet import imagenet_classes, imagenet_preprocess

    pre = imagenet_preprocess(arch)
    preprocess = Preprocess(pre["img_size"], mean=tuple(pre["mean"]), std=tuple(pre["std"]), interpolation=pre["interpolation"])
    return ModelMeta(architecture=arch, classes=tuple(imagenet_classes()), preprocess=preprocess, extra={"pretrained": "imagenet"})


def open_imagenet(spec: str, *, device: str = "auto", precision: str = "auto", backend: str = "auto") -> tuple[TorchBackend, ModelMeta]:
    """The backend and metadata for ``imagenet:ARCH``; PyTorch only (there is no export to run)."""
    import timm

    from ..models.imagenet import IMAGENET_ARCHITECTURES, imagenet_weights

    arch = str(spec)[len(PREFIX) :]
    if arch not in IMAGENET_ARCHITECTURES:
        raise UserError(f"{spec}: ImageNet weights are packaged for {', '.join(PREFIX + a for a in IMAGENET_ARCHITECTURES)}")
    if backend not in ("auto", "torch"):
        raise UserError(f"{spec} runs with the torch backend; export a trained run to use {backend}")
    if precision == "int8":
        raise UserError(f"{spec} runs with the torch backend, which has no int8; use fp32 or bf16")
    meta = imagenet_meta(arch)
    model = timm.create_model(arch, num_classes=1000)
    model.load_state_dict(imagenet_weights(arch), strict=True)
    return TorchBackend(model, meta.preprocess.mean, meta.preprocess.std, device=device, precision=precision), meta
