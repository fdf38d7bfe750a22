"""W versus attention: one input through a Transformer, an aMLP and a gMLP, mixing maps side by side."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from dashboard import plots, widgets
from dashboard.bytecache import Recent
from dashboard.context import Lens
from dashboard.image_input import ImageInput
from dashboard.loaders import Checkpoint, load, per_checkpoint
from dashboard.style import arch_label, escape_markdown, show_badges
from gmlp_core.analysis.influence import (
    estimate_error,
    influence_gflop,
    influence_plan,
    layer_influence,
    token_influence,
)
from gmlp_core.analysis.mixing import MixingReport, mixing_report
from gmlp_core.inference import encode_text
from gmlp_core.models.archs import HEADS, side_by_side

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


def candidates(lens: Lens, task: str, arch: str) -> list[str]:
    """The picked models of ``arch`` for ``task`` that mix tokens (a gMLP with identity gating has nothing to
    compare); the first is the page's default."""
    return lens.names(task, where=lambda config: config.arch == arch and config.mixes_tokens)


def arch_order(lens: Lens, task: str) -> list[str]:
    """The architectures side by side (``archs.side_by_side``) that some loadable model of ``task`` in the folder
    has, picked or not: a column each, so a column can say "pick one in the sidebar"."""
    present = {c.config.arch for c in lens.checkpoints(task, selected_only=False)}
    return [arch for arch in side_by_side() if arch in present]


def default_models(lens: Lens, task: str = "mlm") -> dict[str, str]:
    """What ``pick_models`` picks before anyone touches it: the first candidate of each architecture."""
    return {arch: names[0] for arch in arch_order(lens, task) if (names := candidates(lens, task, arch))}


def pick_models(lens: Lens, task: str) -> dict[str, str]:
    """One picked model per architecture for ``task`` (a selectbox when several are picked)."""
    chosen = {}
    order = arch_order(lens, task)
    if not order:
        return chosen
    cols = st.columns(len(order))
    for col, arch in zip(cols, order, strict=True):
        names = candidates(lens, task, arch)
        if not names:
            col.caption(f"No {arch_label(arch)} {task} model picked in the sidebar.")
            continue
        chosen[arch] = col.selectbox(arch_label(arch), names, format_func=lens.label, key=f"wva-{task}-{arch}")
    return chosen


def prepare_text(lens: Lens, chosen: dict[str, str], text: str) -> list[Prepared]:
    """Encode ``text`` for each model: a fixed-length model (gMLP, aMLP: n x n token mixing) reads exactly n tokens
    (padded), the Transformer the real ones."""
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
        ids = enc.input_ids if loaded.config.arch_spec.fixed_length else enc.input_ids[: enc.n_real]
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
    """Every model's maps for this input, with a progress bar while they are computed (cached per input: a
    rerun finds them at once)."""
    bar = st.progress(0.0, text="Computing the maps...")
    out = {}
    for i, p in enumerate(prepared):
        bar.progress(i / len(prepared), text=f"Computing the maps: {p.name} ({i + 1} of {len(prepared)})")
        out[p.name] = mixing(lens.checkpoint(p.name), p.n_show, p.ids, p.pixels)
    bar.empty()
    return out


@per_checkpoint(max_entries=64, show_spinner="Computing the exact token influence...")
def exact_influence(
    checkpoint: Checkpoint, n_show: int, ids: tuple[int, ...] | None = None, pixels: np.ndarray | None = None
) -> np.ndarray:
    """The exact token-influence map (every row of every Jacobian block, float32) for the ``n_show`` positions
    shown: the reference an estimate is measured against (seconds per demo model)."""
    model = load(checkpoint).model
    m = token_influence(
        model,
        None if ids is None else torch.tensor(ids),
        None if pixels is None else torch.from_numpy(pixels),
        rows=range(n_show),
        exact=True,
    )
    return m.numpy()


# The last measured error of each checkpoint's estimated influence, and on which input: filled whenever an exact
# map is computed (the start-up warm-up does it for the default sentence), read by every session's caption.
# At most 256 of them (one a checkpoint file version): bounded for a server that runs for weeks.
MEASURED: Recent = Recent(max_entries=256)


