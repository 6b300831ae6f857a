"""Mixup and CutMix on whole batches: images blended (or patched) with a shuffled copy of the
batch, targets mixed in the same proportion. One vectorised op per batch."""

from __future__ import annotations

import numpy as np
import torch


def mix_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    rng: np.random.Generator,
    *,
    mixup: float = 0.0,
    cutmix: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (mixed images, soft targets of shape N x num_classes) for normalised NCHW ``x``.

    ``mixup`` and ``cutmix`` are the alpha of the Beta distribution the mixing proportion is
    drawn from (0: off). With both on, each batch uses one of them at random, as timm does.
    """
    targets = torch.nn.functional.one_hot(y, num_classes).to(torch.float32)
    modes = [(m, a) for m, a in (("mixup", mixup), ("cutmix", cutmix)) if a > 0]
    if not modes:
        return x, targets
    mode, alpha = modes[rng.integers(len(modes))]
    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(len(x))).to(x.device)
    if mode == "mixup":
        x = lam * x + (1 - lam) * x[perm]
    else:
        h, w = x.shape[-2:]
        cut_h, cut_w = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
        x = x.clone()
        x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the share of the image actually kept
    return x, lam * targets + (1 - lam) * targets[perm]


class Mixer:
    """Mixup / CutMix for a run: :func:`mix_batch` with the run's own seeded generator, whose
    state goes into every checkpoint.

    Why not ``timm.data.Mixup`` (timm 1.0.31): it draws from NumPy's process-global generator
    (``np.random.beta``, ``np.random.rand``, ``np.random.randint`` in data/mixup.py), so exact
    resume would have to checkpoint and restore global state that any other code in the process
    (a library, the user's notebook) also draws from, and seeding it would reseed the user's
    process; and its ``__call__`` asserts an even batch size, while a split smaller than
    ``--batch-size`` gives a batch of any size. tests/train/test_resume.py checks the bit-exact
    resume with mixup on.
    """

    def __init__(self, num_classes: int, seed: int, *, mixup: float = 0.0, cutmix: float = 0.0):
        self.num_classes, self.mixup, self.cutmix = num_classes, mixup, cutmix
        self.rng = np.random.default_rng([seed, 7])

    @property
    def enabled(self) -> bool:
        return bool(self.mixup or self.cutmix)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return mix_batch(x, y, self.num_classes, self.rng, mixup=self.mixup, cutmix=self.cutmix)

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def describe(self) -> list[str]:
        return [f"{name} (alpha {a:g})" for name, a in (("mixup", self.mixup), ("cutmix", self.cutmix)) if a]
