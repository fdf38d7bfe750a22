"""Images: the bundled 8x8 digits, and turning any user image into a model's ``pixel_values``.

Convention: float pixels in [0, 1], shape (B, C, H, W); digits are white strokes on black
(scikit-learn's values 0..16 divided by 16). A model that records its own preprocessing in
``config.extra["preprocess"]`` (an imported ImageNet model: resize the shorter side, centre crop,
normalise with mean and std, see :class:`Preprocess`) gets exactly that instead. Untrusted images are
checked by pixel count from the header *before* decoding, so a decompression bomb is refused without
allocating it.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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


INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class Preprocess:
    """An ImageNet-style evaluation transform (timm's and torchvision's): resize the shorter side to
    ``resize`` with ``interpolation``, crop the centre ``crop`` x ``crop``, scale to [0, 1], then
    ``(x - mean) / std`` per channel. Stored in ``config.extra["preprocess"]`` by the importers."""

    resize: int
    crop: int
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_crop_pct(
        cls, crop: int, crop_pct: float, interpolation: str, mean: tuple[float, ...], std: tuple[float, ...]
    ) -> Preprocess:
        """timm's convention: the shorter side is resized to ``floor(crop / crop_pct)`` (256 for 224 at 0.875)."""
        return cls(math.floor(crop / crop_pct), crop, interpolation, tuple(mean), tuple(std))

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def preprocess_of(config: ModelConfig) -> Preprocess | None:
    """The preprocessing ``config`` records in ``extra["preprocess"]`` (None: the digits convention).

    ``config.json`` is untrusted: anything malformed is a ``ValueError`` naming the field.
    """
    data = config.extra.get("preprocess")
    if data is None or config.task != "vision":
        return None

    def fail(msg: str) -> None:
        raise ValueError(f'extra["preprocess"]: {msg}')

    if not isinstance(data, dict) or set(data) != {"resize", "crop", "interpolation", "mean", "std"}:
        fail("expected an object with exactly resize, crop, interpolation, mean and std")
    resize, crop, interpolation = data["resize"], data["crop"], data["interpolation"]
    if any(not isinstance(v, int) or isinstance(v, bool) for v in (resize, crop)):
        fail(f"resize={resize!r} and crop={crop!r} must be integers")
    if crop != config.image_size or not crop <= resize <= 8 * crop:
        fail(f"crop={crop} must equal image_size={config.image_size} and resize={resize} lie in [crop, 8 * crop]")
    if interpolation not in INTERPOLATIONS:
        fail(f"interpolation={interpolation!r}; expected one of {sorted(INTERPOLATIONS)}")
    stats = []
    for name in ("mean", "std"):
        values = data[name]
        ok = isinstance(values, list) and len(values) == config.in_channels
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
        if not ok or (name == "std" and min(values) <= 0):
            fail(f"{name}={str(values)[:60]} must be {config.in_channels} finite numbers (std positive)")
        stats.append(tuple(float(v) for v in values))
    return Preprocess(resize, crop, interpolation, stats[0], stats[1])


MAX_CLASS_NAME = 200


def class_names_of(config: ModelConfig) -> list[str] | None:
    """The class names ``config.extra["class_names"]`` records, one per class (None: classes are numbers).

    Malformed names (not ``num_classes`` strings of at most 200 characters) are a ``ValueError``.
    """
    names = config.extra.get("class_names")
    if names is None or config.task != "vision":
        return None
    ok = isinstance(names, list) and len(names) == config.num_classes
    if not ok or not all(isinstance(n, str) and len(n) <= MAX_CLASS_NAME for n in names):
        raise ValueError(
            f'extra["class_names"]: expected a list of num_classes={config.num_classes} strings of at most '
            f"{MAX_CLASS_NAME} characters"
        )
    return names


def _photo_pixels(image: Image.Image, pre: Preprocess, mode: str) -> torch.Tensor:
    """torchvision's Resize(shorter side) + CenterCrop + ToTensor + Normalize, on a PIL image."""
    img = image.convert(mode)
    # torchvision's Resize(int): the shorter side becomes ``resize``, the longer one int(resize * long / short)
    w, h = img.size
    size = (pre.resize, int(pre.resize * h / w)) if w <= h else (int(pre.resize * w / h), pre.resize)
    if size != img.size:
        img = img.resize(size, INTERPOLATIONS[pre.interpolation])
    left, top = int(round((size[0] - pre.crop) / 2.0)), int(round((size[1] - pre.crop) / 2.0))
    img = img.crop((left, top, left + pre.crop, top + pre.crop))
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (C, H, W)
    arr = (arr - np.asarray(pre.mean, np.float32)[:, None, None]) / np.asarray(pre.std, np.float32)[:, None, None]
    return torch.from_numpy(np.ascontiguousarray(arr))[None]


def pixels_to_display(pixels: torch.Tensor, config: ModelConfig) -> np.ndarray:
    """One image of ``pixel_values`` back to what it looks like: ``(H, W)`` or ``(H, W, 3)`` in [0, 1]."""
    arr = pixels.detach().float().cpu().numpy().reshape(config.in_channels, config.image_size, config.image_size)
    pre = preprocess_of(config)
    if pre is not None:
        arr = arr * np.asarray(pre.std)[:, None, None] + np.asarray(pre.mean)[:, None, None]
    arr = np.clip(arr, 0.0, 1.0)
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def black_pixels(config: ModelConfig) -> torch.Tensor:
    """A black image ``(1, C, H, W)`` in the model's input convention (0, or ``-mean / std`` when normalised)."""
    x = torch.zeros(1, config.in_channels, config.image_size, config.image_size)
    pre = preprocess_of(config)
    if pre is not None:
        x = (x - torch.tensor(pre.mean)[:, None, None]) / torch.tensor(pre.std)[:, None, None]
    return x


def to_pixel_values(image: Image.Image | np.ndarray, config: ModelConfig) -> torch.Tensor:
    """Convert any image to ``(1, C, H, W)`` pixel values for ``config`` (a vision ModelConfig).

    With a recorded :class:`Preprocess` (``config.extra["preprocess"]``): that transform, exactly. Otherwise
    floats in [0, 1]: grayscale for one channel (light backgrounds are inverted so strokes are bright, like
    the digits), RGB for three; padded to a square, then resized to ``image_size``.
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
    pre = preprocess_of(config)
    if pre is not None:
        return _photo_pixels(image, pre, mode)
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


SAMPLE_PHOTOS = ("china.jpg", "flower.jpg")


def sample_photo(name: str) -> Image.Image:
    """One of scikit-learn's two bundled sample photos (640 x 427 RGB; no download), for the ImageNet models."""
    from sklearn.datasets import load_sample_image

    if name not in SAMPLE_PHOTOS:
        raise BadImage(f"unknown sample photo {name!r}; expected one of {', '.join(SAMPLE_PHOTOS)}")
    return Image.fromarray(load_sample_image(name))


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
