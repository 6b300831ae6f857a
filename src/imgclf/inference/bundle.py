"""The deployable model bundle, typed: ``model.safetensors`` + ``model.json`` as a :class:`ModelMeta`.

``model.json`` says everything needed to rebuild and feed the model (architecture, classes,
preprocessing, calibration temperature, test-time augmentation, the "unsure" threshold evaluation
chose); the weights are safetensors, never pickle. Everything that reads a bundle (predict,
evaluate, export, serve) gets a :class:`ModelMeta` whose values were checked on load
(:mod:`.bundle_checks`), so no module reads raw ``model.json`` keys of its own. Bundles written by
earlier versions of this code (format_version 1) load unchanged.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from .._version import __version__
from ..data.preprocess import Preprocess
from ..errors import UserError
from ..models.bundle import FORMAT, FORMAT_VERSION, read_bundle_meta
from ..runs import write_json
from . import bundle_checks as check

# Keys ModelMeta holds as typed fields; every other key of model.json is kept as it is in `extra`.
_TYPED = ("format", "format_version", "architecture", "model_kwargs", "num_classes", "classes", "preprocess",
          "temperature", "tta", "unsure_threshold")  # fmt: skip


@dataclass(frozen=True)
class ModelMeta:
    """``model.json``, checked: build one with :meth:`from_dict` (validates) or :func:`read_meta`."""

    architecture: str
    classes: tuple[str, ...]
    preprocess: Preprocess
    model_kwargs: dict = field(default_factory=dict)
    temperature: float = 1.0
    tta: str = "none"
    # What evaluation stored for the "unsure" flag: not evaluated (unsure_evaluated False), no
    # threshold reaching the target accuracy (None), or {"threshold", "target_accuracy", "coverage"}.
    unsure_threshold: dict | None = None
    unsure_evaluated: bool = False
    extra: dict = field(default_factory=dict)  # created, imgclf_version, epoch, val_accuracy, pretrained, ...

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def from_dict(cls, raw: Any, where: str = "model.json") -> ModelMeta:
        """Check every value of a parsed ``model.json`` (see :mod:`.bundle_checks`); one-sentence UserError if any is wrong."""
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise UserError(f"{where} is not an imgclf model bundle")
        version = raw.get("format_version", 0)
        if not check.is_int(version) or version > FORMAT_VERSION:
            raise check.bad(where, f"format_version {version!r} is not one this imgclf ({__version__}) reads")
        return cls(
            architecture=check.check_architecture(where, raw.get("architecture")),
            classes=check.check_classes(where, raw.get("classes"), raw.get("num_classes")),
            preprocess=check.check_preprocess(where, raw.get("preprocess")),
            model_kwargs=check.check_model_kwargs(where, raw.get("model_kwargs", {})),
            temperature=check.check_temperature(where, raw.get("temperature", 1.0)),
            tta=check.check_tta(where, raw.get("tta", "none")),
            unsure_threshold=check.check_unsure(where, raw.get("unsure_threshold")),
            unsure_evaluated="unsure_threshold" in raw,
            extra={k: v for k, v in raw.items() if k not in _TYPED},
        )

    def to_dict(self) -> dict:
        """The ``model.json`` content (what :meth:`from_dict` reads back to an equal ModelMeta)."""
        out = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **{k: self.extra[k] for k in ("imgclf_version", "created") if k in self.extra},
            "architecture": self.architecture,
            "model_kwargs": dict(self.model_kwargs),
            "num_classes": self.num_classes,
            "classes": list(self.classes),
            "preprocess": self.preprocess.to_dict(),
            "temperature": self.temperature,
            "tta": self.tta,
            **{k: v for k, v in self.extra.items() if k not in ("imgclf_version", "created")},
        }
        if self.unsure_evaluated:
            out["unsure_threshold"] = None if self.unsure_threshold is None else dict(self.unsure_threshold)
        return out

    def is_unsure(self, probability: float) -> bool | None:
        """Whether a prediction of top probability ``probability`` should go to a person.

        None when evaluation has not chosen a threshold; True for every prediction when it found
        none reaching its target accuracy (the model card then says: review predictions by hand).
        """
        if not self.unsure_evaluated:
            return None
        if self.unsure_threshold is None:
            return True
        return bool(probability < self.unsure_threshold["threshold"])  # answered at or above it (selective.py)


def read_meta(directory: str | os.PathLike) -> ModelMeta:
    """The checked metadata of the bundle in ``directory`` (no weights are read)."""
    directory = Path(directory)
    return ModelMeta.from_dict(read_bundle_meta(directory), where=str(directory / "model.json"))


def save_bundle(
    model: nn.Module,
    directory: Path,
    *,
    architecture: str,
    classes: list[str],
    preprocess: Preprocess | Mapping,
    model_kwargs: dict | None = None,
    extra: dict | None = None,
) -> ModelMeta:
    """Write ``model.safetensors`` and ``model.json`` (each atomically); returns the metadata written.

    The metadata is checked before anything is written, so training cannot leave a bundle that
    predict would refuse.
    """
    pre = preprocess.to_dict() if isinstance(preprocess, Preprocess) else dict(preprocess)
    raw = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "imgclf_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "architecture": architecture,
        "model_kwargs": model_kwargs or {}, "num_classes": len(classes), "classes": list(classes),
        "preprocess": Preprocess.from_dict(pre).to_dict(), "temperature": 1.0, **(extra or {}),
    }  # fmt: skip
    meta = ModelMeta.from_dict(raw, where=f"the model.json for {directory}")
    from safetensors.torch import save_model

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / "model.safetensors"
    tmp = weights.with_name(f".model.safetensors.tmp{os.getpid()}")
    save_model(model, str(tmp))  # handles tied weights, unlike save_file
    os.replace(tmp, weights)
    write_json(directory / "model.json", meta.to_dict())
    return meta


def update_bundle_meta(directory: Path, updates: dict) -> ModelMeta:
    """Merge ``updates`` into ``model.json`` (checked, then written atomically); returns the new metadata.

    Evaluation stores what it learns about the model here (calibration temperature, the
    confidence threshold for "unsure"), so predict, export and serve all pick it up.
    """
    raw = read_bundle_meta(Path(directory))
    raw.update(updates)
    meta = ModelMeta.from_dict(raw, where=str(Path(directory) / "model.json"))
    write_json(Path(directory) / "model.json", meta.to_dict())
    return meta


def load_bundle(directory: str | os.PathLike) -> tuple[nn.Module, ModelMeta]:
    """Rebuild the model from ``model.json`` and load its weights (strictly: every tensor must fit)."""
    from .bundle_weights import build_model, load_weights

    directory = Path(directory)
    meta = read_meta(directory)
    model = build_model(meta, where=str(directory / "model.json"))
    load_weights(model, meta, directory)
    model.eval()
    return model, meta


def weights_digest(bundle_dir: Path) -> str:
    """sha256 of ``model.safetensors``: identifies the exact weights an export came from."""
    return file_digest(Path(bundle_dir) / "model.safetensors")


def file_digest(path: Path) -> str:
    """sha256 of a file, read in 1 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
