"""Build a bundle's model from its checked metadata and load ``model.safetensors`` into it.

Every way this can fail on a damaged or edited bundle (a missing or truncated weights file, a
model_kwargs value the architecture does not take, weights of another size or class count) is a
one-sentence UserError, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..errors import UserError
from ..models.factory import create_model
from .bundle import ModelMeta


def build_model(meta: ModelMeta, where: str) -> nn.Module:
    """A freshly initialised ``meta.architecture`` with ``meta.num_classes`` outputs."""
    # The input channels come from the preprocessing (a grayscale model takes one), not model_kwargs.
    channels = {"in_chans": meta.preprocess.channels} if meta.preprocess.channels != 3 else {}
    try:
        return create_model(meta.architecture, meta.num_classes, img_size=meta.preprocess.img_size, **channels, **meta.model_kwargs)
    except UserError:
        raise
    except (TypeError, ValueError, RuntimeError, AssertionError) as exc:  # a keyword the architecture does not take
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UserError(f"{where}: {meta.architecture} cannot be built from its model_kwargs ({first})") from None


def load_weights(model: nn.Module, meta: ModelMeta, directory: Path) -> None:
    """Load ``directory/model.safetensors`` into ``model``; every tensor must be there, with its shape."""
    from safetensors import safe_open
    from safetensors.torch import load_model

    path = directory / "model.safetensors"
    if not path.is_file():
        raise UserError(f"{directory} holds no model.safetensors; the bundle is incomplete, so copy or train it again")
    try:
        with safe_open(str(path), framework="pt") as fh:
            stored = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # reads the header only
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for damaged files
        raise UserError(f"{path} is damaged (truncated or not a safetensors file: {_first_line(exc)})") from None
    _check_shapes(model, meta, stored, path)
    try:
        missing, unexpected = load_model(model, str(path), strict=False)
    except Exception as exc:  # noqa: BLE001 - a file damaged after its header
        raise UserError(f"{path} is damaged ({_first_line(exc)})") from None
    if missing or unexpected:
        raise UserError(
            f"the weights in {directory} do not fit {meta.architecture} "
            f"({len(missing)} missing, {len(unexpected)} unexpected tensors); the bundle is damaged"
        )


def _check_shapes(model: nn.Module, meta: ModelMeta, stored: dict[str, tuple[int, ...]], path: Path) -> None:
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    differ = [k for k in own.keys() & stored.keys() if own[k] != stored[k]]
    if not differ:
        return
    # The classifier's weight and bias are the tensors whose first dimension is the class count.
    head = [k for k in differ if own[k] and own[k][0] == meta.num_classes and stored[k]]
    if head:
        outputs = stored[head[0]][0]
        raise UserError(
            f"model.json lists {meta.num_classes} classes but the weights in {path} have {outputs} outputs; "
            "the bundle is damaged or was edited by hand"
        )
    k = sorted(differ)[0]
    raise UserError(
        f"the weights in {path} do not fit {meta.architecture} at {meta.preprocess.img_size}px "
        f"({k} is {stored[k]} in the file, {own[k]} in the model); the bundle is damaged"
    )


def _first_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
