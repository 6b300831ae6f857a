"""The one path from pixels to logits, below train, evaluate, predict and export.

``normalize`` (uint8 NHWC -> normalised NCHW), test-time augmentation, the precision a forward
pass runs in, and batched forward passes live here once; everything that turns pixels into
logits (validation during training, evaluate, robustness, explain, predict, export's parity
check, ``bench infer``) goes through this package.

Submodules are imported where used, so importing the package costs nothing.
"""
