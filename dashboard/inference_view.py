"""Live inference panels: fill-mask for MLM models, and image classification for vision models (the digits, or
any photo for an imported ImageNet model, whose classes are shown by name)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

from dashboard import plots, widgets
from dashboard.context import Lens
from dashboard.image_input import ImageInput, canvas_models, photo_models, vision_task
from dashboard.loaders import Checkpoint, load, per_checkpoint
from dashboard.style import ARCH_COLORS, arch_label, escape_markdown, show_badges
from gmlp_core.inference import ClassifyResult, FillMaskResult, classify_image, fill_mask

EXAMPLES = [
    "The [MASK] statement is used to leave a loop early.",
    "An exception is [MASK] when an error occurs.",
    "Strings are immutable [MASK] of characters.",
    "The value of the [MASK] is returned by the function.",
    "A class may define [MASK] methods, and the [MASK] of an instance is looked up in its class.",
    "If the file does not exist, an [MASK] is raised.",
    # Longer than the zoo's n = 64 word pieces: the page says what the models cut (the [MASK] is read).
    (
        "The import [MASK] is complicated: modules are found by finders, loaded by loaders, cached in a "
        "dictionary, and executed in a fresh namespace, and packages add a search path of their own for the "
        "submodules they contain, which may be spread over several directories, so that a model which reads "
        "only its first sixty-four word pieces never sees the end of this long sentence."
    ),
]


# Under a causal model's panel: why its guesses may ignore the words after the [MASK].
CAUSAL_NOTE = (
    "**Causal model**: it sees only the tokens to the left of each position, so its answer for a [MASK] uses only "
    "the words before it; whatever follows the [MASK] is ignored."
)


def cloze_of(lens: Lens, name: str) -> str | None:
    """The model's cloze-suite score as its metrics.json records it ("8/50": top-5 hits of the sentences)."""
    value = lens.catalog.records.get(name, {}).get("cloze")
    return value if isinstance(value, str) else None


def quality_note(lens: Lens, names: list[str]) -> str:
    """One sentence a class can read before typing: how often each model gets the obvious word (cloze suite)."""
    scores = [(name, cloze_of(lens, name)) for name in names]
    known = [escape_markdown(f"{name} {score}") for name, score in scores if score]
    if not known:
        return ""
    return (
        "How good are these models? On the cloze suite's hand-written Python sentences (`python -m gmlp_core "
        f"cloze`), the accepted word is in the top 5 for: {', '.join(known)}. Small models trained on a CPU: expect "
        "sensible guesses, not always the right one."
    )


def top_line(group: pd.DataFrame) -> str:
    """ "tok (12.3%), tok (4.5%), ...": one [MASK]'s top-k as plain text, best first."""
    ranked = group.sort_values("rank")
    return ", ".join(f"{t} ({p:.1%})" for t, p in zip(ranked["token"], ranked["probability"], strict=True))


@per_checkpoint(max_entries=512, show_spinner=False)
def predict_masks(checkpoint: Checkpoint, text: str, top_k: int) -> FillMaskResult:
    """``fill_mask`` of ``checkpoint`` on ``text`` (cached per text: a rerun, or another student typing the same
    sentence, gets the same table at once; the latency shown is the one measured when it was computed)."""
    loaded = load(checkpoint)
    return fill_mask(loaded.model, loaded.tokenizer, text, top_k=top_k)


@per_checkpoint(max_entries=512, show_spinner=False)
def predict_class(checkpoint: Checkpoint, pixels: np.ndarray) -> ClassifyResult:
    """``classify_image`` of ``checkpoint`` on ``pixels`` (cached per image, like ``predict_masks``)."""
    return classify_image(load(checkpoint).model, torch.from_numpy(pixels))


