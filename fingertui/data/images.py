"""The one safe way fingertui decodes an image file: bounded memory, the right pixels.

* Only the formats fingertui supports are tried (a ``.jpg`` that is really EPS never
  reaches Ghostscript).
* The size in the header is checked before any pixel is decoded: above
  ``MAX_PIXELS`` the image is refused in one line, never a ``DecompressionBombError``.
* Large images come back downscaled to at most ``MAX_SIDE`` pixels a side (JPEGs are
  decoded at a reduced scale to begin with), so no command holds a full-size copy for
  long; the stored original file is never changed.
* 16-bit and 32-bit greyscale is scaled to 8 bits (not clipped to white), palette and
  transparent images are put on white, CMYK/YCbCr/LAB are converted, and the EXIF
  orientation is applied, so the model sees what the user saw.
"""

from __future__ import annotations

import datetime
import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fingertui.errors import UserError

# The photo files fingertui reads (importing, predicting a folder, the folder: source).
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}

# Formats tried when opening, and the extension a stored copy gets.
FORMATS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "BMP": "bmp", "WEBP": "webp", "GIF": "gif", "TIFF": "tif"}
# MPO (multi-picture JPEG from phones) is what the JPEG opener returns for such files.
OPEN_AS = [f for f in FORMATS if f != "MPO"]
# 150 megapixels: a 12000×12000 photo (144 MP) is accepted. The worst mode (32-bit
# greyscale or RGBA, 4 bytes a pixel) then decodes to 600 MB before it is reduced.
MAX_PIXELS = 150_000_000
# Longest side of the decoded array handed to the model (it resizes to 160–224 anyway).
MAX_SIDE = 1024
# Files above this are not read at all (the biggest camera JPEGs are ~30 MB).
MAX_FILE_BYTES = 256 * 1024 * 1024

# fingertui enforces MAX_PIXELS itself before decoding, so Pillow's own bomb check (a
# warning above 89 MP, an exception above 179 MP) is moved to the same limit.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.simplefilter("ignore", Image.DecompressionBombWarning)
Image.init()  # register every plugin once, so ``formats=`` can name MPO, WEBP, …

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class Decoded:
    rgb: np.ndarray  # (H, W, 3) uint8, upright, at most MAX_SIDE a side
    format: str  # Pillow's format name, e.g. "PNG"
    ext: str  # extension for a stored copy, e.g. "png"
    width: int  # the original's size, upright (as a viewer shows it)
    height: int
    taken: float | None = None  # when the camera took it (EXIF), seconds; None if unknown


def _name(src: str | os.PathLike[str] | bytes) -> str:
    return "image data" if isinstance(src, bytes | bytearray) else str(src)


def decode(src: str | os.PathLike[str] | bytes, max_side: int = MAX_SIDE, *, taken: bool = False) -> Decoded:
    """Decode a file (or its bytes) to an upright RGB uint8 array; raises UserError.
    ``taken``: also read the capture time from EXIF (import needs it; training does not)."""
    name = _name(src)
    if not isinstance(src, bytes | bytearray):
        path = Path(src)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise UserError(f"{name}: image file is missing; run `fingertui doctor`") from None
        except OSError as e:
            raise UserError(f"{name}: cannot read ({e.strerror or e})") from e
        if size > MAX_FILE_BYTES:
            raise UserError(f"{name}: file is {size / 2**20:.0f} MB, over the {MAX_FILE_BYTES // 2**20} MB limit")
    try:
        fp = io.BytesIO(src) if isinstance(src, bytes | bytearray) else src
        with Image.open(fp, formats=OPEN_AS) as img:
            return _decode_open(img, name, max_side, taken)
    except UserError:
        raise
    except Image.DecompressionBombError as e:
        raise UserError(f"{name}: image is larger than {MAX_PIXELS // 1_000_000} megapixels; downscale it first") from e
    except UnidentifiedImageError:
        raise UserError(f"{name}: not a supported image ({', '.join(OPEN_AS)})") from None
    except FileNotFoundError:
        raise UserError(f"{name}: image file is missing; run `fingertui doctor`") from None
    except MemoryError as e:
        raise UserError(f"{name}: not enough memory to decode this image") from e
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, IndexError, KeyError) as e:
        # Truncated or corrupt data: Pillow's decoders raise any of these.
        raise UserError(f"{name}: unreadable image ({str(e) or type(e).__name__})") from e


