"""Attributions: which tokens or pixels drove one prediction, per model, with Integrated Gradients' delta.

Attributions run on a per-session copy of the model: captum's layer methods register forward hooks while
they run, and a hook on the shared model would leak into other sessions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st
import torch

from dashboard import plots, widgets
from dashboard.context import Lens
from dashboard.image_input import ImageInput
from dashboard.loaders import Checkpoint, load, per_checkpoint
from dashboard.style import arch_label, escape_markdown
from gmlp_core.analysis.attribution import Attribution, explain_image, explain_mlm
from gmlp_core.data.images import class_names_of
from gmlp_core.inference import BadInput, classify_image, predict_mask

DEFAULT_TEXT = "the [MASK] statement is used to leave a loop early ."
DELTA_WARN = 0.05  # |delta| relative to the score change above this: use more steps


@dataclass(frozen=True)
class Target:
    """The prediction to explain for one model."""

    name: str
    arch: str
    label: str  # the token or class explained
    index: int  # its vocabulary id or class
    probability: float
    ids: tuple[int, ...] | None = None
    tokens: list[str] | None = None
    n_real: int = 0
    position: int | None = None
    pixels: np.ndarray | None = None


def text_targets(lens: Lens, names: list[str], text: str, mask_choice: int, word: str | None) -> list[Target]:
    """For each MLM model: the [MASK] to explain and the token (its top prediction, or ``word``)."""
    out = []
    for name in names:
        loaded = lens.load(name)
        try:
            p = predict_mask(loaded.model, loaded.tokenizer, text, mask_choice, word)
        except BadInput as err:
            st.warning(f"{escape_markdown(name)}: {escape_markdown(err)}.")
            continue
        ids = tuple(p.input_ids)
        out.append(
            Target(name, loaded.config.arch, p.token, p.token_id, p.probability, ids, p.tokens, p.n_real, p.position)
        )
    return out


def image_targets(lens: Lens, names: list[str], image: ImageInput, chosen_class: int | None) -> list[Target]:
    """For each vision model: the class to explain (its prediction, or ``chosen_class``)."""
    out = []
    for name in names:
        loaded = lens.load(name)
        if chosen_class is not None and chosen_class >= loaded.config.num_classes:
            st.warning(f"{escape_markdown(name)} has {loaded.config.num_classes} classes: no class {chosen_class}.")
            continue
        pixels = image.pixels_for(loaded.config)
        result = classify_image(loaded.model, pixels)
        index = result.predicted if chosen_class is None else chosen_class
        probability = float(result.probabilities[index])
        label = f"class {index}" if result.names is None else f"{result.label(index)} (class {index})"
        out.append(Target(name, loaded.config.arch, label, index, probability, pixels=pixels.numpy()))
    return out


def class_options(lens: Lens, names: list[str]) -> tuple[list[int], Callable[[object], str]]:
    """The classes one may ask to explain (those of the largest model) and how to show one (its name if known)."""
    configs = [lens.checkpoint(n).config for n in names]
    labels = next((found for c in configs if (found := class_names_of(c)) is not None), None)

    def show(choice: object) -> str:
        if isinstance(choice, str) or labels is None or not 0 <= int(choice) < len(labels):
            return str(choice)
        return f"{choice}: {labels[int(choice)].split(',')[0]}"

    return list(range(max(c.num_classes for c in configs))), show


@per_checkpoint(st.cache_resource, scope="session", max_entries=4, show_spinner="Preparing a private copy...")
def _private(checkpoint: Checkpoint) -> torch.nn.Module:
    """A copy of the model owned by this session (for methods that hook into a model while they run)."""
    return copy.deepcopy(load(checkpoint).model)


@per_checkpoint(max_entries=64, show_spinner="Computing attributions...")
def attribute(
    checkpoint: Checkpoint,
    *,
    target: int,
    n_steps: int,
    ids: tuple[int, ...] | None = None,
    position: int | None = None,
    pixels: np.ndarray | None = None,
) -> list[Attribution]:
    """Integrated Gradients and a second method for one prediction of ``checkpoint`` (cached per input)."""
    model = _private(checkpoint)  # captum hooks into the model while it runs: never the shared one
    if ids is not None:
        return explain_mlm(model, torch.tensor(ids), position, target, n_steps=n_steps)
    return explain_image(model, torch.from_numpy(pixels), target, n_steps=n_steps)


def explain(lens: Lens, target: Target, n_steps: int) -> list[Attribution]:
    """The attributions of ``target`` (cached per checkpoint and input)."""
    return attribute(
        lens.checkpoint(target.name),
        target=target.index,
        n_steps=n_steps,
        ids=target.ids,
        position=target.position,
        pixels=target.pixels,
    )


def show(target: Target, results: list[Attribution]) -> pd.DataFrame:
    """One model's panel: the explained prediction, each method's scores, and the convergence delta."""
    st.markdown(f"**{escape_markdown(target.name)}** ({arch_label(target.arch)})")
    # escaped, not a code span: a token or class name may hold backticks, which would end the span
    st.caption(f"explaining {escape_markdown(target.label)} (p = {target.probability:.1%})")
    rows = []
    for r in results:
        if r.delta is not None:
            st.metric(
                f"{r.method}: convergence delta",
                f"{r.delta:+.2e}",
                help="Sum of attributions minus the score change from the baseline: near 0 is good.",
            )
            if r.score_change is not None:
                st.caption(
                    f"attributions add up to {float(np.sum(r.scores)):+.4f}; the score (log-probability) moved "
                    f"{r.score_change:+.4f} from the baseline"
                )
            if abs(r.delta) > DELTA_WARN * max(1.0, abs(r.score_change or 0.0)):
                st.warning(f"|delta| = {abs(r.delta):.3f} is large: increase the number of integration steps.")
        if target.tokens is not None:
            k = target.n_real
            scores = r.scores[:k]
            fig = plots.token_scores(target.tokens[:k], scores, title=r.method, value=r.method)
            rows.append(
                pd.DataFrame(
                    {
                        "model": target.name,
                        "method": r.method,
                        "position": range(k),
                        "token": target.tokens[:k],
                        "attribution": scores,
                    }
                )
            )
        else:
            fig = plots.image_grid([r.scores], [r.method], cols=1, value=r.method, panel_height=330)
            i, j = np.indices(r.scores.shape)
            rows.append(
                pd.DataFrame(
                    {
                        "model": target.name,
                        "method": r.method,
                        "row": i.ravel(),
                        "column": j.ravel(),
                        "attribution": r.scores.ravel(),
                    }
                )
            )
        widgets.chart(fig, key=f"attr-{target.name}-{r.method}")
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
