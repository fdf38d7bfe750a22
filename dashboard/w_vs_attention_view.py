"""W versus attention: one input through a Transformer, an aMLP and a gMLP, mixing maps side by side."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from dashboard import plots, widgets
from dashboard.context import Lens
from dashboard.image_input import ImageInput
from dashboard.loaders import Checkpoint, load, per_checkpoint
from dashboard.style import arch_label, escape_markdown, model_labels, show_badges
from gmlp_core.analysis.influence import influence_gflop, influence_plan, layer_influence
from gmlp_core.analysis.mixing import MixingReport, mixing_report
from gmlp_core.inference import encode_text

ARCH_ORDER = ("transformer", "amlp", "gmlp")
DEFAULT_TEXT = "the value of the expression is returned by the function when the call ends ."


@dataclass(frozen=True)
class Prepared:
    """One model's view of the input: token labels (None for images) and what to feed it."""

    name: str
    arch: str
    labels: list[str] | None
    n_show: int  # positions shown (real tokens; all patches for images)
    ids: tuple[int, ...] | None = None
    pixels: np.ndarray | None = None


def pick_models(lens: Lens, task: str) -> dict[str, str]:
    """One picked model per architecture for ``task`` (a selectbox when several are picked)."""
    rows = lens.rows(task)
    chosen = {}
    cols = st.columns(len(ARCH_ORDER))
    for col, arch in zip(cols, ARCH_ORDER, strict=True):
        # a gMLP without a gate (identity gating) mixes no tokens: nothing to compare
        names = rows.loc[(rows["arch"] == arch) & (rows["gating"] != "identity"), "name"].tolist() if len(rows) else []
        if not names:
            col.caption(f"No {arch_label(arch)} {task} model picked in the sidebar.")
            continue
        chosen[arch] = col.selectbox(arch_label(arch), names, format_func=model_labels(rows), key=f"wva-{task}-{arch}")
    return chosen


def prepare_text(lens: Lens, chosen: dict[str, str], text: str) -> list[Prepared]:
    """Encode ``text`` for each model: gMLP and aMLP need exactly n tokens (padded), the Transformer gets the real ones."""
    out = []
    for arch, name in chosen.items():
        loaded = lens.load(name)
        enc = encode_text(loaded.tokenizer, text, loaded.config.seq_len)
        if enc.n_real == 0:
            continue
        if enc.truncated:  # models have their own n: a long sentence can be cut for one model and not another
            st.warning(
                f"{escape_markdown(name)} reads only the first {loaded.config.seq_len} of the sentence's "
                f"{enc.n_total} word pieces (its n); the rest is not shown for it."
            )
        ids = enc.input_ids if arch != "transformer" else enc.input_ids[: enc.n_real]
        out.append(Prepared(name, arch, enc.tokens, enc.n_real, ids=tuple(ids)))
    return out


def prepare_image(lens: Lens, chosen: dict[str, str], image: ImageInput) -> list[Prepared]:
    out = []
    for arch, name in chosen.items():
        cfg = lens.load(name).config
        pixels = image.pixels_for(cfg).numpy()
        out.append(Prepared(name, arch, None, cfg.seq_len, pixels=pixels))
    return out


# Maps whose token influence costs at most this much backward-pass work (about a second on a 2-core CPU: every
# demo-zoo model) are computed as soon as the input is there; bigger models (an imported ImageNet gMLP) wait for
# the button, so a slider move never starts ten seconds of work by surprise.
AUTO_GFLOP = 200.0


def quick(lens: Lens, prepared: list[Prepared]) -> bool:
    """Whether every model's maps for this input are cheap enough to compute without asking."""
    return all(influence_gflop(lens.load(p.name).config, p.n_show) <= AUTO_GFLOP for p in prepared)


def compute(lens: Lens, prepared: list[Prepared]) -> dict[str, MixingReport]:
    return {p.name: mixing(lens.checkpoint(p.name), p.n_show, p.ids, p.pixels) for p in prepared}


@per_checkpoint(max_entries=64, show_spinner="Computing attention, gates and token influence...")
def mixing(
    checkpoint: Checkpoint, n_show: int, ids: tuple[int, ...] | None = None, pixels: np.ndarray | None = None
) -> MixingReport:
    """Attention, W, gates and token influence of ``checkpoint`` on one input (cached per input); influence
    only for the ``n_show`` positions shown (a padded sentence's real tokens)."""
    model = load(checkpoint).model
    return mixing_report(
        model,
        None if ids is None else torch.tensor(ids),
        None if pixels is None else torch.from_numpy(pixels),
        rows=range(n_show),
    )


