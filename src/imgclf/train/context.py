"""Everything a training run holds while it trains: built by :func:`.builders.build_training`,
advanced by :mod:`.epoch`, saved by :mod:`.state`, and shown to every callback."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..data.dataset import PreparedData, Split
from ..data.loader import BatchLoader
from ..data.preprocess import Preprocess
from ..models.pretrained import Freezer
from ..runs import Run
from .averaging import EMA, Lookahead
from .budget import Clock, StepPlan
from .config import TrainConfig
from .engine import TrainStep
from .state import TrainState

if TYPE_CHECKING:
    from collections.abc import Callable

    from .callbacks import Callbacks
    from .feature_cache import CachedFeatures


@dataclass
class TrainContext:
    """A run in progress. Callbacks read it; they change training only through
    :meth:`request_stop` (or by changing the model, optimiser or loader deliberately)."""

    config: TrainConfig
    run: Run
    data: PreparedData
    preprocess: Preprocess
    device: torch.device
    precision: str
    model: nn.Module  # the weights: optimiser, averaging, checkpoints and the bundle use these
    step_model: nn.Module  # what the training step calls: ``model``, or a torch.compile wrapper sharing its weights
    step: TrainStep
    loader: BatchLoader
    freezer: Freezer
    plan: StepPlan
    state: TrainState
    callbacks: Callbacks
    averager: Lookahead | None = None
    ema: EMA | None = None
    features: CachedFeatures | None = None  # --cache-features: the loader yields them and validation reads them
    clock: Clock = time.perf_counter
    t_start: float = 0.0  # the clock's reading when the run began
    epoch_start_step: int = 0  # the step the current epoch (or its resumed part) started at
    record: dict = field(default_factory=dict)  # the last finished epoch's metrics (a metrics.jsonl line)
    is_best: bool = False  # that epoch's weights were kept as the run's model
    loss: Callable[[], float] | None = None  # reads the last step's loss (makes a GPU wait: call sparingly)
    stop_reason: str | None = None

    @property
    def train_split(self) -> Split:
        return self.data.split("train")

    @property
    def val_split(self) -> Split:
        return self.data.split("val")

    @property
    def eval_model(self) -> nn.Module:
        """The weights validated and saved: the moving average when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    def request_stop(self, reason: str) -> None:
        """End training after the current step (from ``on_step_end``) or epoch (from
        ``on_epoch_end``); ``reason`` is logged. A run stopped this way counts as finished."""
        if self.stop_reason is None:
            self.stop_reason = reason
