"""The runs registry: every run directory under a folder, its status and key numbers
(:mod:`.scan`), and several runs side by side with their curves (:mod:`.compare`).

It reads only what training already records: the run's marker and writer lock
(:mod:`imgclf.runs`), config.yaml, metrics.jsonl, ``checkpoints/last.json`` and
``eval/metrics.json``. Nothing here writes into a run.
"""
