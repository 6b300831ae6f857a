from .factory import create_model, default_img_size, is_known
