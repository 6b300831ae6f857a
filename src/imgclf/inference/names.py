"""The fixed sets of values of inference options, in a module that imports nothing heavy.

The CLI builds its choices (shell completion, ``--help``) from these, and the code that checks
a value checks it against the same tuple, so the two cannot drift apart.
"""

# The resize modes and channel counts belong to the data layer's preprocessing; re-exported here
# beside the other inference options.
from ..data.preprocess_options import CHANNEL_COUNTS, LEGACY_RESIZE_NAMES, RESIZE_MODES  # noqa: F401

TTA_MODES = ("none", "flip", "flip-translate")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
BENCH_BACKENDS = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")  # what `bench infer` times
EXPORT_FORMATS = ("onnx", "torchscript")
DEVICES = ("auto", "cpu", "cuda")
INTERPOLATIONS = ("bilinear", "bicubic")

# Input sizes a model may be trained or loaded at (TrainConfig's --img-size bounds): a 2048-px
# image is already 50 MB as float32; a model.json claiming 100000 made predict allocate tens of
# gigabytes before the kernel killed it (issue 11).
IMG_SIZE_MIN, IMG_SIZE_MAX = 8, 2048
