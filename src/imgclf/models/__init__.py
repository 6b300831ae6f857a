"""Model factory, compact nets, bundles and pretrained weights."""

from .factory import create_model, default_img_size, is_known

__all__ = ["create_model", "default_img_size", "is_known"]
