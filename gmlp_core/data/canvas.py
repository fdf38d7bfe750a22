"""Digits on a larger canvas, at a new random position every time: a vision task where locality pays.

On the bundled 8x8 digits, one pixel per token, every digit is centred, so a W that memorises a global
template per position is enough and the learned W shows no preference for neighbours. Here each 8x8
digit is pasted at a uniformly random position of a ``canvas x canvas`` black image, drawn afresh for
every training example of every step. A position-specific template no longer fits: what is worth
learning is a filter that looks at a pixel's neighbourhood wherever the digit is, the local,
shift-invariant W of the paper's ImageNet figure.

Validation uses the same 360 held-out digits as ``digits``, each at ``VAL_PLACEMENTS`` fixed random
positions (seeded), so accuracy is measured on positions never seen with those digits.
"""

from __future__ import annotations

import torch

from gmlp_core.data.images import load_digits_split
from gmlp_core.models.config import ModelConfig

CANVAS_DIGITS = "digits-canvas"
CANVAS = 16  # the canvas side in pixels (the model's image_size)
DIGIT = 8  # the side of a bundled digit
VAL_PLACEMENTS = 3
VAL_DIGITS = 360  # the held-out digits of ``load_digits_split("validation")``
VAL_IMAGES = VAL_DIGITS * VAL_PLACEMENTS  # the canvas validation set: every held-out digit at 3 positions
_VAL_SEED = 20_210_517


def place_on_canvas(digits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, canvas: int = CANVAS) -> torch.Tensor:
    """Paste each image of ``digits`` (B, C, h, w) into a black (B, C, canvas, canvas) image with its top-left
    corner at (``rows[i]``, ``cols[i]``)."""
    b, c, h, w = digits.shape
    if rows.shape != (b,) or cols.shape != (b,):
        raise ValueError(f"need one row and one column offset per image; got {tuple(rows.shape)}, {tuple(cols.shape)}")
    if int(rows.min()) < 0 or int(cols.min()) < 0 or int(rows.max()) > canvas - h or int(cols.max()) > canvas - w:
        raise ValueError(f"offsets must keep a {h}x{w} image inside the {canvas}x{canvas} canvas")
    out = torch.zeros(b, c, canvas, canvas, dtype=digits.dtype)
    r = rows[:, None] + torch.arange(h)  # (B, h) canvas rows
    k = cols[:, None] + torch.arange(w)  # (B, w) canvas columns
    batch = torch.arange(b)[:, None, None]
    for channel in range(c):
        out[batch, channel, r[:, :, None], k[:, None, :]] = digits[:, channel]
    return out


def random_offsets(n: int, generator: torch.Generator, canvas: int = CANVAS) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` uniformly random top-left corners for a digit on the canvas."""
    high = canvas - DIGIT + 1
    return torch.randint(0, high, (n,), generator=generator), torch.randint(0, high, (n,), generator=generator)


def canvas_digits_split(split: str, canvas: int = CANVAS) -> tuple[torch.Tensor, torch.Tensor]:
    """``train``: the 1,437 training digits as 8x8 images (placed per batch by the trainer).
    ``validation``: each of the 360 held-out digits at ``VAL_PLACEMENTS`` fixed positions on the canvas."""
    x, y = load_digits_split(split)
    if split == "train":
        return x, y
    g = torch.Generator().manual_seed(_VAL_SEED)
    x = x.repeat(VAL_PLACEMENTS, 1, 1, 1)
    rows, cols = random_offsets(len(x), g, canvas)
    return place_on_canvas(x, rows, cols, canvas), y.repeat(VAL_PLACEMENTS)


def is_canvas_model(config: ModelConfig) -> bool:
    """Whether ``config`` is a vision model trained on digits on a canvas (it records ``digits-canvas``)."""
    return config.task == "vision" and config.extra.get("data") == CANVAS_DIGITS


def rendered_images(config: ModelConfig) -> int:
    """How many images of ``config``'s input size the built-in data holds at once for it: the canvas validation set
    (``VAL_IMAGES``) for any model that can read digits on a canvas (one channel, ``image_size`` >= 8: ``eval --data
    digits-canvas`` takes every such model, whatever it records), none for others (the 8x8 digits are never resized).
    """
    can_read = config.task == "vision" and config.in_channels == 1 and config.image_size >= DIGIT
    return VAL_IMAGES if can_read else 0


def canvas_positions(canvas: int) -> int:
    """How many top-left rows (and columns) a digit can take on the canvas: 0 .. canvas - 8."""
    if canvas < DIGIT:
        raise ValueError(f"a canvas of {canvas} pixels cannot hold an {DIGIT}x{DIGIT} digit")
    return canvas - DIGIT + 1


def digit_on_canvas(digit: torch.Tensor, canvas: int, position: tuple[int, int] | None = None) -> torch.Tensor:
    """One 8x8 digit ``(1, 1, 8, 8)`` (or ``(8, 8)``) pasted on a black ``(1, 1, canvas, canvas)`` image with its
    top-left corner at ``position`` (row, column); ``None`` centres it."""
    digit = digit.reshape(1, 1, DIGIT, DIGIT)
    high = canvas_positions(canvas) - 1
    row, col = (high // 2, high // 2) if position is None else (int(position[0]), int(position[1]))
    if not (0 <= row <= high and 0 <= col <= high):
        raise ValueError(f"position ({row}, {col}) is off the canvas: rows and columns go from 0 to {high}")
    return place_on_canvas(digit, torch.tensor([row]), torch.tensor([col]), canvas)
