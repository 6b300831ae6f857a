"""Test-time augmentation has one definition: the same views and weights for numpy and torch
batches, for uint8 NHWC pixels (every backend) and normalised NCHW tensors, equal to the original
reflect-padding formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from imgclf.inference.backends import TorchBackend
from imgclf.inference.forward import backend_logits
from imgclf.inference.normalize import normalize
from imgclf.inference.tta import tta_logits, tta_views
from imgclf.models import create_model

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def pixels(n=3, h=7, w=9, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("tta", ["none", "flip", "flip-translate"])
def test_numpy_and_torch_batches_get_the_same_views_and_weights(tta):
    x = pixels()
    a = tta_views(x, tta)
    b = tta_views(torch.from_numpy(x), tta)
    assert [w for w, _ in a] == [w for w, _ in b]
    assert sum(w for w, _ in a) == pytest.approx(1.0)
    assert len(a) == {"none": 1, "flip": 2, "flip-translate": 6}[tta]
    for (_, va), (_, vb) in zip(a, b):
        assert va.dtype == np.uint8 and vb.dtype == torch.uint8 and np.array_equal(va, vb.numpy())


def reference_flip_translate(model, x_nchw: torch.Tensor) -> torch.Tensor:
    """The formula TTA was defined by (airbench level 2), written with torch's reflect padding."""

    def mirrored(v):
        return 0.5 * (model(v) + model(v.flip(-1)))

    h, w = x_nchw.shape[-2:]
    padded = F.pad(x_nchw, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[..., 0:h, 0:w], padded[..., 2 : h + 2, 2 : w + 2]]
    return 0.5 * mirrored(x_nchw) + 0.25 * sum(mirrored(v) for v in shifted)


def test_views_on_uint8_pixels_equal_the_reflect_padding_formula_on_normalised_tensors():
    """Flips and shifts commute with per-channel normalisation: TTA on the pixels a backend takes
    is exactly TTA on the normalised tensor the model takes."""
    torch.manual_seed(0)
    model = create_model("simple_cnn", 5).eval()
    x = pixels(4, 16, 16)
    with torch.no_grad():
        reference = reference_flip_translate(model, normalize(torch.from_numpy(x), MEAN, STD))
        backend = TorchBackend(model, MEAN, STD, device="cpu", precision="fp32")
        on_pixels = backend_logits(backend, [x], "flip-translate")
        on_nchw = tta_logits(model, normalize(torch.from_numpy(x), MEAN, STD), "flip-translate", height_axis=2)
    np.testing.assert_allclose(on_pixels, reference.numpy(), atol=1e-5)
    np.testing.assert_allclose(on_nchw.numpy(), reference.numpy(), atol=1e-5)


def test_any_pixels_to_logits_callable_is_augmented_the_same_way():
    """A numpy backend (as onnxruntime is) and a torch one see identical views in the same order."""
    seen_numpy, seen_torch = [], []

    def numpy_backend(v: np.ndarray) -> np.ndarray:
        seen_numpy.append(v.copy())
        return v.reshape(len(v), -1)[:, :4].astype(np.float32)

    def torch_backend(v: torch.Tensor) -> np.ndarray:
        seen_torch.append(v.clone())
        return v.reshape(len(v), -1)[:, :4].float().numpy()

    x = pixels(2, 5, 6)
    a = backend_logits(numpy_backend, [x], "flip-translate")
    b = backend_logits(torch_backend, [torch.from_numpy(x)], "flip-translate")
    assert len(seen_numpy) == len(seen_torch) == 6
    assert all(np.array_equal(u, v.numpy()) for u, v in zip(seen_numpy, seen_torch))
    np.testing.assert_array_equal(a, b)
    # the mirror of the mirror is the image: flip TTA of a mirror-symmetric function is the function
    np.testing.assert_array_equal(seen_numpy[1], x[:, :, ::-1])


def test_shifted_views_are_one_pixel_reflect_shifts():
    x = np.arange(4 * 5, dtype=np.uint8).reshape(1, 4, 5, 1).repeat(3, axis=3)
    views = [v for _, v in tta_views(x, "flip-translate")]
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(views[2], padded[:, 0:4, 0:5])
    np.testing.assert_array_equal(views[4], padded[:, 2:6, 2:7])
    np.testing.assert_array_equal(views[3], views[2][:, :, ::-1])


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown TTA mode"):
        tta_views(pixels(), "rotate")
