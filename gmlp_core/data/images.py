"""Images: the bundled 8x8 digits, and turning any user image into a model's ``pixel_values``.

Convention: float pixels in [0, 1], shape (B, C, H, W); digits are white strokes on black
(scikit-learn's values 0..16 divided by 16). Untrusted images are checked by pixel count from the
header *before* decoding, so a decompression bomb is refused without allocating it.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from gmlp_core.models.config import ModelConfig

MAX_PIXELS = 25_000_000  # 25 megapixels (e.g. 5000 x 5000) is the most any upload may decode to
MAX_BYTES = 50 * 1024 * 1024


class BadImage(ValueError):
    """An image that cannot be used; the message says why."""


class ImageTooLarge(BadImage):
    """An image whose pixel count exceeds ``MAX_PIXELS`` (checked before decoding)."""


def load_image(source: bytes | str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open and decode an untrusted image from bytes or a path, refusing oversized or broken files."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise BadImage(f"{path}: no such image file")
        source = path.read_bytes()
    if not isinstance(source, (bytes, bytearray)) or not source:
        raise BadImage("the file is empty")
    if len(source) > MAX_BYTES:
        raise ImageTooLarge(f"the file is {len(source) / 2**20:.0f} MB; the limit is {MAX_BYTES // 2**20} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(source))  # reads the header only
            w, h = img.size
            if w * h > max_pixels:
                raise ImageTooLarge(
                    f"the image is {w} x {h} = {w * h / 1e6:.1f} megapixels; the limit is {max_pixels / 1e6:.0f} "
                    "megapixels: resize it first"
                )
            img.load()
    except ImageTooLarge:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageTooLarge(f"refused as a possible decompression bomb: {err}") from err
    except UnidentifiedImageError as err:
        raise BadImage("not an image PIL can read (try PNG or JPEG)") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise BadImage(f"the image is truncated or corrupt ({err})") from err
    return img


def to_pixel_values(image: Image.Image | np.ndarray, config: ModelConfig) -> torch.Tensor:
    """Convert any image to ``(1, C, H, W)`` floats in [0, 1] for ``config`` (a vision ModelConfig).

    Grayscale for one channel (light backgrounds are inverted so strokes are bright, like the
    digits), RGB for three; padded to a square, then resized to ``image_size``.
    """
    if isinstance(image, np.ndarray):
        arr = np.asarray(image, dtype=np.float64)
        if arr.ndim not in (2, 3) or arr.size == 0 or not np.isfinite(arr).all():
            raise BadImage(f"expected a finite 2D or 3D array, got shape {arr.shape}")
        if arr.max() > 1.0:
            arr = arr / (16.0 if arr.max() <= 16 and arr.ndim == 2 else 255.0)
        image = Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8))
    if not isinstance(image, Image.Image):
        raise BadImage(f"expected a PIL image or a numpy array, got {type(image).__name__}")
    if image.width * image.height > MAX_PIXELS:
        raise ImageTooLarge(f"the image is {image.width} x {image.height}; the limit is {MAX_PIXELS / 1e6:.0f} MP")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Flatten transparency onto white, as an image viewer shows it.
        bg = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(bg, image.convert("RGBA"))
    mode = "L" if config.in_channels == 1 else "RGB"
    img = image.convert(mode)
    if mode == "L":
        arr = np.asarray(img, dtype=np.float32)
        if arr.size and np.median(arr) > 127:  # dark strokes on a light background: invert
            img = ImageOps.invert(img)
    side = max(img.size)
    square = Image.new(mode, (side, side), 0)
    square.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    small = square.resize((config.image_size, config.image_size), Image.Resampling.BOX)
    arr = np.asarray(small, dtype=np.float32) / 255.0
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    if mode == "L" and arr.max() > 0:
        arr = arr / arr.max()  # use the full range, like the digits' strokes
    return torch.from_numpy(np.ascontiguousarray(arr))[None]


def load_digits_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled digits: ``(pixel_values (N, 1, 8, 8) in [0, 1], labels (N,))``.

    Fixed split: stratified 80/20 with seed 0 (1437 train, 360 validation images).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "validation"):
        raise ValueError(f"split={split!r}; expected 'train' or 'validation'")
    digits = load_digits()
    x = digits.images.astype(np.float32) / 16.0
    y = digits.target.astype(np.int64)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    x, y = (x_tr, y_tr) if split == "train" else (x_va, y_va)
    return torch.from_numpy(x)[:, None], torch.from_numpy(y)


def load_image_dataset(spec: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images for ``spec``: "digits" (bundled), a hub name (e.g. "mnist", "cifar10") or a local image folder,
    all but digits through ``datasets.load_dataset``. Returns float pixels (N, C, H, W) and labels."""
    if spec == "digits":
        return load_digits_split(split)
    import datasets

    path = Path(spec)
    ds = datasets.load_dataset("imagefolder", data_dir=str(path)) if path.is_dir() else datasets.load_dataset(spec)
    name = split if split in ds else ("test" if split == "validation" and "test" in ds else None)
    if name is None:
        parts = ds["train"].train_test_split(test_size=0.2, seed=0)
        part = parts["train" if split == "train" else "test"]
    else:
        part = ds[name]
    image_col = next(c for c in part.column_names if c in ("image", "img"))
    label_col = next(c for c in part.column_names if c in ("label", "labels"))
    arrays = [
        np.asarray(im.convert("RGB" if np.asarray(im).ndim == 3 else "L"), dtype=np.float32) / 255.0
        for im in part[image_col]
    ]
    x = np.stack(arrays)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.tensor(part[label_col], dtype=torch.long)