def open_rgb(src: str | os.PathLike[str] | bytes, max_side: int = MAX_SIDE) -> np.ndarray:
    """An image file (or its bytes) as an upright (H, W, 3) uint8 RGB array, at most
    ``max_side`` pixels a side; raises UserError for anything it cannot decode safely."""
    return decode(src, max_side).rgb


def _decode_open(img: Image.Image, name: str, max_side: int, want_taken: bool) -> Decoded:
    w, h = img.size
    if w <= 0 or h <= 0:
        raise UserError(f"{name}: image has no pixels ({w}×{h})")
    if w * h > MAX_PIXELS:
        raise UserError(
            f"{name}: image is {w}×{h} ({w * h / 1e6:.0f} megapixels), over fingertui's limit of "
            f"{MAX_PIXELS // 1_000_000}; downscale it first"
        )
    fmt = img.format or ""
    try:
        exif = img.getexif()
        orientation = int(exif.get(0x0112, 1))
    except Exception:  # a broken EXIF block must not make the picture unreadable
        exif, orientation = None, 1
    taken = _taken(exif) if want_taken else None
    if fmt in ("JPEG", "MPO"):
        # Decode at 1/2, 1/4 or 1/8 scale straight away when that still covers max_side.
        img.draft("RGB" if img.mode in ("RGB", "YCbCr") else None, (max_side, max_side))
    img.load()
    img = _to_8bit(img)
    longest = max(img.size)
    if longest > max_side:
        img = img.reduce(math.ceil(longest / max_side))
    img = _to_rgb(img)
    if orientation in _TRANSPOSE:
        img = img.transpose(_TRANSPOSE[orientation])
        if orientation >= 5:
            w, h = h, w
    arr = np.array(img, dtype=np.uint8)  # a writable copy (torch warns about read-only arrays)
    if arr.ndim != 3 or arr.shape[2] != 3:  # pragma: no cover - _to_rgb guarantees it
        raise UserError(f"{name}: could not convert image mode {img.mode} to RGB")
    return Decoded(arr, fmt, FORMATS.get(fmt, "png"), w, h, taken)


def _taken(exif: Image.Exif | None) -> float | None:
    """The camera's capture time as seconds on the camera's own clock, or None: the main
    IFD's DateTime (already parsed, and cameras write the shot's time there), else the Exif
    sub-IFD's DateTimeOriginal + SubSecTimeOriginal (parsing that sub-IFD is slow, so only
    when needed). A file's mtime is no use: copying resets it."""
    if exif is None:
        return None
    try:
        stamp, frac = exif.get(0x0132), ""
        if not stamp and 0x8769 in exif:
            sub = exif.get_ifd(0x8769)
            stamp, frac = sub.get(0x9003), str(sub.get(0x9291) or "").strip("\x00 ")
        if not stamp:
            return None
        t = datetime.datetime.strptime(str(stamp).strip("\x00 "), "%Y:%m:%d %H:%M:%S")
        return t.replace(tzinfo=datetime.UTC).timestamp() + (float("0." + frac) if frac.isdigit() else 0.0)
    except Exception:  # a broken or odd EXIF block only means "time unknown"
        return None


def _to_8bit(img: Image.Image) -> Image.Image:
    """High-bit-depth greyscale (I;16*, I, F) to 8-bit L by scaling, not clipping."""
    if img.mode.startswith("I;16"):
        a = np.asarray(img).astype(np.uint16, copy=False)
        return Image.fromarray((a >> 8).astype(np.uint8), "L")
    if img.mode == "I":
        ints = np.asarray(img)
        top = int(ints.max()) if ints.size else 0
        # PNG and TIFF hand 16-bit data over as I; true 8-bit data in I stays as it is.
        ints = np.clip(ints, 0, 65535) >> 8 if top > 255 else np.clip(ints, 0, 255)
        return Image.fromarray(ints.astype(np.uint8), "L")
    if img.mode == "F":
        floats = np.nan_to_num(np.asarray(img, dtype=np.float32))
        peak = float(floats.max()) if floats.size else 0.0
        floats = floats * 255.0 if peak <= 1.0 else floats * (255.0 / peak) if peak > 255 else floats
        return Image.fromarray(np.clip(floats, 0, 255).astype(np.uint8), "L")
    if img.mode == "1":
        return img.convert("L")
    if img.mode in ("P", "PA"):
        has_alpha = img.mode == "PA" or "transparency" in img.info
        return img.convert("RGBA" if has_alpha else "RGB")
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    if img.mode != "RGB":
        return img.convert("RGB")
    return img
