"""A precision name is honoured or refused: fp16 runs in fp16 (before, the Predictor silently ran
fp32 for it), and a precision autocast cannot run on a device is a UserError, not fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from imgclf.data.preprocess import Preprocess
from imgclf.errors import UserError
from imgclf.inference import precision as precision_module
from imgclf.inference.backends import TorchBackend
from imgclf.inference.bundle import ModelMeta
from imgclf.inference.precision import autocast_runs, resolve_precision
from imgclf.predict import Predictor

CPU = torch.device("cpu")


class RecordsDtype(nn.Module):
    """A linear classifier that remembers the dtype its matrix product ran in."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.dtypes: list[torch.dtype] = []

    def forward(self, x):
        y = self.fc(x.mean(dim=(2, 3)))
        self.dtypes.append(y.dtype)
        return y


def meta() -> ModelMeta:
    return ModelMeta(architecture="test", classes=("a", "b"), preprocess=Preprocess(8))


@pytest.mark.parametrize("name, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_the_model_runs_in_the_requested_precision(name, dtype):
    if name != "fp32" and not autocast_runs("cpu", name):
        pytest.skip(f"this PyTorch build has no CPU autocast for {name}")
    model = RecordsDtype()
    p = Predictor.from_model(model, meta(), device="cpu", precision=name)
    result = p.predict(np.zeros((8, 8, 3), np.uint8))
    assert p.precision == name and model.dtypes == [dtype]
    assert result.error is None and np.isfinite(result.probability)


def test_a_precision_autocast_cannot_run_is_refused_not_replaced(monkeypatch):
    monkeypatch.setattr(precision_module, "autocast_runs", lambda device_type, precision: False)
    with pytest.raises(UserError, match="fp16 is not available"):
        resolve_precision("fp16", CPU)
    with pytest.raises(UserError, match="use --precision fp32"):
        TorchBackend(RecordsDtype(), (0.5,) * 3, (0.5,) * 3, device="cpu", precision="bf16")
    assert resolve_precision("fp32", CPU) == "fp32"


def test_unknown_precision_is_a_user_error():
    with pytest.raises(UserError, match="unknown precision"):
        resolve_precision("fp8", CPU)
