"""Grad-CAM explanations: which parts of an image drove the model's decision.

The maps come from the pytorch-grad-cam library (Selvaraju et al., 2017). What it needs from us
is the layer to explain and, for Vision Transformers, how to turn tokens back into a grid:

- CNNs: the last layer whose output is still a spatial (N, C, H, W) map, i.e. the feature map
  just before global pooling. It is found by tracing one forward pass, so any timm CNN and
  imgclf's compact nets work without a per-architecture table.
- ViTs (timm's ``VisionTransformer`` family): the first norm of the last block, whose tokens
  (without the class/register tokens) are reshaped to the patch grid. The last block's output
  cannot be used: with a class-token head, its patch tokens no longer reach the logits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.preprocess import as_rgb
from ..errors import UserError
from ..inference.normalize import normalize
from ..predict import Predictor, expand_inputs, load
from ..predict_inputs import to_items
from ..runs import atomic_write_bytes, open_run

# Overlays written by `imgclf explain` are at least this many pixels wide: a 32-pixel map is
# unreadable on a screen.
MIN_DISPLAY_SIZE = 256


def target_layer(model: nn.Module, img_size: int | None = None, channels: int = 3) -> tuple[nn.Module, Callable | None]:
    """The layer Grad-CAM explains for ``model`` and the reshape its output needs (None for CNNs).

    ``img_size`` is the input size used to trace the forward pass (default: the model's own).
    """
    if _is_vit(model):
        return model.blocks[-1].norm1, vit_reshape_transform(model)
    size = img_size or _native_size(model)
    calls: dict[nn.Module, int] = {}
    finished: list[tuple[nn.Module, tuple[int, ...]]] = []

    def hook(module, _inputs, output):
        calls[module] = calls.get(module, 0) + 1
        if isinstance(output, torch.Tensor):
            finished.append((module, tuple(output.shape)))

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, channels, size, size, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    # Hooks fire when a module finishes, so the last qualifying entry is the deepest feature map
    # (a container such as ``layer4`` finishes after its last block, with the same output).
    # Modules called more than once (a ReLU reused inside a block) would confuse the library's hooks;
    # an Identity (timm's norm_pre) only repeats the layer before it.
    once = [(m, s) for m, s in finished if calls[m] == 1 and len(s) == 4 and s[0] == 1 and not isinstance(m, nn.Identity)]
    spatial = [(m, s) for m, s in once if s[2] * s[3] > 1] or once
    if not spatial:
        raise UserError(f"cannot explain {type(model).__name__}: it has no layer with a spatial (N, C, H, W) output")
    return spatial[-1][0], None


def vit_reshape_transform(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Tokens (N, prefix + H*W, C) -> (N, C, H, W) for a timm ViT: drop the class and register
    tokens (``model.num_prefix_tokens``), lay the rest on the patch grid."""
    prefix = int(getattr(model, "num_prefix_tokens", 1))
    gh, gw = (int(v) for v in model.patch_embed.grid_size)

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        x = tokens[:, prefix:, :]
        return x.reshape(x.shape[0], gh, gw, x.shape[-1]).permute(0, 3, 1, 2)

    return reshape


def gradcam(predictor: Predictor, pixels: np.ndarray, classes: list[int] | None = None, batch_size: int = 32) -> np.ndarray:
    """Grad-CAM maps, float32 (N, H, W) in [0, 1], for uint8 NHWC ``pixels`` already fitted by
    ``predictor.preprocess``; ``classes`` gives the class to explain per image (None: the
    predicted one). Runs in fp32 with gradients and leaves the model as it found it (eval mode,
    no stored gradients)."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = np.asarray(pixels)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"expected uint8 pixels of shape (N, H, W, 1 or 3), got {x.dtype} {x.shape}")
    if classes is not None and len(classes) != len(x):
        raise ValueError(f"got {len(classes)} classes for {len(x)} images")
    if classes is not None and any(not 0 <= int(c) < len(predictor.classes) for c in classes):
        raise ValueError(f"class indices must be in 0..{len(predictor.classes) - 1}")
    model = predictor.model
    if not isinstance(model, nn.Module):
        raise UserError("Grad-CAM needs the PyTorch model: load the run with backend='torch'")
    layer, reshape = target_layer(model, img_size=x.shape[1], channels=x.shape[-1])
    pre = predictor.preprocess
    out = []
    try:
        # The caller may be inside inference_mode (tensors there cannot take part in autograd).
        with (
            torch.inference_mode(False),
            torch.enable_grad(),
            GradCAM(model=model, target_layers=[layer], reshape_transform=reshape) as cam,
        ):
            for start in range(0, len(x), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size]))
                # An input that requires gradients makes the layer's output require them even
                # when every weight before it is frozen (a linear-probe model).
                inp = normalize(batch.to(predictor.device), pre.mean, pre.std).requires_grad_(True)
                targets = None
                if classes is not None:
                    targets = [ClassifierOutputTarget(int(c)) for c in classes[start : start + batch_size]]
                out.append(cam(input_tensor=inp, targets=targets))
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()
    maps = np.concatenate(out).astype(np.float32) if out else np.zeros((0, *x.shape[1:3]), np.float32)
    if len(maps) != len(x):  # the library's context manager swallows IndexErrors: never return short
        raise RuntimeError(f"Grad-CAM returned {len(maps)} maps for {len(x)} images")
    return maps


def overlay(pixels_hwc: np.ndarray, heatmap: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """The image with ``heatmap`` (H, W in [0, 1], resized if needed) blended over it as a jet
    colour map: uint8 HWC."""
    import cv2
    from pytorch_grad_cam.utils.image import show_cam_on_image

    img = np.asarray(pixels_hwc)
    h, w = img.shape[:2]
    m = np.asarray(heatmap, dtype=np.float32)
    if m.shape != (h, w):
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    return show_cam_on_image(img.astype(np.float32) / 255.0, np.clip(m, 0, 1), use_rgb=True, image_weight=image_weight)


def explain(
    run: str | os.PathLike,
    images: list[str],
    *,
    class_name: str | None = None,
    out_dir: str | os.PathLike | None = None,
    device: str = "auto",
) -> list[dict]:
    """Write a Grad-CAM overlay PNG for each image (files, folders or glob patterns) and return,
    per image: ``path``, ``predicted``, ``probability``, ``explained`` (the class the map is
    for: ``class_name`` or the prediction), ``overlay`` (the PNG's path) or ``error``.

    Overlays go to ``out_dir`` (default ``RUN/eval/explain/``).
    """
    from PIL import Image

    r = open_run(run)
    predictor = load(r.root, device=device, precision="fp32", backend="torch")
    target = None
    if class_name is not None:
        if class_name not in predictor.classes:
            raise UserError(f"--class {class_name!r} is not one of the model's classes ({', '.join(predictor.classes)})")
        target = predictor.classes.index(class_name)
    paths = expand_inputs(images)
    out = Path(out_dir) if out_dir else r.eval_dir / "explain"
    out.mkdir(parents=True, exist_ok=True)

    results: list[dict] = []
    loaded: list[tuple[int, np.ndarray]] = []
    for item in to_items(paths):
        path, pixels, error = item.load(predictor.preprocess)  # the reasons predict gives, broken links included
        if pixels is None:
            results.append({"path": path, "error": error})
        else:
            loaded.append((len(results), pixels))
            results.append({"path": path})
    if loaded:
        pixels = np.stack([px for _, px in loaded])
        probs = predictor.probabilities(pixels)
        predicted = probs.argmax(1)
        explained = predicted if target is None else np.full(len(pixels), target)
        maps = gradcam(predictor, pixels, classes=explained.tolist())
        names = _unique_names([results[i]["path"] for i, _ in loaded])
        for (i, px), p, k, m, name in zip(loaded, probs, explained, maps, names):
            scale = max(1, -(-MIN_DISPLAY_SIZE // px.shape[1]))
            big = np.asarray(Image.fromarray(as_rgb(px)).resize((px.shape[1] * scale, px.shape[0] * scale), Image.Resampling.BICUBIC))
            png = out / f"{name}.gradcam.png"
            _write_png(png, overlay(big, m))
            results[i].update(
                predicted=predictor.classes[int(p.argmax())], probability=float(p.max()),
                explained=predictor.classes[int(k)], explained_probability=float(p[int(k)]), overlay=str(png),
            )  # fmt: skip
    return results


def _unique_names(paths: list[str]) -> list[str]:
    """File stems for the overlays; two inputs named alike (a/cat.jpg, b/cat.jpg) get a suffix."""
    used: set[str] = set()
    names = []
    for p in paths:
        stem = name = Path(p).stem or "image"
        n = 1
        while name in used:
            name, n = f"{stem}-{n}", n + 1
        used.add(name)
        names.append(name)
    return names


def _write_png(path: Path, pixels: np.ndarray) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def _is_vit(model: nn.Module) -> bool:
    blocks = getattr(model, "blocks", None)
    return (
        hasattr(model, "num_prefix_tokens") and hasattr(getattr(model, "patch_embed", None), "grid_size")
        and isinstance(blocks, nn.Sequential | nn.ModuleList) and len(blocks) > 0 and hasattr(blocks[-1], "norm1")
    )  # fmt: skip


def _native_size(model: nn.Module) -> int:
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    return int(size[-1]) if size else 64
