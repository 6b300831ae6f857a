"""The one path from pixels to logits, below train, evaluate, predict and export.

Everything that turns pixels into logits (validation during training, evaluate, robustness,
explain, predict, export's parity check, ``bench infer``) goes through this package:

- ``normalize``: uint8 NHWC -> normalised NCHW (the exported graph traces this same function);
- ``tta``: the test-time augmentation views and weights, over any pixels-to-logits callable;
- ``precision``: a precision name -> autocast, honoured or refused (never silently fp32);
- ``backends`` / ``onnx_backend``: PyTorch and onnxruntime (fp32, int8) behind one interface;
- ``forward``: a backend (or a PyTorch model) over batches, with TTA;
- ``bundle`` (+ ``bundle_checks``, ``bundle_weights``): model.json as a checked ``ModelMeta``;
- ``export_record``: which exported file may run (a passed check for the current weights);
- ``loading``: a run, bundle or .onnx file -> (backend, metadata);
- ``names``: the fixed option values, importable without torch.

Submodules are imported where used, so importing the package costs nothing.
"""
