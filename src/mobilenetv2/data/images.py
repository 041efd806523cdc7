"""Opening any image a user may hand us as 8-bit RGB, or failing with one clear message."""

import errno
import fnmatch
import os
import stat
import warnings
from collections.abc import Iterator

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


def file_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read as an image file without risk of blocking: None for a regular file (or a
    symlink to one); else a dangling symlink, a symlink loop, a folder, a FIFO, socket or device."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "dangling symlink" if os.path.islink(path) else "no such file"
    except OSError as exc:  # ELOOP for a symlink loop, EACCES, ...
        return "symlink loop" if exc.errno == errno.ELOOP else (exc.strerror or str(exc)).lower()
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device or special file"
    return f"not a regular file ({kind}); refused"


def walk_files(root: str | os.PathLike, pattern: str | None = None) -> Iterator[tuple[str, str | None]]:
    """Every entry under folder `root`, recursively (following directory symlinks, each real folder once), in
    sorted order, as (path, problem): problem is None for a regular file, else what `file_problem` says; a
    symlink back into a folder already walked yields (path, "symlink loop") and is not entered.
    `pattern`: keep only paths (relative to `root`) matching this fnmatch pattern."""
    seen: set[tuple[int, int]] = set()

    def walk(folder: str) -> Iterator[tuple[str, str | None]]:
        try:
            st = os.stat(folder)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            yield folder, (exc.strerror or str(exc)).lower()
            return
        seen.add((st.st_dev, st.st_ino))
        for entry in entries:
            problem = file_problem(entry.path)
            if problem == "a folder":
                st = os.stat(entry.path)
                if (st.st_dev, st.st_ino) in seen:
                    yield entry.path, "symlink loop (a folder already searched); not followed"
                else:
                    yield from walk(entry.path)
            elif pattern is None or fnmatch.fnmatch(os.path.relpath(entry.path, root), pattern):
                yield entry.path, problem

    yield from walk(str(root))


def check_max_pixels(max_pixels: int, flag: str = "--max-pixels") -> int:
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise UserError(f"{flag} must be a positive number of pixels, got {max_pixels!r}")
    return max_pixels


def open_image(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode `path` to RGB, applying EXIF orientation; UserError for unreadable or oversized files, and for
    anything but a regular file (a FIFO would block the read forever)."""
    problem = file_problem(path)
    if problem == "no such file":
        raise FileNotFoundError(f"no such file: {path}")
    if problem is not None:
        raise UserError(f"{path}: {problem}")
    bomb_limit = Image.MAX_IMAGE_PIXELS
    try:
        # PIL's own limit would refuse what a raised --max-pixels allows; ours is checked below instead.
        Image.MAX_IMAGE_PIXELS = max(max_pixels, bomb_limit or 0)
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
    finally:
        Image.MAX_IMAGE_PIXELS = bomb_limit
