"""The exported graph normalises with the inference layer's own function, so it computes exactly
what the PyTorch backend computes."""

from __future__ import annotations

import numpy as np
import torch

from imgclf.export import graph
from imgclf.inference.backends import TorchBackend
from imgclf.models import create_model

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def test_graph_equals_the_torch_backend_exactly():
    torch.manual_seed(0)
    model = create_model("simple_cnn", 4).eval()
    pixels = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8))
    with torch.no_grad():
        exported = graph.PixelsToLogits(model, MEAN, STD)(pixels).numpy()
    backend = TorchBackend(model, MEAN, STD, device="cpu", precision="fp32")(pixels)
    np.testing.assert_array_equal(exported, backend)


def test_graph_calls_the_one_normalize(monkeypatch):
    calls = []

    def spy(batch, mean, std, dtype=torch.float32):
        calls.append((tuple(mean), tuple(std)))
        return torch.zeros(batch.shape[0], 3, batch.shape[1], batch.shape[2])

    monkeypatch.setattr(graph, "normalize", spy)
    graph.PixelsToLogits(create_model("simple_cnn", 2).eval(), MEAN, STD)(torch.zeros(1, 32, 32, 3, dtype=torch.uint8))
    assert calls == [(MEAN, STD)]
