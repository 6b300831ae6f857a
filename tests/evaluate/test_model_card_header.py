"""The model card starts with a Hugging Face metadata header (YAML front matter)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import yaml

from imgclf.evaluate.model_card import front_matter


def _header(architecture: str, pretrained: str | None = None) -> dict:
    ctx = {
        "meta": SimpleNamespace(architecture=architecture, extra={"pretrained": pretrained}),
        "metrics": {"data": "../shared/data/trashnet.zip", "split": "test", "accuracy": 0.93023},
        "run": SimpleNamespace(root=Path("runs/photos")),
    }
    text = front_matter(ctx)
    assert text.startswith("---\n") and text.endswith("---\n")
    return yaml.safe_load(text.strip().strip("-"))


def test_a_timm_model_is_a_timm_library_model_with_its_test_accuracy():
    h = _header("tf_efficientnet_lite0", pretrained="imagenet")
    assert h["library_name"] == "timm" and h["pipeline_tag"] == "image-classification" and h["license"] == "other"
    assert {"image-classification", "imgclf", "timm", "tf_efficientnet_lite0", "imagenet-1k-pretrained"} <= set(h["tags"])
    assert h["datasets"] == ["trashnet"] and h["metrics"] == ["accuracy"]
    result = h["model-index"][0]["results"][0]
    assert h["model-index"][0]["name"] == "photos" and result["dataset"]["split"] == "test"
    assert result["metrics"] == [{"type": "accuracy", "value": 0.9302}]


def test_a_compact_net_is_an_imgclf_model():
    h = _header("simple_cnn")
    assert h["library_name"] == "imgclf" and "timm" not in h["tags"] and "imagenet-1k-pretrained" not in h["tags"]
