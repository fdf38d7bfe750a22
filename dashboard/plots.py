"""Plotly figure builders. Every figure is interactive: hovering shows the tokens, positions and values.

Builders take plain arrays and tables (computed by ``gmlp_core``) and return figures; pages show them
with ``widgets.chart``. Matrices use numeric axes with token tick labels, so repeated tokens stay apart.

Every string a builder is given (titles, tokens, names, class labels, column names) is plain text: tokens, checkpoint
names and class names come from files anyone can write, and plotly would draw ``<a href>`` in a label as a link. So
the builder that puts a string into the figure passes it through ``_text`` (``style.escape_label``) exactly once,
and the only markup in a figure is the builder's own (``<br>``, ``<extra>``).

Building a plotly figure is most of a rerun's server time (plotly validates every property it is given:
~20 ms for one heatmap), and a rerun usually draws the same figures again. So every public builder is
``@memo``: the same arguments (arrays and tables compared by content) give back the same finished figure,
built once per process with the house template already applied. Those figures are shared between sessions:
callers pass them to ``widgets.chart``/``chart_row`` and never change them.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import plotly.colors as pc
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from dashboard.lecture_bar import is_on
from dashboard.style import ARCH_COLORS, DIVERGING, HOUSE_TEMPLATE, SEQUENTIAL, arch_label, escape_label, template

LEGEND_BELOW = dict(orientation="h", yref="container", y=0.0, yanchor="bottom", x=0.0)
DASHES = ("solid", "dash", "dot", "dashdot", "longdash")

F = TypeVar("F", bound=Callable[..., Any])
MEMO_SIZE = 512  # finished figures kept per process (a 64 x 64 heatmap is ~150 kB)
_MEMO: OrderedDict[Hashable, Any] = OrderedDict()
_MEMO_LOCK = threading.Lock()
TEMPLATED = "_lens_large"  # attribute set on a figure that has the house template (value: lecture mode or not)


class _Unhashable(TypeError):
    pass


def fingerprint(value: Any) -> Hashable:
    """A key for ``value`` that changes when any of its content does: arrays and tables by a digest of their
    bytes (every element, never a sample), sequences and dicts element by element, numbers with their type.
    Raises ``TypeError`` for anything else (the call is then not cached)."""
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        if data.dtype == object:
            return ("object-array", data.shape, fingerprint(data.ravel().tolist()))
        return ("array", data.shape, data.dtype.str, hashlib.blake2b(data.tobytes(), digest_size=20).digest())
    if isinstance(value, pd.DataFrame | pd.Series):
        index = fingerprint(value.index.to_numpy()) if not isinstance(value.index, pd.RangeIndex) else repr(value.index)
        columns = tuple(value.columns) if isinstance(value, pd.DataFrame) else value.name
        dtypes = tuple(map(str, value.dtypes)) if isinstance(value, pd.DataFrame) else str(value.dtype)
        cells = pd.util.hash_pandas_object(value, index=False).to_numpy() if len(value) else np.zeros(0, np.uint64)
        return (type(value).__name__, columns, dtypes, index, fingerprint(cells))
    if value is None or isinstance(value, str | bytes | bool):
        return (type(value).__name__, value)
    if isinstance(value, int | float | np.generic):
        return (type(value).__name__, repr(value))  # repr: 1 and 1.0 and True stay apart, NaN equals NaN
    if isinstance(value, list | tuple | range):
        return (type(value).__name__, tuple(fingerprint(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((fingerprint(k), fingerprint(v)) for k, v in value.items()))
    if callable(value) and "<" not in getattr(value, "__qualname__", "<"):  # a named function, not a lambda
        return ("callable", value.__module__, value.__qualname__)
    raise _Unhashable(f"cannot fingerprint a {type(value).__name__}")


def lecturing() -> bool:
    """Lecture mode of the session drawing the figure (False outside a script run: tests, warm-up threads)."""
    return get_script_run_ctx(suppress_warning=True) is not None and is_on()


def finish(fig: go.Figure, large: bool) -> go.Figure:
    """Give ``fig`` the house template (lecture mode's larger fonts when ``large``), once. A new figure has the
    house template already (plotly's default here, ``style.HOUSE_TEMPLATE``): only lecture mode replaces it."""
    current = getattr(fig, TEMPLATED, None)
    if current is large:
        return fig
    if not (current is None and not large and pio.templates.default == HOUSE_TEMPLATE):
        fig.update_layout(template=template(large=large))
    setattr(fig, TEMPLATED, large)
    return fig


def memo(builder: F) -> F:
    """Cache ``builder``'s finished figures (or lists of figures) per process, keyed by its arguments' content and
    by lecture mode (the template's font sizes). Lists come back as new lists, so a caller may append to them."""

    @functools.wraps(builder)
    def cached(*args: Any, **kwargs: Any) -> Any:
        large = lecturing()
        try:
            key = (builder.__qualname__, large, fingerprint(args), fingerprint(kwargs))
        except _Unhashable:
            return _finished(builder(*args, **kwargs), large)
        with _MEMO_LOCK:
            hit = _MEMO.get(key)
            if hit is not None:
                _MEMO.move_to_end(key)
        if hit is None:
            hit = _finished(builder(*args, **kwargs), large)
            with _MEMO_LOCK:
                _MEMO[key] = hit
                while len(_MEMO) > MEMO_SIZE:
                    _MEMO.popitem(last=False)
        return list(hit) if isinstance(hit, list) else hit

    cached.uncached = builder  # type: ignore[attr-defined]
    return cached  # type: ignore[return-value]


def _finished(result: Any, large: bool) -> Any:
    if isinstance(result, list):
        return [finish(f, large) for f in result]
    return finish(result, large)


_text = escape_label  # plain text into a plotly label: see the module docstring


def _texts(values: Any) -> list[str]:
    """Each of ``values`` (a column, a list) as a plotly label."""
    return [_text(v) for v in values]


def _cells(df: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """``df[columns]`` as plotly labels, for ``customdata`` (rows, columns)."""
    return np.array([_texts(row) for row in df[list(columns)].astype(str).itertuples(index=False)], dtype=object)


def _labels(n: int, tokens: Sequence[str] | None) -> list[str]:
    """Hover labels "i: token" for ``n`` positions (bare positions beyond the tokens)."""
    if tokens is None:
        return [str(i) for i in range(n)]
    return [f"{i}: {_text(t)}" for i, t in enumerate(list(tokens)[:n])] + [str(i) for i in range(len(tokens), n)]


def _symmetric(z: np.ndarray) -> float:
    m = float(np.nanmax(np.abs(z))) if z.size else 1.0
    return m if m > 0 else 1.0


MAX_SIDE = 256  # cells per side drawn in a heatmap


def pool_blocks(z: np.ndarray, max_side: int = MAX_SIDE) -> tuple[np.ndarray, int]:
    """``z`` averaged over f x f blocks, f the smallest factor that fits ``max_side`` (1: unchanged)."""
    factor = math.ceil(max(z.shape) / max_side) if z.size else 1
    if factor <= 1:
        return z, 1
    r, c = math.ceil(z.shape[0] / factor), math.ceil(z.shape[1] / factor)
    padded = np.full((r * factor, c * factor), np.nan)
    padded[: z.shape[0], : z.shape[1]] = z
    return np.nanmean(padded.reshape(r, factor, c, factor), axis=(1, 3)), factor


def _block_labels(count: int, factor: int) -> list[str]:
    return [f"{i * factor}-{(i + 1) * factor - 1} (block mean)" for i in range(count)]


def matrix_trace(
    z: np.ndarray,
    tokens: Sequence[str] | None = None,
    *,
    value: str = "W",
    diverging: bool = True,
    zmax: float | None = None,
    showscale: bool = True,
    colorbar_x: float | None = None,
) -> go.Heatmap:
    """A heatmap of an (n, m) matrix: row = output position i, column = input position j.

    Beyond ``MAX_SIDE`` positions the matrix is drawn as block means (hover names each block's positions), so
    a long sequence never sends millions of cells to the browser."""
    z = np.asarray(z, dtype=float)
    z, factor = pool_blocks(z)
    custom, hover = None, "output %{y}<br>input %{x}"  # bare positions: no per-cell labels to send (n = 196: 1 MB)
    if factor > 1 or tokens is not None:
        if factor > 1:
            rows, cols = _block_labels(z.shape[0], factor), _block_labels(z.shape[1], factor)
        else:
            rows, cols = _labels(z.shape[0], tokens), _labels(z.shape[1], tokens)
        custom = np.empty(z.shape + (2,), dtype=object)
        custom[..., 0] = np.array(rows, dtype=object)[:, None]
        custom[..., 1] = np.array(cols, dtype=object)[None, :]
        hover = "output %{customdata[0]}<br>input %{customdata[1]}"
    zmax = zmax if zmax is not None else _symmetric(z)
    kwargs = dict(zmin=-zmax, zmax=zmax, zmid=0.0, colorscale=DIVERGING) if diverging else dict(colorscale=SEQUENTIAL)
    if not diverging and zmax is not None:
        kwargs |= dict(zmin=0.0, zmax=zmax)
    return go.Heatmap(
        z=z,
        x=np.arange(z.shape[1]) * factor if factor > 1 else None,  # axes stay in positions
        y=np.arange(z.shape[0]) * factor if factor > 1 else None,
        customdata=custom,
        hovertemplate=f"{hover}<br>{_text(value)} = %{{z:.4f}}<extra></extra>",
        showscale=showscale,
        colorbar=dict(thickness=12, x=colorbar_x) if colorbar_x is not None else dict(thickness=12),
        **kwargs,
    )


# Matrix panels are drawn at a fixed size, so a row of them wraps on a narrow screen instead of shrinking:
# every tick label gets at least LABEL_PX (the tick font plus a gap), the plot area at most PLOT_PX a side,
# and a whole panel fits the main column of a 1024 px screen with the sidebar open (~540 px).
TICK_FONT = 11
PLOT_PX = 340
MIN_PLOT_PX = 180
LINK_GROUP = "positions"  # the linked-hover group of every matrix panel
MAX_TOKEN_AXIS = 64  # axes beyond this many positions show positions, not tokens


def _tick_labels(n: int, tokens: Sequence[str] | None, side: int, label_px: int) -> dict:
    """Tokens (positions beyond ``MAX_TOKEN_AXIS``) on an axis of ``side`` pixels, every k-th where crowded."""
    named = tokens is not None and n <= MAX_TOKEN_AXIS
    step = max(1, math.ceil(n * label_px / side))
    if not named and step > 1:  # bare positions: round steps
        step = next(s for s in (1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64, 100) if s >= step or s == 100)
    vals = list(range(0, n, step))
    text = [_text(_short(tokens[i])) if named and i < len(tokens) else str(i) for i in vals]  # type: ignore[index]
    return dict(tickmode="array", tickvals=vals, ticktext=text, tickfont=dict(size=TICK_FONT))


def _short(token: str, limit: int = 10) -> str:
    token = str(token)
    return token if len(token) <= limit else token[: limit - 1] + "…"


def _bar_ticks(lo: float, hi: float) -> list[float]:
    """Round colour-bar ticks kept clear of the bar's ends, where its title (which states the range) sits."""
    span = hi - lo
    if not span > 0:
        return [lo]
    raw = span / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil((lo + 0.1 * span) / step) * step
    return [float(round(t, 12)) for t in np.arange(first, hi - 0.1 * span + 1e-12, step)]


def _range_text(zmin: float, zmax: float) -> str:
    return f"{zmin:.3g} to {zmax:.3g}" if zmin != -zmax else f"±{zmax:.3g}"


def _wrap(title: str, width_px: int, char_px: float = 8.5) -> str:
    """Plain-text ``title`` as a plotly label broken into lines that fit ``width_px`` at the title font (plotly
    never wraps by itself); a newline in ``title`` always breaks the line."""
    limit = max(8, int(width_px / char_px))
    lines = []
    for paragraph in str(title).splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            if line and len(line) + 1 + len(word) > limit:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        lines.append(line)
    return "<br>".join(_text(line) for line in lines)


@memo
def panel(
    z: np.ndarray,
    row_tokens: Sequence[str] | None = None,
    col_tokens: Sequence[str] | None = None,
    *,
    title: str = "",
    value: str = "W",
    diverging: bool = True,
    zmax: float | None = None,
    centre: float = 0.0,
    x_title: str = "input position j",
    y_title: str = "output position i",
    plot_px: int = PLOT_PX,
    large: bool = False,
) -> go.Figure:
    """One matrix as a fixed-size figure: rows and columns labelled (tokens up to ``MAX_TOKEN_AXIS``
    positions, every k-th where they would collide), a colour bar titled with its range, a diverging
    scale centred on ``centre`` (0 for W, 1 for the gate) or a sequential one from 0.

    The figure's ``layout.width`` is the width to draw it at (``widgets.chart_row`` does), so panels keep
    their size and wrap onto the next line on a narrow screen. ``large``: lecture mode's bigger ticks."""
    z = np.asarray(z, dtype=float)
    rows, cols = z.shape
    tokens_for_trace = row_tokens if row_tokens is not None and rows == cols else None
    trace = matrix_trace(z - centre if diverging else z, tokens_for_trace, value=value, diverging=diverging, zmax=zmax)
    if diverging:
        half = float(trace.zmax)
        trace.update(z=np.asarray(trace.z) + centre, zmin=centre - half, zmax=centre + half, zmid=centre)
        span = (centre - half, centre + half) if centre else (-half, half)
    else:
        span = (float(trace.zmin) if trace.zmin is not None else 0.0, float(trace.zmax or _max(z)))
        trace.update(zmin=span[0], zmax=span[1])
    if tokens_for_trace is None and row_tokens is not None:  # rows named, columns not (the gate's channels)
        trace.update(
            customdata=np.broadcast_to(np.array(_labels(rows, row_tokens), dtype=object)[:, None], z.shape),
            hovertemplate=f"{_text(y_title)} %{{customdata}}<br>{_text(x_title)} %{{x}}<br>{_text(value)} = "
            "%{z:.4f}<extra></extra>",
        )
    font = TICK_FONT + (2 if large else 0)
    label_px = font + 5
    cell = max(label_px, 14)
    side_x = int(min(plot_px, max(MIN_PLOT_PX, cols * cell)))
    side_y = int(min(plot_px, max(MIN_PLOT_PX, rows * cell)))
    x_ticks = _tick_labels(cols, col_tokens, side_x, label_px)
    y_ticks = _tick_labels(rows, row_tokens, side_y, label_px)
    x_ticks["tickfont"] = y_ticks["tickfont"] = dict(size=font)
    longest_x = max((len(t) for t in x_ticks["ticktext"]), default=1)
    longest_y = max((len(t) for t in y_ticks["ticktext"]), default=1)
    char = 0.62 * font
    left = int(30 + char * longest_y + 10)
    bottom = int(30 + (char * longest_x if col_tokens is not None else font + 4) + 10)
    right = 85
    width = left + side_x + right
    title = _wrap(title, width - 20)
    top = 40 + 22 * title.count("<br>")
    trace.update(
        colorbar=dict(
            thickness=12,
            len=0.8,  # the lower 80%: its title (what and the range) sits above it, inside the figure
            y=0.0,
            yanchor="bottom",
            title=dict(text=f"{_text(value)}<br>{_range_text(*span)}", side="top", font=dict(size=12)),
            tickfont=dict(size=font),
            tickmode="array",
            tickvals=_bar_ticks(*span),
        )
    )
    fig = go.Figure(trace)
    pooled = math.ceil(max(rows, cols) / MAX_SIDE) if max(rows, cols) > MAX_SIDE else 1
    fig.update_layout(
        # linked hover (dashboard/linked_hover.js): rows are positions; columns too unless they are channels
        meta=dict(link=LINK_GROUP, columns=col_tokens is not None or rows == cols, cell=pooled),
        title=dict(text=title, x=0.0, xanchor="left", font=dict(size=15 + (2 if large else 0))),
        width=width,
        height=top + side_y + bottom,
        margin=dict(l=left, r=right, t=top, b=bottom, autoexpand=False),
    )
    col_angle = -90 if col_tokens is not None and cols <= MAX_TOKEN_AXIS else 0
    fig.update_xaxes(title=dict(text=_text(x_title), font=dict(size=12), standoff=6), tickangle=col_angle, **x_ticks)
    fig.update_yaxes(title=dict(text=_text(y_title), font=dict(size=12), standoff=6), autorange="reversed", **y_ticks)
    return fig


def _max(z: np.ndarray) -> float:
    m = float(np.nanmax(z)) if z.size else 1.0
    return m if m > 0 else 1.0


@memo
def matrix(
    z: np.ndarray,
    tokens: Sequence[str] | None = None,
    *,
    title: str = "",
    value: str = "W",
    diverging: bool = True,
    zmax: float | None = None,
    large: bool = False,
    plot_px: int = PLOT_PX,
) -> go.Figure:
    """One square matrix (W, attention, influence) with tokens on both axes; rows read "output i mixes input j".
    ``zmax`` fixes the colour range (e.g. one range for every training step), else it is the matrix's own."""
    return panel(
        z, tokens, tokens, title=title, value=value, diverging=diverging, zmax=zmax, large=large, plot_px=plot_px
    )


@memo
def matrices(
    panels: Sequence[np.ndarray],
    titles: Sequence[str],
    tokens: Sequence[str] | None = None,
    *,
    value: str = "W",
    diverging: bool | Sequence[bool] = True,
    shared_scale: bool = False,
    large: bool = False,
) -> list[go.Figure]:
    """One fixed-size figure per matrix (layers, heads, models) for ``widgets.chart_row``. With ``shared_scale``
    every panel uses one colour range (each still draws its colour bar, so every panel reads on its own)."""
    kinds = [diverging] * len(panels) if isinstance(diverging, bool) else list(diverging)
    zmax = None
    if shared_scale:
        zmax = max(
            (_symmetric(np.asarray(p)) if d else _max(np.asarray(p))) for p, d in zip(panels, kinds, strict=True)
        )
    return [
        matrix(z, tokens, title=t, value=value, diverging=d, zmax=zmax, large=large)
        for z, t, d in zip(panels, titles, kinds, strict=True)
    ]


@memo
def row_profiles(
    profiles: np.ndarray, position: int, tokens: Sequence[str] | None = None, *, title: str = "", cols: int = 4
) -> go.Figure:
    """The paper's figure: row ``position`` of W in every layer, as small multiples against relative offset."""
    profiles = np.asarray(profiles, dtype=float)  # (L, n)
    n_layers, n = profiles.shape
    cols = max(1, min(cols, n_layers))
    rows = math.ceil(n_layers / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"layer {i}" for i in range(n_layers)])
    offsets = np.arange(n) - position
    labels = _labels(n, tokens)
    for layer in range(n_layers):
        r, c = divmod(layer, cols)
        fig.add_trace(
            go.Scatter(
                x=offsets,
                y=profiles[layer],
                mode="lines+markers",
                marker=dict(size=4),
                line=dict(color=ARCH_COLORS["gmlp"]),
                customdata=labels,
                hovertemplate=f"layer {layer}<br>input %{{customdata}} (offset %{{x}})<br>W = %{{y:.4f}}<extra></extra>",
                showlegend=False,
            ),
            row=r + 1,
            col=c + 1,
        )
        fig.add_vline(x=0, line=dict(color="#999", dash="dot", width=1), row=r + 1, col=c + 1)
    fig.update_xaxes(title_text="j - i")
    fig.update_layout(title=_text(title), height=260 * rows + 80)
    return fig


@memo
def layer_lines(
    df: pd.DataFrame,
    x: str,
    ys: Sequence[str],
    *,
    title: str = "",
    y_title: str = "",
    baselines: dict[str, str] | None = None,
) -> go.Figure:
    """Per-layer scores (e.g. locality and shift invariance) as lines, one per column in ``ys``; ``baselines``
    maps a score to the column holding its no-preference value, drawn dashed in the same colour."""
    fig = go.Figure()
    palette = pc.qualitative.Plotly
    for i, y in enumerate(ys):
        colour = palette[i % len(palette)]
        fig.add_trace(
            go.Scatter(
                x=df[x],
                y=df[y],
                mode="lines+markers",
                name=_text(y.replace("_", " ")),
                line=dict(color=colour),
                hovertemplate=f"{_text(x)} %{{x}}<br>{_text(y)} = %{{y:.3f}}<extra></extra>",
            )
        )
        base = (baselines or {}).get(y)
        if base is not None and base in df:
            fig.add_trace(
                go.Scatter(
                    x=df[x],
                    y=df[base],
                    mode="lines",
                    name=_text(f"{y.replace('_', ' ')}, random W"),
                    line=dict(color=colour, dash="dash", width=1.5),
                    hovertemplate=f"no preference: {_text(y)} = %{{y:.3f}}<extra></extra>",
                )
            )
    fig.update_layout(title=_text(title), height=360, legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"))
    fig.update_xaxes(title=_text(x), dtick=1 if len(df) <= 16 else None)
    fig.update_yaxes(title=_text(y_title))
    return fig


def tile_images(images: Sequence[np.ndarray], cols: int, gap: int = 1, title_gap: int = 0) -> tuple[np.ndarray, list]:
    """Equal-sized 2-D images laid out on one canvas, ``cols`` per row, NaN between them; returns the canvas and
    each image's ``(top, left)`` on it. ``title_gap`` extra NaN rows above every row of images hold its titles."""
    h, w = np.asarray(images[0]).shape
    rows = math.ceil(len(images) / cols)
    step_y, step_x = h + gap + title_gap, w + gap
    canvas = np.full((rows * step_y - gap, cols * step_x - gap), np.nan)
    origins = []
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        top, left = r * step_y + title_gap, c * step_x
        canvas[top : top + h, left : left + w] = np.asarray(im, dtype=float)
        origins.append((top, left))
    return canvas, origins


@memo
def image_grid(
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    cols: int = 8,
    diverging: bool = True,
    value: str = "W",
    panel_height: int = 170,
) -> go.Figure:
    """Small 2D images (e.g. rows of W reshaped onto the patch grid) with their title and pixel on hover.

    The images are tiled into one heatmap (``tile_images``): one trace draws in a fraction of the time of one
    subplot per image (49 filters of 14 x 14 on the Spatial weights page), with one colour scale for all.
    ``layout.meta["tiles"]`` lists each image's (top, left) on the canvas.
    """
    k = len(images)
    cols = max(1, min(cols, k))
    rows = math.ceil(k / cols)
    h, w = np.asarray(images[0]).shape
    title_gap = 0 if k == 1 else max(2, h // 4)  # room for each image's title, in pixels of the images
    z, origins = tile_images(images, cols, gap=1 if k > 1 else 0, title_gap=title_gap)
    titles = _texts(titles)
    where = np.full(z.shape + (3,), "", dtype=object)
    for (top, left), title in zip(origins, titles, strict=True):
        rr, cc = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        where[top : top + h, left : left + w, 0] = title
        where[top : top + h, left : left + w, 1] = rr
        where[top : top + h, left : left + w, 2] = cc
    zmax = max(_symmetric(np.asarray(im)) for im in images) if diverging else None
    kwargs = dict(zmin=-zmax, zmax=zmax, zmid=0.0, colorscale=DIVERGING) if diverging else dict(colorscale="gray")
    fig = go.Figure(
        go.Heatmap(
            z=z,
            customdata=where,
            colorbar=dict(thickness=12, title=dict(text=_text(value))),
            hoverongaps=False,
            hovertemplate=f"%{{customdata[0]}}<br>row %{{customdata[1]}}, column %{{customdata[2]}}<br>{_text(value)} = "
            "%{z:.4f}<extra></extra>",
            **kwargs,
        )
    )
    if k > 1:
        for (top, left), title in zip(origins, titles, strict=True):
            fig.add_annotation(
                x=left + (w - 1) / 2, y=top - 0.6, text=title, showarrow=False, yanchor="bottom", font=dict(size=12)
            )
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False, showgrid=False, zeroline=False)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain")
    fig.update_layout(
        height=panel_height * rows + 50,
        margin=dict(t=40 if k == 1 else 20, l=20, r=20, b=20),
        meta={"tiles": [list(o) for o in origins], "tile_shape": [h, w]},
        title=titles[0] if k == 1 else None,
    )
    return fig


@memo
def digit(image: np.ndarray, title: str = "", height: int = 300) -> go.Figure:
    """One grayscale image (values in [0, 1]) with pixel values on hover."""
    fig = go.Figure(
        go.Heatmap(
            z=np.asarray(image, dtype=float),
            colorscale="gray",
            zmin=0,
            zmax=1,
            showscale=False,
            hovertemplate="row %{y}, column %{x}<br>value %{z:.2f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(title=_text(title), height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10))
    return fig


@memo
def probabilities(
    df: pd.DataFrame, label: str, prob: str = "probability", *, title: str = "", color: str | None = None
) -> go.Figure:
    """Horizontal bars of the top predictions (best on top)."""
    d = df.iloc[::-1]
    fig = go.Figure(
        go.Bar(
            x=d[prob],
            y=_texts(d[label]),
            orientation="h",
            marker_color=color or ARCH_COLORS["gmlp"],
            text=[f"{p:.1%}" for p in d[prob]],
            textposition="auto",
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    fig.update_layout(title=_text(title), height=max(200, 38 * len(d) + 90), margin=dict(l=10, r=10, t=50, b=30))
    top = float(d[prob].max()) if len(d) else 1.0
    fig.update_xaxes(range=[0, min(1.0, max(0.05, top * 1.3))], tickformat=".0%")
    fig.update_yaxes(type="category")
    return fig


@memo
def token_scores(
    tokens: Sequence[str], scores: np.ndarray, *, title: str = "", value: str = "attribution"
) -> go.Figure:
    """Signed per-token scores as bars over the sentence (red pushes the prediction up, blue down)."""
    scores = np.asarray(scores, dtype=float)
    m = _symmetric(scores)
    fig = go.Figure(
        go.Bar(
            x=list(range(len(tokens))),
            y=scores,
            marker=dict(color=scores, colorscale=DIVERGING, cmin=-m, cmax=m),
            customdata=_labels(len(tokens), tokens),
            hovertemplate=f"%{{customdata}}<br>{_text(value)} = %{{y:.4f}}<extra></extra>",
        )
    )
    # upright labels: rotated ones would collide on a projector; every k-th token where they would crowd
    fig.update_xaxes(**_tick_labels(len(tokens), tokens, 360, TICK_FONT + 6), tickangle=-90)
    fig.update_layout(title=_text(title), height=360)
    return fig


# Mantissas for log-axis ticks, coarse to fine: the first set that puts 3 ticks inside the data is used.
_MANTISSAS = (
    (1,),
    (1, 2, 5),
    (1, 1.5, 2, 3, 4, 5, 6, 8),
    (1, 1.2, 1.4, 1.6, 1.8, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9),
    tuple(round(1 + 0.2 * i, 1) for i in range(45)),
)


def tick_label(value: float) -> str:
    """A full tick label: 5,000 / 20k / 1.5M / 2B, never a bare mantissa."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e4, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}" if suffix != "k" else f"{value / 1e3:,.4g}k"
    return f"{value:,.6g}"


def log_ticks(values: np.ndarray) -> dict:
    """Full tick labels for a log axis over the range of ``values``: powers of ten over many decades,
    1-2-5 over a few, finer steps over less than a decade (plotly would label the 2 and 5 with a bare digit,
    which reads like another number: "3, 2, 100, 9")."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return {}
    vmin, vmax = float(v.min()), float(v.max())
    lo, hi = math.floor(math.log10(vmin)), math.ceil(math.log10(vmax))
    vals: list[float] = []
    for steps in _MANTISSAS:
        grid = [m * 10.0**e for e in range(lo - 1, hi + 1) for m in steps]
        vals = [t for t in grid if vmin / 2.5 <= t <= vmax * 2.5]
        if sum(vmin <= t <= vmax for t in vals) >= 3:
            break
    return dict(tickmode="array", tickvals=vals, ticktext=[tick_label(t) for t in vals]) if len(vals) >= 2 else {}


@memo
def curves(
    df: pd.DataFrame,
    x: str,
    y: str,
    *,
    group: str = "name",
    color: str = "arch",
    title: str = "",
    log_y: bool = False,
    x_title: str | None = None,
    y_title: str | None = None,
) -> go.Figure:
    """One line per ``group`` (e.g. per checkpoint): the colour says the architecture, the dash tells
    models of one architecture apart. Axis titles default to the column names."""
    fig = go.Figure()
    x_title, y_title = x_title or x.replace("_", " "), y_title or y.replace("_", " ")
    seen: dict[str, int] = {}
    if y not in df or x not in df:  # a log written without this metric (e.g. no validation)
        fig.add_annotation(
            text=_text(f"no {y_title} in these logs"), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
        )
        fig.update_layout(title=_text(title), height=420)
        return fig
    for name, g in df.groupby(group, sort=False):
        g = g.dropna(subset=[y]).sort_values(x)
        if g.empty:
            continue
        arch = str(g[color].iloc[0]) if color in g else ""
        k = seen[arch] = seen.get(arch, -1) + 1
        fig.add_trace(
            go.Scatter(
                x=g[x],
                y=g[y],
                mode="lines+markers",
                name=_text(name),
                line=dict(color=ARCH_COLORS.get(arch), dash=DASHES[k % len(DASHES)]),
                marker=dict(size=5),
                hovertemplate=f"{_text(name)}<br>{_text(x_title)} %{{x:,}}<br>{_text(y_title)} = %{{y:.4g}}"
                "<extra></extra>",
            )
        )
    # The legend under the axis title, measured from the figure's bottom edge, so the two never collide
    fig.update_layout(title=_text(title), height=420, legend=LEGEND_BELOW)
    fig.update_xaxes(title=_text(x_title))
    fig.update_yaxes(title=_text(y_title), type="log" if log_y else "linear")
    if log_y and y in df:
        fig.update_yaxes(**log_ticks(df[y].to_numpy()))
    return fig


@memo
def scaling(
    df: pd.DataFrame,
    fits: pd.DataFrame,
    x: str,
    y: str,
    *,
    curve: callable | None = None,
    title: str = "",
) -> go.Figure:
    """Log-log scatter per architecture with the fitted power law (our runs; the paper's models have their
    own panel, ``scaling_paper``, because they live three decades further right)."""
    fig = go.Figure()
    for arch, g in df.groupby("arch", sort=True):
        g = g.sort_values(x)
        color, label = ARCH_COLORS.get(arch), _text(arch_label(arch))
        fig.add_trace(
            go.Scatter(
                x=g[x],
                y=g[y],
                mode="markers",
                name=label,
                marker=dict(size=11, color=color, line=dict(width=1, color="white")),
                customdata=np.array(_texts(g["name"]), dtype=object)[:, None] if "name" in g else None,
                hovertemplate=f"%{{customdata[0]}}<br>{_text(x)} %{{x:,.0f}}<br>{_text(y)} %{{y:.4g}}"
                f"<extra>{label}</extra>",
            )
        )
        row = fits[fits["arch"] == arch] if not fits.empty else fits
        if curve is not None and not row.empty:
            r = row.iloc[0]
            xs = np.geomspace(g[x].min(), g[x].max(), 60)
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=curve(r, xs),
                    mode="lines",
                    line=dict(color=color, dash="dash"),
                    name=f"{label} fit: alpha = {r['alpha']:.3f} +/- {r['alpha_err']:.3f}",
                    hoverinfo="skip",
                )
            )
    fig.update_xaxes(type="log", title=_text(x.replace("_", " ")), **log_ticks(df[x].to_numpy() if x in df else []))
    fig.update_yaxes(type="log", title=_text(y.replace("_", " ")), **log_ticks(df[y].to_numpy() if y in df else []))
    fig.update_layout(title=_text(title), height=460, legend=LEGEND_BELOW)
    return fig


def _flag(verified: pd.Series) -> str:
    return "" if bool(verified.all()) else " (unverified)"


@memo
def scaling_paper(points: pd.DataFrame, x: str, y: str, *, title: str = "") -> go.Figure:
    """The paper's MLM models at their own scale, on the same kind of axis as our runs.

    Top: the published perplexity (or its log) against our count of each model's size, one line per
    architecture (open markers: unverified figures). Bottom: every model's size on the same axis, one row per
    series, so the scaling pairs, whose perplexities are not recorded, are drawn as sizes only.
    """
    flag = _flag(points["verified"])
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.55, 0.45],
        vertical_spacing=0.12,
        subplot_titles=[
            _text(f"published {y.replace('_', ' ')}{flag}"),
            f"sizes{flag} (no published perplexity)",
        ],
    )
    known = points.dropna(subset=[y])
    for (series, arch), g in known.groupby(["series", "arch"], sort=True):
        g = g.sort_values(x)
        verified = bool(g["verified"].all())
        fig.add_trace(
            go.Scatter(
                x=g[x],
                y=g[y],
                mode="lines+markers",
                name=_text(f"paper, {series}: {arch_label(arch)}{_flag(g['verified'])}"),
                line=dict(color=ARCH_COLORS.get(arch), dash="dot"),
                marker=dict(symbol="star" if verified else "star-open", size=14, color=ARCH_COLORS.get(arch)),
                customdata=_cells(g, ["model", "shape", "source"]),
                hovertemplate=(
                    "%{customdata[0]} (%{customdata[1]})<br>"
                    + f"{_text(x.replace('_', ' '))} %{{x:,.0f}}<br>{_text(y.replace('_', ' '))} %{{y:.3g}}<br>"
                    + "Liu et al. 2021, %{customdata[2]}<extra></extra>"
                ),
            ),
            row=1,
            col=1,
        )
    for (series, arch), g in points.groupby(["series", "arch"], sort=True):
        g = g.sort_values(x)
        short = g["model"].str.split(r"[- ]").str[-1]  # "large", "L18": the row already names the architecture
        fig.add_trace(
            go.Scatter(
                x=g[x],
                y=[_text(f"{series}: {arch_label(arch)}")] * len(g),
                mode="markers+text",
                text=_texts(short),
                textposition="middle right",  # beside the marker: rows never stack their labels
                name=_text(f"sizes, {series}: {arch_label(arch)}{_flag(g['verified'])}"),
                showlegend=False,
                marker=dict(symbol="diamond-open", size=10, color=ARCH_COLORS.get(arch), line=dict(width=2)),
                customdata=_cells(g, ["model", "shape", "published_params_m", "val_ppl"]),
                hovertemplate=(
                    "%{customdata[0]} (%{customdata[1]})<br>"
                    + f"{_text(x.replace('_', ' '))} %{{x:,.0f}}<br>published params %{{customdata[2]}}M<br>"
                    + "published ppl %{customdata[3]}<extra></extra>"
                ),
            ),
            row=2,
            col=1,
        )
    lo, hi = np.log10(points[x].min()), np.log10(points[x].max())
    fig.update_xaxes(type="log", range=[lo - 0.08, hi + 0.22], **log_ticks(points[x].to_numpy()))  # room for labels
    fig.update_xaxes(
        title=_text(f"{x.replace('_', ' ')} (counted by our code from the published shapes)"), row=2, col=1
    )
    fig.update_yaxes(type="log", title=_text(f"published {y.replace('_', ' ')}"), row=1, col=1, **log_ticks(known[y]))
    fig.update_yaxes(title="", row=2, col=1, automargin=True)
    fig.update_layout(title=_text(title), height=640, legend=LEGEND_BELOW, margin=dict(l=170))
    return fig


@memo
def slopes(fits: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Fitted exponents alpha with +/- 1 standard error bars, one marker per (architecture, fit).

    ``fits`` has ``arch``, ``alpha``, ``alpha_err`` and a ``label`` column naming the fit (its x axis, or the
    paper's two-point slope); a fit through two points has no error bar (NaN)."""
    fig = go.Figure()
    for label, g in fits.groupby("label", sort=False):
        paper = str(label).startswith("paper")
        fig.add_trace(
            go.Scatter(
                x=_texts(arch_label(a) for a in g["arch"]),
                y=g["alpha"],
                error_y=dict(type="data", array=g["alpha_err"].fillna(0).to_numpy(), visible=True),
                mode="markers",
                name=_text(label),
                marker=dict(size=12, symbol="star-open" if paper else "circle"),
                hovertemplate="%{x}: alpha %{y:.3f}<extra>" + _text(label) + "</extra>",
            )
        )
    fig.update_yaxes(title="alpha (loss ~ N^-alpha)", rangemode="tozero")
    fig.update_layout(title=_text(title), height=360, scattermode="group", legend=LEGEND_BELOW)
    return fig


@memo
def ablation(table: pd.DataFrame, unigram_ppl: float | None = None) -> go.Figure:
    """The gating ablation as bars: our validation perplexity per variant (left, with the unigram baseline
    on the same targets when known) and the paper's (right, on its own axis: another scale)."""
    has_paper = "paper_ppl" in table and table["paper_ppl"].notna().any()
    fig = make_subplots(
        rows=1,
        cols=2 if has_paper else 1,
        subplot_titles=["ours (demo scale)"] + (["paper (unverified)"] if has_paper else []),
        horizontal_spacing=0.12,
    )
    colors = [ARCH_COLORS.get(a, "#888888") for a in table["arch"]]
    variants = _texts(table["variant"])
    fig.add_trace(
        go.Bar(
            x=variants,
            y=table["val_ppl"],
            marker_color=colors,
            name="ours",
            text=[f"{v:.1f}" for v in table["val_ppl"]],
            textposition="outside",
            hovertemplate="%{x}: val ppl %{y:.1f}<extra>ours</extra>",
        ),
        row=1,
        col=1,
    )
    if unigram_ppl is not None:
        fig.add_hline(
            y=unigram_ppl,
            line=dict(dash="dash", color="#666666"),
            annotation_text=f"unigram baseline {unigram_ppl:.0f}",
            annotation_position="top left",
            row=1,
            col=1,
        )
    if has_paper:
        paper = table.dropna(subset=["paper_ppl"])
        fig.add_trace(
            go.Bar(
                x=_texts(paper["variant"]),
                y=paper["paper_ppl"],
                marker=dict(
                    color="rgba(0,0,0,0)", line=dict(color=[ARCH_COLORS.get(a, "#888") for a in paper["arch"]], width=2)
                ),
                name="paper (unverified)",
                text=[f"{v:.2f}" for v in paper["paper_ppl"]],
                textposition="outside",
                hovertemplate="%{x}: paper ppl %{y:.2f}<extra>Liu et al. 2021, unverified</extra>",
            ),
            row=1,
            col=2,
        )
        fig.update_yaxes(title="paper val ppl", range=[0, float(paper["paper_ppl"].max()) * 1.2], row=1, col=2)
    top = max(float(table["val_ppl"].max()), unigram_ppl or 0.0) * 1.15
    fig.update_yaxes(title="validation perplexity (lower is better)", range=[0, top], row=1, col=1)
    fig.update_layout(title="Gating ablation", height=420, showlegend=False)
    fig.update_xaxes(tickangle=-90)  # variant names upright: they never run into each other, even in lecture mode
    return fig


@memo
def gate(
    values: np.ndarray,
    tokens: Sequence[str] | None = None,
    *,
    title: str = "",
    max_channels: int = 64,
    large: bool = False,
) -> go.Figure:
    """The gate W LN(Z2) + b per position (rows) and channel (columns, the first ``max_channels``), on a
    diverging scale centred on 1 (a gate of 1 passes Z1 unchanged, as at initialisation)."""
    z = np.asarray(values, dtype=float)[:, :max_channels]
    return panel(
        z,
        tokens,
        None,
        title=title,
        value="gate",
        centre=1.0,
        zmax=_symmetric(z - 1.0),
        x_title=f"channel (first {z.shape[1]})",
        y_title="position",
        large=large,
    )


def _metric_title(metric: str) -> str:
    return "validation perplexity" if metric == "val_ppl" else "validation accuracy"


@memo
def knockouts(df: pd.DataFrame) -> go.Figure:
    """Bars: the held-out metric after knocking out each unit alone, with the unedited model as a line."""
    metric = str(df["metric"].iloc[0])
    fig = go.Figure(
        go.Bar(
            x=_texts(df["unit"]),
            y=df["value"],
            marker_color=[
                ARCH_COLORS.get("transformer") if k == "heads-off" else ARCH_COLORS.get("gmlp") for k in df["kind"]
            ],
            hovertemplate="%{x}<br>" + _metric_title(metric) + " %{y:.4g}<extra></extra>",
        )
    )
    fig.add_hline(
        y=float(df["unedited"].iloc[0]), line_dash="dash", annotation_text="unedited", annotation_position="top left"
    )
    fig.update_layout(height=380, xaxis_title="knocked out", yaxis_title=_metric_title(metric), margin=dict(t=30))
    return fig


@memo
def band_sweep(df: pd.DataFrame) -> go.Figure:
    """One line per layer: the held-out metric with that layer's W cut to a band of width k."""
    metric = str(df["metric"].iloc[0])
    fig = go.Figure()
    for i, (layer, group) in enumerate(df.groupby("layer")):
        fig.add_trace(
            go.Scatter(
                x=group["k"],
                y=group["value"],
                mode="lines+markers",
                name=_text(f"layer {layer}"),
                line=dict(dash=DASHES[i % len(DASHES)]),
                hovertemplate=f"{_text(f'layer {layer}')}, k %{{x}}<br>{_metric_title(metric)} %{{y:.4g}}<extra></extra>",
            )
        )
    fig.add_hline(
        y=float(df["unedited"].iloc[0]), line_dash="dash", annotation_text="unedited", annotation_position="top right"
    )
    fig.update_layout(
        height=400,
        xaxis_title="band width k (positions kept on each side of the diagonal)",
        yaxis_title=_metric_title(metric),
        margin=dict(t=30),
    )
    return fig


MAX_FRAME_SIDE = 128  # cells per side of an animated heatmap: 41 frames of 128 x 128 float32 are ~2.7 MB


@memo
def snapshot_animation(
    weights: Sequence[np.ndarray],
    steps: Sequence[int],
    titles: Sequence[str],
    *,
    start: int,
    position: int,
    zmax: float | None = None,
    curve: pd.Series | None = None,
    curve_label: str = "",
    log_y: bool = False,
) -> go.Figure:
    """W forming during training as one animated figure: a frame per step, played in the browser.

    Top left, W at the step (one colour range ``zmax`` for every frame, or None: each frame its own); top right,
    row ``position`` of W against the offset j - i (every step faint, the one shown bold); below, ``curve`` (a
    validation metric indexed by logged step) with a marker at the last logged step at or before the one shown
    and a dotted line at the step itself. Play/Pause and a slider under the figure move through the frames with
    no server round trip; frame ``start`` is shown first, with its title ``titles[start]``.
    """
    has_curve = curve is not None and not curve.empty
    fig = make_subplots(
        rows=2 if has_curve else 1,
        cols=2,
        specs=[[{}, {}], [{"colspan": 2}, None]] if has_curve else [[{}, {}]],
        column_widths=[0.56, 0.44],
        row_heights=[0.62, 0.38] if has_curve else None,
        horizontal_spacing=0.17,  # room for W's colour bar and its tick labels on a ~540 px wide chart
        vertical_spacing=0.14,
        # W is named by its colour bar: a title centred over its domain would sit on the tick labels (W is
        # pushed right, against the bar)
        subplot_titles=["", f"row {position} of W", *([_text(curve_label)] if has_curve else [])],
    )
    pooled = [pool_blocks(np.asarray(w, dtype=float), MAX_FRAME_SIDE) for w in weights]
    factor = pooled[0][1]
    frames_z = [z.astype(np.float32) for z, _ in pooled]  # float32: half the bytes sent, far beyond what a colour shows
    ranges = [zmax if zmax is not None else _symmetric(z) for z in frames_z]
    rows = np.asarray([w[position] for w in weights], dtype=np.float32)  # (frames, n)
    offsets = np.arange(rows.shape[1]) - position

    # The colour bar sits just right of W; W is kept square and pushed against it (constraintoward="right").
    x1, (y0, y1) = fig.layout.xaxis.domain[1], fig.layout.yaxis.domain
    heatmap = matrix_trace(frames_z[start], zmax=ranges[start])
    heatmap.update(
        z=frames_z[start],
        colorbar=dict(thickness=12, x=x1 + 0.015, y=y0, yanchor="bottom", len=0.85 * (y1 - y0), title=dict(text="W")),
    )
    if factor > 1:  # block means: the axes stay in positions
        heatmap.update(x=np.arange(frames_z[0].shape[1]) * factor, y=np.arange(frames_z[0].shape[0]) * factor)
    fig.add_trace(heatmap, row=1, col=1)
    fig.add_trace(
        go.Scatter(  # every step as one faint trace, broken by NaN
            x=np.tile(np.append(offsets, np.nan), len(rows)),
            y=np.concatenate([np.append(r, np.nan) for r in rows]),
            mode="lines",
            line=dict(color="rgba(120,120,120,0.3)", width=1),
            hoverinfo="skip",
        ),
        row=1,
        col=2,
    )

    def bold(k: int) -> go.Scatter:
        return go.Scatter(
            x=offsets,
            y=rows[k],
            mode="lines",
            line=dict(color=ARCH_COLORS["gmlp"], width=3),
            hovertemplate=f"step {steps[k]}<br>offset %{{x}}<br>W = %{{y:.4f}}<extra></extra>",
        )

    def moving(k: int) -> list[go.Heatmap | go.Scatter]:  # what changes from frame to frame, traces 0, 2 (4, 5)
        heat = go.Heatmap(z=frames_z[k], zmin=-ranges[k], zmax=ranges[k])
        return [heat, bold(k), *(_step_marker(curve, steps[k], curve_label) if has_curve else [])]

    first = moving(start)
    fig.add_trace(bold(start), row=1, col=2)
    if has_curve:
        fig.add_trace(
            go.Scatter(
                x=curve.index.to_numpy(),
                y=curve.to_numpy(dtype=float),
                mode="lines+markers",
                marker=dict(size=4),
                line=dict(color="#555555", width=2),
                hovertemplate=f"step %{{x:,}}<br>{_text(curve_label)} %{{y:.4g}}<extra></extra>",
            ),
            row=2,
            col=1,
        )
        fig.add_traces(first[2:], rows=2, cols=1)
        fig.update_xaxes(title="training step", row=2, col=1)
        ticks = log_ticks(curve.to_numpy(dtype=float)) if log_y else {}
        fig.update_yaxes(type="log" if log_y else "linear", row=2, col=1, **ticks)  # the subplot title names it
    traces = [0, 2, 4, 5] if has_curve else [0, 2]
    fig.frames = [
        go.Frame(name=str(step), data=moving(k), traces=traces, layout=dict(title=dict(text=_text(titles[k]))))
        for k, step in enumerate(steps)
    ]
    pad = 0.05 * float(np.nanmax(np.abs(rows))) or 1.0
    fig.update_xaxes(title="input position j", constrain="domain", constraintoward="right", row=1, col=1)
    fig.update_yaxes(title="output position i", autorange="reversed", scaleanchor="x", constrain="domain", row=1, col=1)
    fig.update_xaxes(title="j - i", row=1, col=2)
    fig.update_yaxes(side="right", range=[float(rows.min()) - pad, float(rows.max()) + pad], row=1, col=2)
    fig.update_layout(
        title=dict(text=_text(titles[start])),
        height=820 if has_curve else 560,
        showlegend=False,
        margin=dict(t=90, b=190, r=60),
        **_play_controls([str(s) for s in steps], start),
    )
    return fig


def _step_marker(curve: pd.Series, step: int, label: str) -> list[go.Scatter]:
    """A dotted line at ``step`` across ``curve``'s range, and a dot on the last logged step at or before it."""
    values = curve.to_numpy(dtype=float)
    at = int(np.searchsorted(curve.index.to_numpy(), step, side="right")) - 1  # -1: the log starts later
    line = go.Scatter(
        x=[step, step],
        y=[float(np.nanmin(values)), float(np.nanmax(values))],
        mode="lines",
        line=dict(color=ARCH_COLORS["gmlp"], width=1.5, dash="dot"),
        hoverinfo="skip",
    )
    logged, value = (int(curve.index[at]), float(values[at])) if at >= 0 else (None, None)
    point = go.Scatter(
        x=[logged] if logged is not None else [],
        y=[value] if logged is not None else [],
        mode="markers",
        marker=dict(size=14, color=ARCH_COLORS["gmlp"], line=dict(width=2, color="white")),
        hovertemplate=f"step {logged}: {_text(label)} {value:.4g}<br>(the last evaluation at or before step {step})"
        "<extra></extra>"
        if logged is not None
        else None,
    )
    return [line, point]


def _play_controls(names: Sequence[str], start: int) -> dict:
    """Play/Pause buttons and a slider over the frames ``names`` (``start`` active), one under the other."""
    immediate = dict(mode="immediate", transition=dict(duration=0))
    # Play runs from the frame last played or picked on the slider (from the first at the start or after the last).
    play = dict(immediate, frame=dict(duration=400, redraw=True), fromcurrent=True)
    buttons = dict(
        type="buttons",
        direction="left",
        x=0,
        y=0,
        xanchor="left",
        yanchor="top",
        pad=dict(t=70),
        showactive=False,
        buttons=[
            dict(label="▶ Play", method="animate", args=[None, play]),
            dict(label="❚❚ Pause", method="animate", args=[[None], dict(immediate, frame=dict(duration=0))]),
        ],
    )
    slider = dict(
        active=start,
        x=0,
        len=1,
        y=0,
        yanchor="top",
        pad=dict(t=125),  # under the buttons: side by side they collide on a narrow screen
        currentvalue=dict(prefix="step ", font=dict(size=15, color="#333333")),
        # Beyond a dozen steps the tick labels would run into each other: the current value names the step.
        font=dict(color="rgba(0,0,0,0)") if len(names) > 12 else None,
        steps=[
            dict(label=n, method="animate", args=[[n], dict(immediate, frame=dict(duration=0, redraw=True))])
            for n in names
        ],
    )
    return dict(updatemenus=[buttons], sliders=[slider])


@memo
def finetune_study(
    points: pd.DataFrame, task_labels: dict[str, str], model_labels: dict[str, str], *, title: str = ""
) -> go.Figure:
    """Every run of the finetuning study as a point (one per seed; hollow: trained from scratch) and each cell's
    mean with a bar of +-1 standard deviation, grouped by task (``task_labels``: task -> axis label, in order) and
    coloured by architecture. ``points``: source, arch, task, init, seed, test_metric (0..1)."""
    fig = go.Figure()
    cells = points.groupby(["source", "init"], sort=False)
    keys = sorted(cells.groups, key=lambda k: (list(model_labels).index(k[0]) if k[0] in model_labels else 99, k[1]))
    width = 0.8 / max(1, len(keys))
    for k, (source, init) in enumerate(keys):
        cell = cells.get_group((source, init))
        arch = str(cell["arch"].iloc[0])
        color = ARCH_COLORS.get(arch, "#888888")
        name = _text(model_labels.get(source, source) + (" (from scratch)" if init == "scratch" else ""))
        offset = -0.4 + width * (k + 0.5)
        xs, ys, texts = [], [], []
        for task, group in cell.groupby("task", sort=False):
            if task not in task_labels:
                continue
            base = list(task_labels).index(task) + offset
            values = 100 * group["test_metric"].to_numpy(dtype=float)
            spread = np.linspace(-width * 0.25, width * 0.25, len(values)) if len(values) > 1 else np.zeros(1)
            xs += list(base + spread)
            ys += list(values)
            texts += [f"{name}<br>{_text(task_labels[task])}<br>seed {_text(s)}" for s in group["seed"]]
            mean = float(values.mean())
            sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            fig.add_trace(
                go.Scatter(
                    x=[base],
                    y=[mean],
                    mode="markers",
                    marker=dict(symbol="line-ew", size=18, line=dict(width=3, color=color)),
                    error_y=dict(type="data", array=[sd], color=color, thickness=2, width=6),
                    legendgroup=name,
                    showlegend=False,
                    hovertemplate=f"{name}<br>{_text(task_labels[task])}<br>mean %{{y:.1f}} +- {sd:.1f} "
                    f"({len(values)} seed{'s' if len(values) > 1 else ''})<extra></extra>",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers",
                name=name,
                legendgroup=name,
                marker=dict(
                    size=9,
                    color="white" if init == "scratch" else color,
                    line=dict(color=color, width=2),
                    symbol="circle-open" if init == "scratch" else "circle",
                ),
                text=texts,
                hovertemplate="%{text}<br>test %{y:.1f}<extra></extra>",
            )
        )
    fig.update_xaxes(
        tickmode="array",
        tickvals=list(range(len(task_labels))),
        ticktext=_texts(task_labels.values()),
        range=[-0.5, len(task_labels) - 0.5],
    )
    fig.update_yaxes(title="test accuracy or F1 (%)")
    fig.add_hline(y=50, line=dict(dash="dot", color="#888888"), annotation_text="chance (classification)")
    fig.update_layout(title=_text(title), height=460, legend=LEGEND_BELOW, margin=dict(b=110))
    return fig
