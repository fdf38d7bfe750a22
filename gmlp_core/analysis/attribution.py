"""Attributions with captum: which input tokens or pixels drove one prediction.

Two methods per task, with one return type (:class:`Attribution`):

- Integrated Gradients (Sundararajan et al. 2017). Token ids have no gradient, so for MLM it runs on
  the output of the token embedding (``model.embed.token``, captum's ``LayerIntegratedGradients``),
  from a baseline where every real token is [PAD] (or [MASK]) to the input, and the per-token score
  is the sum over the embedding dimension. For vision it runs on ``pixel_values`` from a black image
  (the digits' background). ``delta`` is captum's convergence delta: the sum of the attributions
  minus the change of the explained score between baseline and input (0 for an exact integral; more
  ``n_steps`` shrink it).
- Gradient x Input on the same layer (``LayerGradientXActivation``) or pixels (``InputXGradient``):
  one backward pass, no baseline, no delta.

The explained score is, by default, the log-probability of the target token or class (``score`` may be
"logit" or "prob" instead). For MLM the vocabulary is projected at the explained position only.

Side effects: captum's layer methods register forward hooks on ``model.embed.token`` while they run and
remove them afterwards (also on error), and no parameter gradients are kept. A model shared between
threads (e.g. a Streamlit ``cache_resource`` model) would see those hooks during the run: use a
private copy for concurrent use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from captum.attr import InputXGradient, IntegratedGradients, LayerGradientXActivation, LayerIntegratedGradients
from tokenizers import Tokenizer
from torch import Tensor, nn

from gmlp_core.data.images import black_pixels
from gmlp_core.data.tokenizer import MASK_ID, PAD_ID, encode_for_model
from gmlp_core.limits import estimate_memory
from gmlp_core.models.config import ModelConfig

__all__ = [
    "Attribution",
    "explain_image",
    "explain_mlm",
    "gradient_x_input_image",
    "gradient_x_input_mlm",
    "integrated_gradients_image",
    "integrated_gradients_mlm",
]

SCORES = ("log_prob", "logit", "prob")
BATCH_ACTIVATION_BYTES = 1e9  # what the images of one Integrated Gradients batch may hold for the backward pass


def image_batch_size(config: ModelConfig, max_batch: int = 16) -> int:
    """Images per forward/backward batch: ``max_batch``, fewer when one image's activations are large."""
    per_image = 2 * estimate_memory(config)["activations"]  # saved for backward: about twice the forward's
    return int(max(1, min(max_batch, BATCH_ACTIVATION_BYTES // max(per_image, 1.0))))


@dataclass(frozen=True)
class Attribution:
    """One method's attribution of one prediction.

    ``scores`` is ``(L,)`` per token position or ``(H, W)`` per pixel (summed over channels); ``table``
    the same in long form: (position, token, attribution) or (row, column, attribution).
    """

    method: str
    scores: np.ndarray
    delta: float | None  # Integrated Gradients' convergence delta; None for one-step methods
    score_change: float | None  # f(input) - f(baseline) of the explained score (Integrated Gradients)
    table: pd.DataFrame = field(repr=False)


def _score_fn(logits: Tensor, score: str) -> Tensor:
    if score == "log_prob":
        return logits.float().log_softmax(-1)
    if score == "prob":
        return logits.float().softmax(-1)
    return logits.float()


def _check_score(score: str) -> None:
    if score not in SCORES:
        raise ValueError(f"score={score!r}; expected one of {', '.join(SCORES)}")


def _mlm_ids(model: nn.Module, inputs: str | Tensor | Sequence[int], tokenizer: Tokenizer | None) -> Tensor:
    cfg = model.config
    if not cfg.is_text:
        raise ValueError("this is a vision model: use integrated_gradients_image / explain_image")
    if not cfg.spec.fill_mask:
        raise ValueError(f"this is {cfg.spec.noun}: the MLM attributions explain a masked-word prediction")
    if isinstance(inputs, str):
        if tokenizer is None:
            raise ValueError("pass the tokenizer to explain a text (or pass token ids)")
        inputs = encode_for_model(tokenizer, inputs, cfg.seq_len).input_ids
    ids = torch.as_tensor(inputs, dtype=torch.long, device=next(model.parameters()).device)
    ids = ids[None] if ids.dim() == 1 else ids
    if ids.dim() != 2 or ids.shape[0] != 1:
        raise ValueError(f"expected one sequence of token ids, got shape {tuple(ids.shape)}")
    return ids


def _mlm_forward(model: nn.Module, position: int, score: str) -> Callable[[Tensor], Tensor]:
    def forward(ids: Tensor) -> Tensor:  # (B, L) -> (B, vocab): the score of every token at ``position``
        hidden = model.trunk(input_ids=ids).last_hidden_state[:, position]  # (B, d_model)
        return _score_fn(model.decode(hidden), score)  # only this position is projected onto the vocabulary

    return forward


def _check_position(ids: Tensor, position: int, target: int, vocab: int) -> None:
    if not 0 <= position < ids.shape[1]:
        raise ValueError(f"mask_position={position} is outside the {ids.shape[1]} positions")
    if not 0 <= target < vocab:
        raise ValueError(f"target token id {target} is outside the vocabulary (size {vocab})")


def _token_table(scores: np.ndarray, ids: Tensor, tokenizer: Tokenizer | None) -> pd.DataFrame:
    id_list = ids[0].tolist()
    tokens = [(tokenizer.id_to_token(i) if tokenizer is not None else None) or str(i) for i in id_list]
    return pd.DataFrame({"position": range(len(id_list)), "token": tokens, "token_id": id_list, "attribution": scores})


def _baseline_ids(ids: Tensor, position: int, baseline: str) -> Tensor:
    """Every real token replaced by [PAD] or [MASK]; padding and the explained position stay as they are."""
    if baseline not in ("pad", "mask"):
        raise ValueError(f"baseline={baseline!r}; expected 'pad' or 'mask'")
    base = ids.clone()
    keep = ids == PAD_ID
    keep[:, position] = True
    base[~keep] = PAD_ID if baseline == "pad" else MASK_ID
    return base


def integrated_gradients_mlm(
    model: nn.Module,
    inputs: str | Tensor | Sequence[int],
    mask_position: int,
    target_token_id: int,
    *,
    tokenizer: Tokenizer | None = None,
    baseline: str = "pad",
    n_steps: int = 32,
    internal_batch_size: int = 16,
    score: str = "log_prob",
) -> Attribution:
    """Integrated Gradients of the ``score`` of ``target_token_id`` at ``mask_position``, per input token.

    ``inputs`` is a text (with ``tokenizer``) or the model's token ids (1, L). The integral runs on the
    token-embedding output from the ``baseline`` ids ([PAD] or [MASK] for every real token).
    """
    _check_score(score)
    ids = _mlm_ids(model, inputs, tokenizer)
    _check_position(ids, mask_position, target_token_id, model.config.vocab_size)
    base = _baseline_ids(ids, mask_position, baseline)
    forward = _mlm_forward(model, mask_position, score)
    lig = LayerIntegratedGradients(forward, model.embed.token)
    with torch.enable_grad():
        attr, delta = lig.attribute(
            ids,
            baselines=base,
            target=int(target_token_id),
            n_steps=n_steps,
            internal_batch_size=internal_batch_size,
            return_convergence_delta=True,
        )
        with torch.no_grad():
            change = forward(ids)[0, target_token_id] - forward(base)[0, target_token_id]
    scores = attr[0].sum(-1).detach().float().cpu().numpy()  # (L,)
    return Attribution(
        "Integrated Gradients", scores, float(delta.sum()), float(change), _token_table(scores, ids, tokenizer)
    )


def gradient_x_input_mlm(
    model: nn.Module,
    inputs: str | Tensor | Sequence[int],
    mask_position: int,
    target_token_id: int,
    *,
    tokenizer: Tokenizer | None = None,
    score: str = "log_prob",
) -> Attribution:
    """Gradient x token embedding of the ``score`` of ``target_token_id`` at ``mask_position``, summed per token."""
    _check_score(score)
    ids = _mlm_ids(model, inputs, tokenizer)
    _check_position(ids, mask_position, target_token_id, model.config.vocab_size)
    method = LayerGradientXActivation(_mlm_forward(model, mask_position, score), model.embed.token)
    with torch.enable_grad():
        attr = method.attribute(ids, target=int(target_token_id))
    scores = attr[0].sum(-1).detach().float().cpu().numpy()
    return Attribution("Gradient x Input", scores, None, None, _token_table(scores, ids, tokenizer))


def explain_mlm(
    model: nn.Module,
    inputs: str | Tensor | Sequence[int],
    mask_position: int,
    target_token_id: int,
    *,
    tokenizer: Tokenizer | None = None,
    n_steps: int = 32,
    internal_batch_size: int = 16,
    score: str = "log_prob",
) -> list[Attribution]:
    """Integrated Gradients ([PAD] baseline) and Gradient x Input for one masked-token prediction."""
    common = dict(tokenizer=tokenizer, score=score)
    return [
        integrated_gradients_mlm(
            model,
            inputs,
            mask_position,
            target_token_id,
            n_steps=n_steps,
            internal_batch_size=internal_batch_size,
            **common,
        ),
        gradient_x_input_mlm(model, inputs, mask_position, target_token_id, **common),
    ]


def _pixels(model: nn.Module, pixel_values: Tensor | np.ndarray, target: int) -> Tensor:
    cfg = model.config
    if cfg.is_text:
        raise ValueError("this is a text model: use integrated_gradients_mlm / explain_mlm")
    param = next(model.parameters())
    x = torch.as_tensor(pixel_values).to(device=param.device, dtype=param.dtype)
    x = x[None] if x.dim() == 3 else x
    expected = (1, cfg.in_channels, cfg.image_size, cfg.image_size)
    if tuple(x.shape) != expected:
        raise ValueError(f"expected one image of shape {expected}, got {tuple(x.shape)}")
    if not 0 <= target < cfg.num_classes:
        raise ValueError(f"target class {target} is outside 0..{cfg.num_classes - 1}")
    return x


def _vision_forward(model: nn.Module, score: str) -> Callable[[Tensor], Tensor]:
    return lambda x: _score_fn(model(pixel_values=x).logits, score)  # (B, classes)


def _pixel_table(scores: np.ndarray) -> pd.DataFrame:
    i, j = np.indices(scores.shape)
    return pd.DataFrame({"row": i.ravel(), "column": j.ravel(), "attribution": scores.ravel()})


def integrated_gradients_image(
    model: nn.Module,
    pixel_values: Tensor | np.ndarray,
    target: int,
    *,
    baseline: float | None = None,
    n_steps: int = 32,
    internal_batch_size: int | None = None,
    score: str = "log_prob",
) -> Attribution:
    """Integrated Gradients of the ``score`` of class ``target`` per pixel ``(H, W)`` from a constant image.

    ``baseline`` None is a black image in the model's input convention (0, or ``-mean / std`` for a model
    whose preprocessing normalises); ``internal_batch_size`` None fits the model's size (16 for small models,
    a few images at a time for an ImageNet gMLP, so the integral's activations stay near 1 GB)."""
    _check_score(score)
    x = _pixels(model, pixel_values, target)
    if baseline is None:
        base = black_pixels(model.config).to(x).expand_as(x).clone()
    else:
        base = torch.full_like(x, float(baseline))
    internal_batch_size = internal_batch_size or image_batch_size(model.config)
    forward = _vision_forward(model, score)
    with torch.enable_grad():
        attr, delta = IntegratedGradients(forward).attribute(
            x,
            baselines=base,
            target=int(target),
            n_steps=n_steps,
            internal_batch_size=internal_batch_size,
            return_convergence_delta=True,
        )
    with torch.no_grad():
        change = forward(x)[0, target] - forward(base)[0, target]
    scores = attr[0].sum(0).detach().float().cpu().numpy()  # (H, W)
    return Attribution("Integrated Gradients", scores, float(delta.sum()), float(change), _pixel_table(scores))


def gradient_x_input_image(
    model: nn.Module, pixel_values: Tensor | np.ndarray, target: int, *, score: str = "log_prob"
) -> Attribution:
    """Gradient x pixel value of the ``score`` of class ``target``, summed over channels: ``(H, W)``."""
    _check_score(score)
    x = _pixels(model, pixel_values, target)
    with torch.enable_grad():
        attr = InputXGradient(_vision_forward(model, score)).attribute(x.clone().requires_grad_(True), target=target)
    scores = attr[0].sum(0).detach().float().cpu().numpy()
    return Attribution("Gradient x Input", scores, None, None, _pixel_table(scores))


def explain_image(
    model: nn.Module,
    pixel_values: Tensor | np.ndarray,
    target: int,
    *,
    n_steps: int = 32,
    internal_batch_size: int | None = None,
    score: str = "log_prob",
) -> list[Attribution]:
    """Integrated Gradients (black baseline) and Gradient x Input for one image classification."""
    return [
        integrated_gradients_image(
            model, pixel_values, target, n_steps=n_steps, internal_batch_size=internal_batch_size, score=score
        ),
        gradient_x_input_image(model, pixel_values, target, score=score),
    ]
