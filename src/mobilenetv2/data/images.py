"""Opening any image a user may hand us as 8-bit RGB, or failing with one clear message."""

import os
import warnings

import numpy as np
from PIL import Image, ImageOps

from mobilenetv2.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb limit (~0.25 GB of RGBA)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (or 32-bit integer) grayscale: scale its range down to 8 bits instead of clipping.
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")  # L, P, CMYK, YCbCr, 1 -> RGB


def open_image(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode `path` to RGB, applying EXIF orientation; UserError for unreadable or oversized files."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > max_pixels:
                    raise UserError(
                        f"{path}: {img.width}x{img.height} image exceeds the {max_pixels:,}-pixel limit "
                        "(possible decompression bomb); refused"
                    )
                img.seek(0)  # first frame of animated GIF/WebP
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img)
    except UserError:
        raise
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{path}: image is too large (possible decompression bomb); refused") from None
    except (OSError, ValueError, SyntaxError, Image.UnidentifiedImageError) as exc:
        raise UserError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None
