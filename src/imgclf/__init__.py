"""imgclf: from a folder of labelled images to a trustworthy, explained, fast, served classifier.

The Python API mirrors the CLI (`imgclf --help`); every function returns what the command prints::

    >>> import imgclf
    >>> result = imgclf.train("builtin:digits", out="runs/digits", epochs=1)
    >>> result                                       # doctest: +ELLIPSIS
    TrainResult(run_dir=PosixPath('runs/digits'), epochs=1, ...)
    >>> report = imgclf.evaluate(result)             # also RUN/eval/report.html, RUN/model_card.md
    >>> 0.0 <= report.metrics["accuracy"] <= 1.0
    True
    >>> predictor = imgclf.load(result)              # a run directory, bundle or .onnx file
    >>> prediction = predictor.predict("digit.png")  # one input: one Prediction
    >>> prediction.label in predictor.classes, prediction.unsure in (True, False, None)
    (True, True)
    >>> len(predictor.predict(["digit.png", "digit.png"]))   # a list: a list of Predictions
    2

`imgclf.train` takes every option of `imgclf train` as a keyword argument (see
``help(imgclf.train)``); a ``config.yaml`` path or a :class:`~imgclf.train.config.TrainConfig`
can be given as ``config=``. A person's mistake raises :class:`imgclf.errors.UserError`.

Importing imgclf is cheap: PyTorch and friends load when a function first needs them.
"""

# The subpackages named like API functions (train, evaluate, export) are imported FIRST,
# and the functions bound after them: importing a subpackage for the first time sets it as an
# attribute of this package, which would otherwise replace the function of the same name.
# Once imported, later `import imgclf.train.x` leaves `imgclf.train` (the function) alone.
from . import evaluate as _evaluate_pkg  # noqa: F401
from . import export as _export_pkg  # noqa: F401
from . import retrain as _retrain_pkg  # noqa: F401
from . import train as _train_pkg  # noqa: F401
from . import tune as _tune_pkg  # noqa: F401
from ._version import __version__
from .api import (
    bench_infer,
    bench_train,
    check_data,
    clear_cache,
    evaluate,
    explain,
    export,
    label_issues,
    load,
    list_models,
    lr_find,
    predict_images,
    robustness,
    train,
)
from .api_retrain import retrain
from .api_tune import compare_runs, list_runs, tune

__all__ = [
    "__version__", "bench_infer", "bench_train", "check_data", "clear_cache", "evaluate", "explain", "export",
    "label_issues", "list_models", "load", "lr_find", "predict_images", "retrain", "robustness", "train",
    "tune", "list_runs", "compare_runs",
]  # fmt: skip
