"""The fixed sets of values of inference options, in a module that imports nothing heavy.

The CLI builds its choices (shell completion, ``--help``) from these, and the code that checks
a value checks it against the same tuple, so the two cannot drift apart.
"""

TTA_MODES = ("none", "flip", "flip-translate")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
DEVICES = ("auto", "cpu", "cuda")
INTERPOLATIONS = ("bilinear", "bicubic")