def fill_mask_panels(lens: Lens, names: list[str], text: str, top_k: int) -> pd.DataFrame:
    """One column per MLM model with its top-k per [MASK] and latency; returns every prediction as a table."""
    text = widgets.text_window(text)
    tables = []
    for col, name in zip(widgets.columns_for(len(names)), names, strict=False):
        with col, widgets.guard(name):
            loaded = lens.load(name)
            result = predict_masks(lens.checkpoint(name), text, top_k)
            st.subheader(escape_markdown(name))
            show_badges(loaded.config)
            if loaded.config.causal:
                st.caption(CAUSAL_NOTE)
            cloze = cloze_of(lens, name)
            st.caption(
                f"{arch_label(loaded.config.arch)} · n = {loaded.config.seq_len} · {result.latency_ms:.1f} ms"
                + (f" · cloze top-5 {escape_markdown(cloze)}" if cloze else "")
            )
            _length_notice(result, loaded.config.seq_len)
            table = result.table
            for mask_index, group in table.groupby("mask_index", sort=True):
                position = int(group["position"].iloc[0])
                fig = plots.probabilities(
                    group,
                    "token",
                    title=f"[MASK] #{mask_index + 1} (position {position})",
                    color=ARCH_COLORS.get(loaded.config.arch),
                )
                widgets.chart(fig, key=f"fill-{name}-{mask_index}")
                st.caption(escape_markdown(f"{name} · [MASK] #{mask_index + 1} top {len(group)}: {top_line(group)}"))
            tables.append(table.assign(model=name, arch=loaded.config.arch, latency_ms=result.latency_ms))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def _length_notice(result: FillMaskResult, seq_len: int) -> None:
    if result.truncated:
        st.warning(
            f"Truncated: the text has {result.n_total} word pieces, the model reads the first {seq_len}. "
            "A [MASK] beyond that is not predicted."
        )
    elif result.n_real < seq_len:
        st.caption(f"{result.n_real} word pieces, padded with {seq_len - result.n_real} [PAD] to n = {seq_len}.")


def show_preview(lens: Lens, names: list[str], image: ImageInput) -> None:
    """What the models see: the 8 x 8 digit, and/or the resized and centre-cropped photo of an ImageNet model."""
    photos, canvases = photo_models(lens, names), canvas_models(lens, names)
    # The titles are text above the charts, not plotly titles: this column is narrow (a quarter of the page) and
    # text wraps where a plotly title would be cut off at a projector's 1024 px.
    if len(photos) + len(canvases) < len(names):
        st.markdown("**What the digit models see** (8 x 8)")
        widgets.chart(plots.digit(image.preview(), height=200), key="infer-preview")
    if canvases:
        cfg = lens.checkpoint(canvases[0]).config
        st.markdown(f"**What the canvas models see** ({cfg.image_size} x {cfg.image_size})")
        widgets.chart(plots.digit(image.view_for(cfg), height=200), key="infer-canvas-preview")
    if photos:
        cfg = lens.checkpoint(photos[0]).config
        st.image(
            image.view_for(cfg),
            caption=f"What {escape_markdown(photos[0])} sees ({cfg.image_size} x {cfg.image_size}, resized and "
            "centre-cropped as recorded)",
            clamp=True,
        )
    st.caption(escape_markdown(image.caption))


def classify_panels(lens: Lens, names: list[str], image: ImageInput) -> pd.DataFrame:
    """One column per vision model with its class probabilities; returns them all as a table."""
    tables = []
    for col, name in zip(widgets.columns_for(len(names)), names, strict=False):
        with col, widgets.guard(name):
            loaded = lens.load(name)
            pixels = image.pixels_for(loaded.config)
            result = predict_class(lens.checkpoint(name), np.ascontiguousarray(pixels.numpy()))
            st.subheader(escape_markdown(name))
            show_badges(loaded.config)
            verdict = ""
            if image.label is not None and result.names is None:
                verdict = " ✓" if result.predicted == image.label else f" ✗ (true {image.label})"
            prediction = escape_markdown(result.label(result.predicted))
            st.metric("Prediction", f"{prediction}{verdict}", help=f"{result.latency_ms:.1f} ms")
            st.caption(f"{arch_label(loaded.config.arch)} · {vision_task(loaded.config)} · {result.latency_ms:.1f} ms")
            top = result.table.head(5)
            if result.names is not None:  # "tiger cat (282)": the name, and the number that tells duplicates apart
                top = top.assign(label=[f"{result.label(c)} ({c})" for c in top["class"]])
            fig = plots.probabilities(
                top,
                "label" if result.names is not None else "class",
                title="Top 5 classes",
                color=ARCH_COLORS.get(loaded.config.arch),
            )
            widgets.chart(fig, key=f"classify-{name}")
            tables.append(result.table.assign(model=name, arch=loaded.config.arch, latency_ms=result.latency_ms))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
