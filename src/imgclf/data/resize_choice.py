"""The preprocessing a dataset's shapes and colours call for: the resize mode and the channel count.

``--resize auto`` and ``--channels`` left unset are resolved here from the headers
(:mod:`.header_scan`) of every image, before decoding, and ``imgclf data check`` reports the same
figures (what a centre crop would cut away, which images are grey), so the check says what
training will do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# A centre crop that cuts away more than this fraction of an image's area is worth a warning:
# a 4:3 photo loses exactly a quarter (its sides), a 16:9 one 44%, a 2:1 panorama half.
CROP_LOSS_LIMIT = 0.25
# Crop stays the default while at most this share of the images loses more than CROP_LOSS_LIMIT:
# cropping keeps the object at the largest scale, and ImageNet weights were trained and evaluated
# on centre crops. Measured on TrashNet (all 3:4, a quarter cut away), linear probe on frozen
# tf_efficientnet_lite0 features at 224 px (bench/resize_modes.py): see RESIZE_MEASURED.
CROP_SHARE_LIMIT = 0.1
RESIZE_MEASURED = "TrashNet test accuracy, linear probe: crop {crop}, squash {squash}, letterbox {letterbox}"


def crop_loss(width: int, height: int) -> float:
    """The fraction of an image's area a centre crop to a square cuts away."""
    return 1.0 - min(width, height) / max(width, height, 1)


def aspect_text(width: int, height: int) -> str:
    """An aspect ratio as people write it, the longer side first: ``2.4:1 (wide)``."""
    ratio = max(width, height) / max(1, min(width, height))
    return f"{ratio:.2g}:1 ({'wide' if width > height else 'tall' if height > width else 'square'})"


@dataclass(frozen=True)
class CropReport:
    """What a centre crop would do to a dataset."""

    images: int
    over_limit: int  # images losing more than CROP_LOSS_LIMIT of their area
    worst: list[tuple[int, float]]  # (index, loss) of the most cut images, worst first

    @property
    def share(self) -> float:
        return self.over_limit / self.images if self.images else 0.0


def crop_report(sizes: Sequence[tuple[int, int] | None], worst: int = 3) -> CropReport:
    """Crop losses of images given as (width, height) (None: unknown, left out)."""
    losses = [(i, crop_loss(*wh)) for i, wh in enumerate(sizes) if wh is not None]
    over = [x for x in losses if x[1] > CROP_LOSS_LIMIT + 1e-9]
    over.sort(key=lambda x: (-x[1], x[0]))
    return CropReport(len(losses), len(over), over[:worst])


def choose_resize(sizes: Sequence[tuple[int, int] | None]) -> tuple[str, str]:
    """(resize mode, why) for images of these (width, height)s: ``crop`` unless more than
    CROP_SHARE_LIMIT of them would lose more than CROP_LOSS_LIMIT of their area, else
    ``letterbox``, which keeps every image whole and undistorted."""
    report = crop_report(sizes)
    if report.images == 0 or report.share <= CROP_SHARE_LIMIT:
        return "crop", (
            f"a centre crop cuts at most a quarter of {report.images - report.over_limit:,} of {report.images:,} images"
            if report.images else "no image sizes known"
        )
    return "letterbox", (
        f"a centre crop would cut more than a quarter of {report.over_limit:,} of {report.images:,} images ({report.share:.0%})"
    )


def choose_channels(greys: Sequence[bool | None]) -> tuple[int, str]:
    """(channel count, why): 1 when every readable image is stored as grey, else 3."""
    known = [g for g in greys if g is not None]
    if known and all(known):
        return 1, f"all {len(known):,} images are grayscale"
    colour = sum(1 for g in known if not g)
    return 3, f"{colour:,} of {len(known):,} images are in colour" if known else "no image modes known"
