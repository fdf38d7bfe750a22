"""Attributions: which tokens or pixels drove one prediction, per model, with Integrated Gradients' delta."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st
import torch

from dashboard import plots, widgets
from dashboard.analysis_view import Attribution, attribute
from dashboard.context import Lens
from dashboard.image_input import ImageInput
from dashboard.style import arch_label
from gmlp_core.data.tokenizer import encode_for_model

DEFAULT_TEXT = "the [MASK] statement is used to leave a loop early ."
_MASK = re.compile(r"\[\s*mask\s*\]", re.IGNORECASE)
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
        enc = encode_for_model(loaded.tokenizer, text, loaded.config.seq_len)
        if not enc.mask_positions:
            st.warning(f"{name}: no [MASK] within the first {loaded.config.seq_len} word pieces; nothing to explain.")
            continue
        position = enc.mask_positions[min(mask_choice, len(enc.mask_positions) - 1)]
        ids = torch.tensor([enc.input_ids], device=loaded.device)
        with torch.inference_mode():
            logits = loaded.model(input_ids=ids).logits[0, position].float()
        probs = torch.softmax(logits, -1)
        if word:
            pieces = loaded.tokenizer.encode(word, add_special_tokens=False).ids
            if len(pieces) != 1:
                st.warning(
                    f"{name}: '{word}' is {len(pieces)} word pieces in this vocabulary; pick a single-piece word."
                )
                continue
            index = pieces[0]
        else:
            index = int(probs.argmax())
        label = loaded.tokenizer.id_to_token(index) or str(index)
        out.append(
            Target(
                name,
                loaded.config.arch,
                label,
                index,
                float(probs[index]),
                tuple(enc.input_ids),
                enc.tokens,
                enc.n_real,
                position,
            )
        )
    return out


def image_targets(lens: Lens, names: list[str], image: ImageInput, chosen_class: int | None) -> list[Target]:
    """For each vision model: the class to explain (its prediction, or ``chosen_class``)."""
    out = []
    for name in names:
        loaded = lens.load(name)
        pixels = image.pixels_for(loaded.config)
        with torch.inference_mode():
            probs = torch.softmax(loaded.model(pixel_values=pixels.to(loaded.device)).logits[0].float(), -1)
        index = int(probs.argmax()) if chosen_class is None else chosen_class
        out.append(
            Target(name, loaded.config.arch, f"class {index}", index, float(probs[index]), pixels=pixels.numpy())
        )
    return out


def explain(lens: Lens, target: Target, n_steps: int) -> list[Attribution]:
    path = lens.rows(selected_only=False).set_index("name").loc[target.name, "path"]
    return attribute(
        target.name,
        path,
        target=target.index,
        n_steps=n_steps,
        ids=target.ids,
        position=target.position,
        pixels=target.pixels,
    )


def show(target: Target, results: list[Attribution]) -> pd.DataFrame:
    """One model's panel: the explained prediction, each method's scores, and the convergence delta."""
    st.markdown(f"**{target.name}** ({arch_label(target.arch)})")
    # a code span shows any token literally (quotes, ##pieces, markdown characters)
    st.caption(f"explaining `` {target.label} `` (p = {target.probability:.1%})")
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


def mask_count(text: str) -> int:
    """How many [MASK] tokens the text has before any truncation ("[mask]" in any case, as the tokenizer reads it)."""
    return len(_MASK.findall(text))
