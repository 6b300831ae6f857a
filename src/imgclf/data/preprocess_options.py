"""The fixed values of the preprocessing options, in a module that imports nothing.

:mod:`imgclf.data.preprocess` checks against these tuples and the CLI builds its choices from
them (through :mod:`imgclf.inference.names`), so the two cannot drift apart; `imgclf --help`
imports this without loading numpy or Pillow.
"""

# How a non-square image becomes a square input: crop the centred square (what imgclf always
# did), squash the whole image to a square, or letterbox it (fit it inside the square, keeping
# its aspect ratio, and pad with the mean colour).
RESIZE_MODES = ("crop", "squash", "letterbox")
LEGACY_RESIZE_NAMES = {"center-crop": "crop"}  # model.json's name for crop before there was a choice
CHANNEL_COUNTS = (1, 3)  # grayscale or RGB models