@per_checkpoint(max_entries=256, show_spinner="Measuring this layer's effective mixing...")
def layer_mixing(
    checkpoint: Checkpoint,
    layer: int,
    n_show: int,
    ids: tuple[int, ...] | None = None,
    pixels: np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """``layer_influence`` of ``checkpoint`` at ``layer`` on one input, for the ``n_show`` positions shown
    (the real tokens of a padded sentence), and a note when a big model's map is estimated or cut to a budget."""
    model = load(checkpoint).model
    plan = influence_plan(model.config, blocks=1)
    rows = [r for r in (plan.rows or range(n_show)) if r < n_show] or list(range(n_show))
    m = layer_influence(
        model,
        layer,
        None if ids is None else torch.tensor(ids),
        None if pixels is None else torch.from_numpy(pixels),
        rows=rows,
        n_probes=plan.n_probes,
    )
    return m.numpy(), plan.note


def _crop(m: np.ndarray, k: int) -> np.ndarray:
    return m[:k, :k] if m.ndim == 2 else m[..., :k, :k]


def show_model(lens: Lens, p: Prepared, data: MixingReport, layer: int) -> None:
    """The architecture's own token mixing at ``layer``, one section per model, its panels wrapping on a
    narrow screen: attention heads, tiny attention next to W, or W next to the gate."""
    k, labels, large = p.n_show, p.labels, widgets.lecturing()
    n_layers = max(len(data.attentions), len(data.weights))
    layer = min(layer, n_layers - 1)
    st.markdown(f"#### {arch_label(p.arch)} · {escape_markdown(p.name)} · layer {layer}")
    show_badges(lens.checkpoint(p.name).config)
    if p.arch == "transformer":
        heads = data.attentions[layer]
        figs = plots.matrices(
            [_crop(h, k) for h in heads],
            [f"head {i}" for i in range(len(heads))],
            labels,
            value="attention",
            diverging=False,
            large=large,
        )
        figs.append(_effective(lens, p, layer, large))
        widgets.chart_row(figs, key=f"wva-attn-{p.name}")
        st.caption(
            "Attention: recomputed for every input. Each row is a distribution over the inputs (sums to one). "
            + EFFECTIVE_CAPTION
        )
    elif p.arch == "amlp":
        figs = [
            plots.matrix(
                _crop(data.attentions[layer][0], k),
                labels,
                title="tiny attention (input-dependent)",
                value="attention",
                diverging=False,
                large=large,
            ),
            plots.matrix(_crop(data.weights[layer], k), labels, title="W (static)", large=large),
            _effective(lens, p, layer, large),
        ]
        widgets.chart_row(figs, key=f"wva-amlp-{p.name}")
        st.caption(
            "aMLP adds a single tiny attention head inside the gate, next to its static W. Compare its pattern with "
            "the Transformer's heads above and with W beside it. " + EFFECTIVE_CAPTION
        )
    else:
        figs = [
            plots.matrix(_crop(data.weights[layer], k), labels, title="W (static)", large=large),
            plots.gate(data.gates[layer][:k], labels, title="gate W·LN(Z2)+b (input-dependent)", large=large),
            _effective(lens, p, layer, large),
        ]
        widgets.chart_row(figs, key=f"wva-w-{p.name}")
        st.caption(
            "W is the same for every input; the gate W·LN(Z2)+b multiplies Z1 and changes with the input. "
            + EFFECTIVE_CAPTION
        )


EFFECTIVE_CAPTION = (
    "**Effective mixing**: this layer's token influence on this input, ||d u_i / d x_j|| for the block's update u "
    "(its output minus the residual) and its input x: how much position i's update depends on position j. For "
    "gMLP it is nonzero only where W is, and the gate makes it input-dependent; for the Transformer it is the "
    "attention layer's mixing, so the three rows compare like with like. Colours go up to the largest "
    "off-diagonal value, so the diagonal (each position's own, non-mixing path) saturates; hover for its value."
)


def _effective(lens: Lens, p: Prepared, layer: int, large: bool) -> go.Figure:
    """The per-input mixing panel of ``p`` at ``layer`` (``layer_mixing``), titled with how it was computed."""
    m, note = layer_mixing(lens.checkpoint(p.name), layer, p.n_show, p.ids, p.pixels)
    title = "effective mixing (this input)" + (" (estimated)" if note else "")
    m = _crop(m, p.n_show)
    off = m.copy()
    np.fill_diagonal(off, np.nan)
    top = float(np.nanmax(off)) if np.isfinite(off).any() else None
    # coloured up to the largest off-diagonal entry: the mixing shows, the diagonal (own path) saturates
    return plots.matrix(
        m, p.labels, title=title, value="influence", diverging=False, large=large, zmax=top if top else None
    )


def influence_table(prepared: list[Prepared], results: dict[str, MixingReport]) -> pd.DataFrame:
    """Token influence of every model in one long table (model, output position, input position, influence)."""
    frames = []
    for p in prepared:
        m = _crop(results[p.name].influence, p.n_show)
        i, j = np.indices(m.shape)
        frames.append(
            pd.DataFrame(
                {"model": p.name, "arch": p.arch, "output": i.ravel(), "input": j.ravel(), "influence": m.ravel()}
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