def measure(lens: Lens, p: Prepared, report: MixingReport, where: str) -> dict[str, float]:
    """The estimate's error against the exact map on this input (computing the exact map, cached), remembered
    for the captions as measured on ``where``."""
    checkpoint = lens.checkpoint(p.name)
    exact = exact_influence(checkpoint, p.n_show, p.ids, p.pixels)
    error = estimate_error(
        torch.from_numpy(_crop(report.influence, p.n_show)), torch.from_numpy(exact[: p.n_show, : p.n_show])
    )
    MEASURED[(checkpoint.name, checkpoint.path, checkpoint.signature)] = (error, where)
    return error


def influence_caption(lens: Lens, p: Prepared, report: MixingReport) -> str:
    """How this model's token influence was computed, and how far the estimate is from the exact map."""
    if report.influence_method == "exact":
        return "exact"
    checkpoint = lens.checkpoint(p.name)
    measured = MEASURED.get((checkpoint.name, checkpoint.path, checkpoint.signature))
    text = report.influence_method
    if measured is None:
        return text + "; its error is not measured yet (**Exact maps** computes it)"
    error, where = measured
    return (
        f"{text}; against the exact map on {where}: {error['relative_error']:.1%} relative error (Frobenius), "
        f"the largest entry off by {error['max_error']:.1%} of the map's maximum"
    )


def _measure_default(lens: Lens, p: Prepared) -> None:
    report = mixing(lens.checkpoint(p.name), p.n_show, p.ids, p.pixels)
    if report.influence_method != "exact":
        measure(lens, p, report, "the default sentence")


def warm_jobs(lens: Lens) -> list[tuple[str, Callable[[], object]]]:
    """The default view's work (the default sentence through each default model: maps and layer 0's effective
    mixing), for the start-up warm-up."""
    chosen = default_models(lens, "mlm")
    if not chosen:
        return []
    jobs: list[tuple[str, Callable[[], object]]] = []
    for p in prepare_text(lens, chosen, DEFAULT_TEXT):
        checkpoint = lens.checkpoint(p.name)
        jobs.append((f"W versus attention: {p.name}", functools.partial(mixing, checkpoint, p.n_show, p.ids, p.pixels)))
        jobs.append(
            (f"effective mixing: {p.name}", functools.partial(layer_mixing, checkpoint, 0, p.n_show, p.ids, p.pixels))
        )
    return jobs


def error_jobs(lens: Lens) -> list[tuple[str, Callable[[], object]]]:
    """The influence estimate's error against the exact map on the default sentence, per default model (the
    caption under the maps shows it), for the warm-up."""
    chosen = default_models(lens, "mlm")
    prepared = prepare_text(lens, chosen, DEFAULT_TEXT) if chosen else []
    return [(f"influence error: {p.name}", functools.partial(_measure_default, lens, p)) for p in prepared]


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
    narrow screen: attention heads, tiny attention next to W, W next to the gate, or (no attention, no W: an
    MLP-Mixer's token MLP) the effective mixing alone, with what mixes its tokens."""
    k, labels, large = p.n_show, p.labels, widgets.lecturing()
    config = lens.checkpoint(p.name).config
    layer = min(layer, config.n_layers - 1)
    st.markdown(f"#### {arch_label(p.arch)} · {escape_markdown(p.name)} · layer {layer}")
    show_badges(config)
    if config.arch_spec.attention == HEADS:
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
    elif config.has_attention and config.has_spatial_weights:
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
    elif config.has_spatial_weights:
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
    else:
        widgets.chart_row([_effective(lens, p, layer, large)], key=f"wva-mix-{p.name}")
        st.caption(
            f"In the {arch_label(p.arch)}, {config.arch_spec.about} It has no attention map and no W to draw: its "
            "mixing on this input is what there is to compare. " + EFFECTIVE_CAPTION
        )


EFFECTIVE_CAPTION = (
    "**Effective mixing**: this layer's token influence on this input, ||d u_i / d x_j|| for the block's update u "
    "(its output minus the residual) and its input x: how much position i's update depends on position j. For "
    "gMLP it is nonzero only where W is, and the gate makes it input-dependent; for the Transformer it is the "
    "attention layer's mixing, so the rows compare like with like. Colours go up to the largest "
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
