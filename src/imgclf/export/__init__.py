"""Deployment: ONNX and TorchScript export with parity checks, int8 quantization, the ONNX
runtime backend of :mod:`imgclf.predict`, and inference benchmarks.

Every exported graph takes what :meth:`imgclf.data.preprocess.Preprocess.load` produces (uint8
NHWC pixels, already centre-cropped and resized) and returns logits: normalisation is inside the
graph, so the one preprocessing definition of ``model.json`` travels with the file and cannot
drift apart from the PyTorch path.

Submodules are imported where used (onnxruntime is heavy): ``graph`` (the exported module),
``metadata``, ``onnx_export``, ``torchscript``, ``quantize``, ``runtime`` (onnxruntime sessions),
``parity``, ``export`` (the ``imgclf export`` command) and ``bench_infer``.
"""
