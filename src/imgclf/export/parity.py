"""How closely an exported model reproduces a reference: top-1 agreement and probability drift."""

from __future__ import annotations

import numpy as np

from ..inference.forward import softmax

# An fp32 export that disagrees on more than 1 image in 1,000 is a broken export (a preprocessing
# or operator mismatch), not rounding: rounding moves probabilities by about 1e-6.
MIN_FP32_AGREEMENT = 0.999


def compare_logits(reference: np.ndarray, candidate: np.ndarray, temperature: float = 1.0) -> dict:
    """Top-1 agreement and the largest absolute differences of (calibrated) probabilities and logits."""
    if reference.shape != candidate.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {candidate.shape}")
    n = len(reference)
    if n == 0:
        return {"images": 0, "top1_agreement": None, "disagreements": 0, "max_abs_prob_diff": None, "max_abs_logit_diff": None}
    same = reference.argmax(1) == candidate.argmax(1)
    p_ref, p_cand = softmax(reference, temperature), softmax(candidate, temperature)
    return {
        "images": int(n),
        "top1_agreement": float(same.mean()),
        "disagreements": int(n - same.sum()),
        "max_abs_prob_diff": float(np.abs(p_ref - p_cand).max()),
        "mean_abs_prob_diff": float(np.abs(p_ref - p_cand).mean()),
        "max_abs_logit_diff": float(np.abs(reference - candidate).max()),
    }


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float | None:
    return float((logits.argmax(1) == labels).mean()) if len(labels) else None
