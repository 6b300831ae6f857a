"""Deployment: ONNX and TorchScript export with parity checks, int8 quantization, and inference
benchmarks. The backends that run the exported files live in :mod:`imgclf.inference`.

Every exported graph takes what :meth:`imgclf.data.preprocess.Preprocess.load` produces (uint8
NHWC pixels, already centre-cropped and resized) and returns logits: normalisation is inside the
graph (the inference layer's own function, traced), so the one preprocessing definition of
``model.json`` travels with the file and cannot drift apart from the PyTorch path.

Submodules are imported where used (onnx is heavy): ``graph`` (the exported module),
``metadata``, ``onnx_export``, ``torchscript``, ``quantize``, ``parity``, ``export`` (the
``imgclf export`` command) and ``bench_infer`` (``imgclf bench infer``: it times the backends
exactly as ``imgclf predict`` opens them, after export, so it sits here above predict).
"""
