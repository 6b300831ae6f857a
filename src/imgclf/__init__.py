"""imgclf: from a folder of labelled images to a trustworthy, explained, fast, served classifier.

The Python API mirrors the CLI::

    import imgclf
    run = imgclf.train("photos/", model="resnet18", epochs=10, out="runs/photos")
    metrics = imgclf.evaluate(run)
    predictions = imgclf.load(run).predict(["new.jpg"])
"""

from ._version import __version__
from .api import (
    check_data,
    evaluate,
    explain,
    export,
    label_issues,
    load,
    robustness,
    train,
)

__all__ = ["__version__", "check_data", "evaluate", "explain", "export", "label_issues", "load", "robustness", "train"]
