"""Choosing an image for the vision models: a validation digit, a sample photo, an uploaded file, or one drawn on
an 8x8 grid.

Whatever the source, the result is converted per model with ``gmlp_core.data.images.to_pixel_values``: the
digits convention (white strokes on black, values in [0, 1]), or the preprocessing an imported ImageNet model
records (resize, centre crop, normalise). A model trained on digits on a canvas (``digits-canvas``) sees the
8x8 digit pasted on its black canvas at the position the user picks (the centre by default).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image

from dashboard import loaders
from dashboard.context import Lens
from dashboard.style import escape_markdown
from gmlp_core.data.canvas import canvas_positions, digit_on_canvas, is_canvas_model
from gmlp_core.data.images import (
    SAMPLE_PHOTOS,
    BadImage,
    load_image,
    pixels_to_display,
    preprocess_of,
    to_pixel_values,
)
from gmlp_core.models import ModelConfig

GRID = 8
UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"]
SOURCES = ["Validation digit", "Sample photo", "Upload an image", "Draw a digit"]


@dataclass(frozen=True)
class ImageInput:
    """The chosen image: a PIL image or an (H, W) array in [0, 1], and its true label when known."""

    image: Image.Image | np.ndarray
    caption: str
    label: int | None = None
    position: tuple[int, int] | None = None  # where a canvas model sees the digit (top-left row, column); None: centre

    def pixels_for(self, config: ModelConfig) -> torch.Tensor:
        """``(1, C, H, W)`` pixel values for a vision model with ``config``: for a model trained on digits on a
        canvas, the 8x8 digit pasted on its canvas at ``position``."""
        if is_canvas_model(config):
            high = canvas_positions(config.image_size) - 1  # the sliders follow the largest canvas picked
            position = None if self.position is None else (min(self.position[0], high), min(self.position[1], high))
            return digit_on_canvas(to_pixel_values(self.image, _DIGIT_CONFIG), config.image_size, position)
        return to_pixel_values(self.image, config)

    def view_for(self, config: ModelConfig) -> np.ndarray:
        """What a model with ``config`` sees, as an image in [0, 1] (after its resize, crop and normalisation)."""
        return pixels_to_display(self.pixels_for(config), config)

    def preview(self) -> np.ndarray:
        """A grayscale (8, 8) array in [0, 1], as the digit models see it."""
        return to_pixel_values(self.image, _DIGIT_CONFIG)[0, 0].numpy()


_DIGIT_CONFIG = ModelConfig(task="vision", image_size=GRID, patch_size=1, in_channels=1, num_classes=10)


def canvas_models(lens: Lens, names: list[str]) -> list[str]:
    """The models among ``names`` trained on digits on a canvas (they take the digit at a position)."""
    return [n for n in names if is_canvas_model(lens.checkpoint(n).config)]


def image_options(lens: Lens, names: list[str]) -> dict[str, Any]:
    """``pick_image``'s options for the models ``names``: photos first if one classifies photos, and position
    sliders for the largest canvas among the canvas models."""
    canvases = [lens.checkpoint(n).config.image_size for n in canvas_models(lens, names)]
    return {"photos": bool(photo_models(lens, names)), "canvas": max(canvases) if canvases else None}


def vision_task(config: ModelConfig) -> str:
    """What a vision model was trained to classify, in a few words (the page says it under the model's name)."""
    if is_canvas_model(config):
        return f"trained on digits anywhere on a {config.image_size} x {config.image_size} canvas"
    if preprocess_of(config) is not None:
        return "trained on photos (ImageNet classes)"
    if config.in_channels == 1 and config.image_size == GRID:
        return "trained on centred 8 x 8 digits"
    return f"trained on {config.image_size} x {config.image_size} images"


def photo_models(lens: Lens, names: list[str]) -> list[str]:
    """The models among ``names`` that record a photo preprocessing (imported ImageNet models)."""
    return [n for n in names if preprocess_of(lens.checkpoint(n).config) is not None]


def pick_image(key: str, photos: bool = False, canvas: int | None = None) -> ImageInput | None:
    """Draw the image picker; returns the chosen image, or None (with a message shown) when there is none.

    ``photos``: a picked model classifies photos (ImageNet), so a sample photo is the default source. ``canvas``:
    the canvas side of a picked model trained on digits on a canvas: sliders then place the digit on it."""
    image = _pick_source(key, photos)
    if image is None or canvas is None:
        return image
    high = canvas_positions(canvas) - 1
    left, right = st.columns(2)
    row = left.slider(f"Digit's row on the {canvas} x {canvas} canvas", 0, high, high // 2, key=f"{key}-row")
    col = right.slider("Digit's column", 0, high, high // 2, key=f"{key}-col")
    return replace(image, position=(row, col))


def _pick_source(key: str, photos: bool) -> ImageInput | None:
    default = SOURCES[1] if photos else SOURCES[0]
    source = st.segmented_control("Image", SOURCES, default=default, key=f"{key}-source") or default
    if source == SOURCES[1]:
        name = st.selectbox("Sample photo (bundled with scikit-learn)", SAMPLE_PHOTOS, key=f"{key}-photo")
        image = loaders.sample_photo(name)
        return ImageInput(image, f"scikit-learn's sample photo {name} ({image.width} x {image.height})")
    if source == SOURCES[0]:
        x, y = loaders.digits_validation()
        index = st.number_input(
            f"Validation digit (0 to {len(x) - 1})", 0, len(x) - 1, value=0, step=1, key=f"{key}-index"
        )
        return ImageInput(
            x[int(index), 0], f"validation digit #{int(index)} (label {int(y[int(index)])})", int(y[int(index)])
        )
    if source == SOURCES[2]:
        upload = st.file_uploader(
            "An image file (PNG, JPEG, ...): dark-on-light drawings are inverted to the digits' white-on-black",
            type=UPLOAD_TYPES,
            key=f"{key}-upload",
        )
        if upload is None:
            st.info("Upload an image to classify it.")
            return None
        try:
            image = load_image(upload.getvalue())
        except BadImage as err:
            st.error(f"{escape_markdown(upload.name)}: {escape_markdown(err)}")
            return None
        return ImageInput(image, f"{upload.name} ({image.width} x {image.height}, {image.mode})")
    grid = draw_grid(key)
    if not grid.any():
        st.info(
            "The grid is blank. A classifier must still answer one of its classes, so it names a digit anyway: "
            "the probabilities under each model show how sure it is. Paint a digit to see a real answer."
        )
    return ImageInput(grid, "your drawing")


def _canvas_figure(grid: np.ndarray) -> go.Figure:
    ys, xs = np.mgrid[0:GRID, 0:GRID]
    fig = go.Figure(
        go.Scatter(
            x=xs.ravel(),
            y=ys.ravel(),
            mode="markers",
            marker=dict(
                symbol="square",
                size=34,
                color=grid.ravel(),
                colorscale="gray",
                cmin=0,
                cmax=1,
                line=dict(color="#666", width=1),
            ),
            hovertemplate="row %{y}, column %{x}<extra></extra>",
        )
    )
    fig.update_xaxes(range=[-0.6, GRID - 0.4], showticklabels=False, showgrid=False, zeroline=False, fixedrange=True)
    fig.update_yaxes(
        range=[GRID - 0.4, -0.6], showticklabels=False, showgrid=False, zeroline=False, fixedrange=True, scaleanchor="x"
    )
    fig.update_layout(
        height=360,
        width=360,
        margin=dict(l=5, r=5, t=5, b=5),
        # No drag tool by default: with dragmode "select" a single click selected nothing in Chromium (a
        # zero-area box), so nothing was painted; box and lasso stay one click away in the toolbar.
        dragmode=False,
        plot_bgcolor="#333",
        clickmode="event+select",
    )
    return fig


def draw_grid(key: str) -> np.ndarray:
    """An 8x8 drawing grid: click a cell, or drag a box / lasso over cells, to paint them with the brush."""
    state_key, applied_key = f"{key}-grid", f"{key}-grid-applied"
    if state_key not in st.session_state:
        st.session_state[state_key] = np.zeros((GRID, GRID), dtype=np.float32)
    grid = st.session_state[state_key]
    left, right = st.columns([3, 2])
    with right:
        brush = st.radio("Brush", ["ink", "half ink", "eraser"], horizontal=True, key=f"{key}-brush")
        start = st.selectbox("Start from", ["blank"] + [f"digit {d}" for d in range(10)], key=f"{key}-start")
        if st.button("Reset the grid", key=f"{key}-reset"):
            grid = _starting_grid(start)
            st.session_state[state_key] = grid
            st.session_state[applied_key] = None
        st.caption(
            "Click a cell to paint it. To paint many at once, pick the box or lasso tool in the chart's toolbar "
            "(top right of the grid) and drag over the cells."
        )
    with left:
        event = st.plotly_chart(
            _canvas_figure(grid),
            key=f"{key}-canvas",
            on_select="rerun",
            selection_mode=("points", "box", "lasso"),
            theme=None,
        )
    points = tuple(sorted((int(p["x"]), int(p["y"])) for p in (event.selection.points if event else [])))
    # A selection persists across reruns: paint it once, not on every rerun.
    if points and points != st.session_state.get(applied_key):
        value = {"ink": 1.0, "half ink": 0.5, "eraser": 0.0}[brush]
        grid = grid.copy()
        for x, y in points:
            grid[y, x] = value
        st.session_state[state_key] = grid
        st.session_state[applied_key] = points
        st.rerun()
    return grid


def _starting_grid(start: str) -> np.ndarray:
    if start == "blank":
        return np.zeros((GRID, GRID), dtype=np.float32)
    digit = int(start.split()[-1])
    x, y = loaders.digits_validation()
    return x[int(np.flatnonzero(y == digit)[0]), 0].astype(np.float32).copy()
