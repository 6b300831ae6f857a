"""Feedback into retraining: `imgclf retrain RUN --feedback STORE --out NEW`.

The loop's last step. A served model collects corrections (:mod:`imgclf.serve.store`); this
package trains a new run on the old run's data plus those corrections, scores old and new on the
same test images and on the feedback, and decides whether the new one may replace the old one:

- :mod:`.feedback`  the feedback as an export folder (from a store, or an export made before)
- :mod:`.plan`      which images train the new run: the old split, corrections, held-out feedback
- :mod:`.score`     both models on the same images, and the promote / do-not-promote verdict
- :mod:`.promote`   moving a ``current`` link to the new run atomically
- :mod:`.retrain`   the command itself, top to bottom

It sits above training and evaluation and below the API; the service never imports it (it only
follows the ``current`` link this package moves).
"""
