"""Hyper-parameter search with Optuna (`imgclf tune`).

:mod:`.space` the search space and its YAML file, :mod:`.storage` where a study lives (SQLite,
PostgreSQL) and its sampler and pruner, :mod:`.pruning` the training callback that reports each
epoch to the trial, :mod:`.study` the trials and the worker processes, :mod:`.report` the table,
``best.yaml`` and ``trials.csv``, :mod:`.plots` Optuna's figures.

Nothing heavy is imported here: ``import imgclf`` imports this package.
"""
