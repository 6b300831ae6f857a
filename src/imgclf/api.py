"""The Python API: the same operations as the CLI, returning results instead of printing them.

Every function imports what it needs when called (PyTorch, timm, scikit-learn load then, not at
``import imgclf``), so the CLI's ``--help`` and its refusals of a mistyped option stay fast and
a module being reorganised elsewhere cannot break them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from .api_predict import PredictResult, predict_images  # noqa: F401 (part of the API, kept in its own file)
from .errors import UserError
from .train.config import TrainConfig, option_help, resolve

if TYPE_CHECKING:
    from .evaluate.evaluate import EvalResult
    from .export.export import ExportResult
    from .predict import Predictor
    from .train.callbacks import Callback
    from .train.fit import TrainResult
    from .train.lr_find import LRFindResult

_RESUME_OPTIONS = {"epochs", "device", "checkpoint_every", "cache_dir", "log", "log_dir", "tracking_uri", "nproc"}


class Default:
    """A keyword argument left out: it shows TrainConfig's default in ``help()`` and signatures, and
    lets a preset fill it in (an option given explicitly, even with the default value, wins)."""

    __slots__ = ("name", "value")

    def __init__(self, name: str, value):
        self.name, self.value = name, value

    def __repr__(self) -> str:
        return repr(self.value)


class _Defaults:
    def __init__(self):
        for f in fields(TrainConfig):
            setattr(self, f.name, Default(f.name, f.default))


_DEFAULT = _Defaults()
_TRAIN_OPTIONS = tuple(f.name for f in fields(TrainConfig))


# The keyword arguments are spelled out (not **options) so that tab completion and
# inspect.signature() show every option; tests/test_api.py checks they equal TrainConfig's fields.
def train(
    data: str | os.PathLike | None = None,
    *,
    out: str | os.PathLike = _DEFAULT.out,
    preset: str | None = _DEFAULT.preset,
    model: str = _DEFAULT.model,
    epochs: int = _DEFAULT.epochs,
    time: str | float | None = _DEFAULT.time,
    img_size: int | None = _DEFAULT.img_size,
    resize: str = _DEFAULT.resize,
    channels: int | None = _DEFAULT.channels,
    batch_size: int = _DEFAULT.batch_size,
    pretrained: str | None = _DEFAULT.pretrained,
    freeze: str = _DEFAULT.freeze,
    freeze_epochs: int = _DEFAULT.freeze_epochs,
    cache_features: bool = _DEFAULT.cache_features,
    feature_views: int = _DEFAULT.feature_views,
    layer_decay: float = _DEFAULT.layer_decay,
    optimizer: str = _DEFAULT.optimizer,
    lr: float | str = _DEFAULT.lr,
    momentum: float = _DEFAULT.momentum,
    nesterov: bool = _DEFAULT.nesterov,
    weight_decay: float = _DEFAULT.weight_decay,
    decay_norm_and_bias: bool = _DEFAULT.decay_norm_and_bias,
    bias_lr_scale: float = _DEFAULT.bias_lr_scale,
    schedule: str = _DEFAULT.schedule,
    warmup_epochs: float = _DEFAULT.warmup_epochs,
    lr_start_factor: float = _DEFAULT.lr_start_factor,
    lr_end_factor: float = _DEFAULT.lr_end_factor,
    weight_averaging: str = _DEFAULT.weight_averaging,
    ema_decay: float = _DEFAULT.ema_decay,
    dropout: float | None = _DEFAULT.dropout,
    drop_path: float = _DEFAULT.drop_path,
    loss: str = _DEFAULT.loss,
    focal_gamma: float = _DEFAULT.focal_gamma,
    class_weights: str = _DEFAULT.class_weights,
    sampler: str = _DEFAULT.sampler,
    label_smoothing: float = _DEFAULT.label_smoothing,
    flip: bool = _DEFAULT.flip,
    alternating_flip: bool = _DEFAULT.alternating_flip,
    crop_padding: float = _DEFAULT.crop_padding,
    random_resized_crop: float = _DEFAULT.random_resized_crop,
    rotation: float = _DEFAULT.rotation,
    perspective: float = _DEFAULT.perspective,
    color_jitter: float = _DEFAULT.color_jitter,
    noise: float = _DEFAULT.noise,
    erasing: float = _DEFAULT.erasing,
    auto_augment: str = _DEFAULT.auto_augment,
    mixup: float = _DEFAULT.mixup,
    cutmix: float = _DEFAULT.cutmix,
    early_stopping: int = _DEFAULT.early_stopping,
    monitor: str = _DEFAULT.monitor,
    tta: str = _DEFAULT.tta,
    val_fraction: float = _DEFAULT.val_fraction,
    test_fraction: float = _DEFAULT.test_fraction,
    group_column: str | None = _DEFAULT.group_column,
    group_duplicates: bool = _DEFAULT.group_duplicates,
    allow_leakage: bool = _DEFAULT.allow_leakage,
    splits: str | None = _DEFAULT.splits,
    seed: int = _DEFAULT.seed,
    precision: str = _DEFAULT.precision,
    checkpoint_every: int = _DEFAULT.checkpoint_every,
    compile: bool = _DEFAULT.compile,
    device: str = _DEFAULT.device,
    nproc: int = _DEFAULT.nproc,
    cache_dir: str | None = _DEFAULT.cache_dir,
    log: list[str] | str | None = _DEFAULT.log,
    log_dir: str | None = _DEFAULT.log_dir,
    tracking_uri: str | None = _DEFAULT.tracking_uri,
    config: TrainConfig | str | os.PathLike | None = None,
    overwrite: bool = False,
    resume: str | os.PathLike | None = None,
    callbacks: list[Callback] | tuple[Callback, ...] = (),
) -> TrainResult:
    """Train a classifier on ``data`` and write a run directory (``out=`` is required); returns a
    :class:`~imgclf.train.fit.TrainResult` (``.run_dir``, ``.best_val_accuracy``, ``.config``, ...).

    The keyword arguments are `imgclf train`'s options (listed below). ``config`` is a
    TrainConfig or the path of a ``config.yaml``; options given here override it, and a preset
    fills in only what neither sets. Values are checked against the options' types (a
    :class:`~imgclf.errors.UserError` names the first wrong one).

    ``resume=RUN`` continues an interrupted run from its last checkpoint; on a finished run,
    ``epochs=N`` trains N more epochs (a new learning-rate cycle). ``callbacks``
    (:class:`~imgclf.train.callbacks.Callback`) plug into training after imgclf's own.
    """
    given = {k: v for k, v in locals().items() if k in _TRAIN_OPTIONS and k != "data" and not isinstance(v, Default)}
    if data is not None:
        given["data"] = data
    if resume is not None:
        return _resume(Path(resume), given, callbacks)
    cfg = resolve(config, **given)  # a wrong option fails here, before PyTorch loads
    from .launch import needs_launch

    if needs_launch(cfg.nproc):  # nproc > 1: start the processes (imgclf.launch) instead of training here
        from .train.distributed_launch import launch_training

        return launch_training(cfg.validate(), overwrite=overwrite, callbacks=callbacks)
    from .train.fit import fit

    return fit(cfg, overwrite=overwrite, **({"callbacks": list(callbacks)} if callbacks else {}))


train.__doc__ += "\n    Options:\n\n" + "\n".join(
    f"    ``{f.name}`` (default {f.default!r}): {option_help(f)}" for f in TrainConfig.options()
)


def _resume(run: Path, options: dict, callbacks=()) -> TrainResult:
    from .train.fit import fit

    if not (run / "config.yaml").exists():
        raise UserError(f"{run} is not a run directory that can be resumed (no config.yaml)")
    data = options.pop("data", None)
    changed = sorted(set(options) - _RESUME_OPTIONS - {"out"})
    if changed:
        raise UserError(f"cannot change {', '.join('--' + c.replace('_', '-') for c in changed)} when resuming; start a new run instead")
    cfg = TrainConfig.from_yaml(run / "config.yaml")
    if data is not None and os.fspath(data) != cfg.data:
        raise UserError(f"{run} was trained on {cfg.data}, not {data}; resume it without DATA")
    cfg.out = str(run)
    resumed = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in options.items() if k != "out"}
    TrainConfig.check_types(resumed)
    extend = resumed.pop("epochs", None)
    for key, value in resumed.items():
        setattr(cfg, key, value)
    from .launch import needs_launch

    if needs_launch(cfg.nproc):
        from .train.distributed_launch import launch_resume

        return launch_resume(run, {**resumed, **({"epochs": extend} if extend else {})}, cfg.validate().nproc, callbacks=callbacks)
    return fit(cfg, resume=True, extend_epochs=extend, callbacks=list(callbacks))


def lr_find(
    data: str | os.PathLike,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    plot: str | os.PathLike | None = "lr_find.png",
    config: TrainConfig | str | os.PathLike | None = None,
    **options,
) -> LRFindResult:
    """The learning-rate range test (`imgclf lr-find`): ``.suggestion`` is a learning rate for
    :func:`train` with the same options (``options``: TrainConfig's fields, ``lr`` aside; a
    preset applies as in training), ``.plot`` the saved loss-against-lr figure."""
    from .train.lr_find import lr_find as _lr_find

    options.pop("lr", None)
    cfg = resolve(config, data=data, out="-", **options).validate()  # out: a range test writes no run
    return _lr_find(cfg, start_lr=start_lr, end_lr=end_lr, steps=steps, plot=plot)


def evaluate(run: str | os.PathLike | TrainResult, **options) -> EvalResult:
    """Evaluate a run on its test split: metrics, calibration (stored in ``model.json``),
    selective prediction, optional TTA and subgroup results, robustness, Grad-CAM and label
    issues; writes ``RUN/eval/`` (``report.html`` included) and ``RUN/model_card.md``.

    Options (``data``, ``split``, ``tta``, ``target_accuracy``, ``group_by``, ``tolerance``,
    ``robustness``, ``robustness_limit``, ``explain``, ``label_issues``, ``precision``) are those
    of :func:`imgclf.evaluate.evaluate.evaluate`, the same as `imgclf evaluate`'s flags.
    """
    from .evaluate.evaluate import evaluate as _evaluate

    return _evaluate(_run_path(run), **options)


def load(
    path: str | os.PathLike | TrainResult, device: str = "auto", precision: str = "auto", backend: str = "auto"
) -> Predictor:
    """A :class:`~imgclf.predict.Predictor` for a run directory, model bundle or exported ``.onnx``
    file: ``load(run).predict("x.jpg")`` gives one Prediction, ``predict([...])`` a list.

    ``backend``: ``torch``, ``onnx``, ``onnx-int8`` or ``auto`` (the run's ONNX export on a CPU
    when it was exported from the current weights, else PyTorch).
    """
    from .predict import load as _load

    return _load(_run_path(path), device=device, precision=precision, backend=backend)


def export(run: str | os.PathLike | TrainResult, **options) -> ExportResult:
    """Export a run's model to ``RUN/export/`` (``model.onnx`` [+ ``model.int8.onnx``] or
    ``model.torchscript.pt``) and check it against PyTorch.

    Options (``format``, ``int8``, ``opset``, ``allow_drop``, ``data``, ``split``, ``limit``) are
    those of :func:`imgclf.export.export.export`, the same as `imgclf export`'s flags. Returns an
    :class:`~imgclf.export.export.ExportResult`; raises
    :class:`~imgclf.export.export.ExportCheckFailed` (a UserError whose ``.result`` is the
    ExportResult) when the parity or int8 accuracy check fails, after writing ``parity.json``.
    """
    from .export.export import export as _export

    return _export(_run_path(run), **options)


def check_data(data: str | os.PathLike, **options) -> dict:
    """The dataset health report of `imgclf data check`, as a dict."""
    from .data.audit import check_data as _check

    return _check(data, **options)


def robustness(run: str | os.PathLike | TrainResult, **options) -> dict:
    """Accuracy under corruptions (low light, contrast, noise, blur, JPEG, grayscale, crop/zoom,
    rotation, occlusion) at each severity, and the mean relative drop against clean accuracy;
    writes ``RUN/eval/robustness.{json,csv,png}``. Options (``data``, ``split``, ``severities``,
    ``limit``, ``seed``, ``tta``): :func:`imgclf.evaluate.robustness.robustness`."""
    from .evaluate.robustness import robustness as _robustness

    return _robustness(_run_path(run), **options)


def explain(run: str | os.PathLike | TrainResult, images: list[str], **options) -> list[dict]:
    """Grad-CAM overlays (PNG) for ``images`` (files, folders, glob patterns), for the predicted
    class or ``class_name``; one dict per image with its prediction and overlay path. Options
    (``class_name``, ``out_dir``): :func:`imgclf.evaluate.explain.explain`."""
    from .evaluate.explain import explain as _explain

    return _explain(_run_path(run), list(images), **options)


def label_issues(run: str | os.PathLike | TrainResult, **options) -> list[dict]:
    """Training images whose label cross-validated, out-of-sample predictions contradict with
    high confidence (confident learning, via cleanlab), most suspicious first; writes
    ``RUN/eval/label_issues.csv``. Trains ``folds`` models with the run's configuration.
    Options (``folds``, ``epochs``, ``data``): :func:`imgclf.evaluate.label_issues.find_label_issues`."""
    from .evaluate.label_issues import find_label_issues

    return find_label_issues(_run_path(run), **options)


def bench_train(data: str | os.PathLike, **options) -> dict:
    """`imgclf bench train`: images per second of the input pipeline and of training, FLOPs per
    image, achieved FLOP/s and the fraction of the device's matrix-product peak, with the machine
    and versions. Options (``model``, ``img_size``, ``batch_size``, ``steps``, ``precision``,
    ``device``, ...): :func:`imgclf.train.bench.bench_train`."""
    from .train.bench import bench_train as _bench_train

    return _bench_train(data, **options)


def bench_infer(run: str | os.PathLike | TrainResult, **options) -> dict:
    """`imgclf bench infer`: prediction speed of a run per backend (latency percentiles at batch
    1, throughput, end-to-end latency from image bytes). Options (``backends``, ``runs``,
    ``batch``, ``batch_runs``, ...): :func:`imgclf.export.bench_infer.bench_infer`."""
    from .export.bench_infer import bench_infer as _bench_infer

    return _bench_infer(_run_path(run), **options)


@dataclass
class ModelList:
    """`imgclf models`: one dict per architecture (name, source, params, gflops, ...), and how many
    models timm offers in all (``rows`` holds at most ``limit``)."""

    rows: list[dict] = field(default_factory=list)
    timm_total: int = 0


def list_models(filter_text: str | None = None, **options) -> ModelList:
    """Architectures `imgclf train --model` accepts: imgclf's compact nets and timm's zoo, with
    parameters and FLOPs. Options (``img_size``, ``limit``): :func:`imgclf.models.factory.list_models`."""
    import timm

    from .models.factory import list_models as _list

    return ModelList(_list(filter_text, **options), len(timm.list_models()))


def clear_cache(cache_dir: str | os.PathLike | None = None) -> tuple[Path, int]:
    """Delete the decoded-image cache (default: $IMGCLF_CACHE_DIR or ~/.cache/imgclf); returns
    (the folder, bytes freed). The next run decodes its images again."""
    from .data.cache import clear_cache as _clear

    return _clear(cache_dir)


def _run_path(run) -> Path:
    """A run given as a path or as the TrainResult that :func:`train` returned."""
    run_dir = getattr(run, "run_dir", None)
    return Path(run_dir) if run_dir is not None else Path(run)


def serve(run: str | os.PathLike | TrainResult, **options) -> None:
    """`imgclf serve`: the model of ``run`` over HTTP (predict, explain, feedback, review, drift,
    metrics, web pages) until interrupted. ``run`` may be a `current` link to the promoted run:
    the service follows it. Options: :func:`imgclf.serve.server.serve` (host, port, backend,
    workers, store, api_key, api_key_file, protect_predict, ...)."""
    from .serve.server import serve as _serve

    run_dir = getattr(run, "run_dir", None)
    _serve(run_dir if run_dir is not None else run, **options)


def export_feedback(store: str | os.PathLike, out: str | os.PathLike):
    """`imgclf feedback export`: flagged and reviewed images of a feedback ``store`` (a folder or a
    ``postgresql://`` URL) written under ``out`` as a manifest `imgclf train` reads; returns the
    :class:`~imgclf.serve.store.ExportSummary`."""
    from .serve.store import export_feedback as _export
    from .serve.store import is_postgres_url, open_store

    if not is_postgres_url(store) and not (Path(store).expanduser() / "feedback.sqlite").is_file():
        raise UserError(
            f"{store} is not a feedback store (no feedback.sqlite); give the folder `imgclf serve --store` used (default RUN/feedback)"
        )
    with open_store(store) as opened:
        return _export(opened, out)


def monitor(url: str, *, timeout: float = 10.0, api_key: str | None = None) -> dict:
    """`imgclf monitor`: a running service's drift report (``URL/v1/drift``) and what it serves."""
    from .serve.monitor import monitor as _monitor

    return _monitor(url, timeout=timeout, api_key=api_key)
