"""Serving: the HTTP app and its pages, the feedback store (:mod:`imgclf.serve.store`) and the drift
monitor (:mod:`imgclf.serve.drift`).

Kept free of imports so that ``import imgclf.serve.store`` does not pull in the web framework.
"""
