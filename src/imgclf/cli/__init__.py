"""The `imgclf` command line: parses arguments, calls :mod:`imgclf.api`, hands the result to
:mod:`.render`. No logic of its own.

One module per command group (``train``: train and lr-find; ``evaluate``: evaluate, robustness,
explain; ``predict``; ``export``; ``data``; ``models``; ``bench``; ``cache``), ``options`` for
what they share, ``render`` for all terminal output and ``app`` for the group and ``main``.
"""

from .app import cli, main

__all__ = ["cli", "main"]
