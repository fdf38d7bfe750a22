"""Inference helpers for the dashboard and scripts: fill-mask for MLM models, classification for vision models.

Every typed text reaches a model through ``encode_text`` (the one place with the length limit and the
cleaning of characters the tokenizer cannot take): ``fill_mask``, ``predict_mask`` (the prediction an
attribution explains) and the dashboard's other text inputs.

Both are pure functions of ``(model, input)``: they register no hooks, never call ``.eval()`` or
``.to()`` on the model and never change its parameters, so one model can be shared by every user of
the app. Put the model in ``eval()`` once when loading it (a model left in training mode runs its
dropout, which is logged as a warning).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tokenizers import Tokenizer
from torch import Tensor, nn

from gmlp_core.data.images import class_names_of
from gmlp_core.data.tokenizer import MASK_ID, EncodedText, count_masks, encode_for_model, encode_ids
from gmlp_core.models.config import ModelConfig
from gmlp_core.models.model import IGNORE_INDEX

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 1_000_000  # longer text is refused before tokenising (the model reads at most seq_len pieces)
MAX_TOP_K = 100


class BadInput(ValueError):
    """An input a user typed or uploaded that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class FillMaskResult:
    """The top-k predictions for every [MASK] of one text.

    ``table`` has one row per (mask, rank): ``mask_index`` (0 for the first [MASK]), ``position`` (its
    index among the model's ``seq_len`` inputs), ``rank`` (1 = best), ``token``, ``token_id`` and
    ``probability`` (softmax over the whole vocabulary).
    """

    tokens: list[str]  # the seq_len word pieces the model read, "[PAD]" for padding
    input_ids: list[int]  # length seq_len
    mask_positions: list[int]  # positions of the [MASK] tokens that were predicted (within seq_len)
    truncated: bool  # the text had more than seq_len word pieces; the rest was not read
    n_real: int  # word pieces read (before padding)
    n_total: int  # word pieces in the whole text
    n_masks_dropped: int  # [MASK] tokens lost to truncation
    latency_ms: float  # the forward pass and the softmax, in milliseconds
    table: pd.DataFrame = field(repr=False)


@dataclass(frozen=True)
class ClassifyResult:
    """Class probabilities for one image: ``table`` (class, probability, and ``name`` when the checkpoint
    records class names) sorted best first; ``names`` the class names, or None."""

    predicted: int
    probabilities: np.ndarray  # (num_classes,) in class order
    latency_ms: float
    table: pd.DataFrame = field(repr=False)
    names: list[str] | None = field(default=None, repr=False)

    def label(self, index: int) -> str:
        """How class ``index`` is shown: its name (the first of its synonyms) when known, else the number."""
        return str(index) if self.names is None else self.names[index].split(",")[0]


def _check_model(model: nn.Module, task: str) -> None:
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "task", None) != task:
        got = getattr(cfg, "task", type(model).__name__)
        raise ValueError(f"expected a LensModel for task {task!r}, got {got!r}")
    if model.training and cfg.dropout > 0:
        log.warning("model is in training mode: dropout makes predictions random; call model.eval() after loading")


def _clean_text(text: object) -> str:
    if not isinstance(text, str):
        raise BadInput(f"the text must be a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise BadInput(
            f"the text has {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,} (the model reads only its "
            "first word pieces anyway): shorten it"
        )
    # Lone surrogates (possible in a Python str, not in UTF-8) would make the Rust tokenizer fail.
    return text.encode("utf-8", errors="replace").decode("utf-8")


def encode_text(tokenizer: Tokenizer, text: str, seq_len: int) -> EncodedText:
    """``text`` cleaned and encoded to ``seq_len`` ids (see ``encode_for_model``).

    Raises :class:`BadInput` for a non-string or text over ``MAX_TEXT_CHARS`` characters.
    """
    return encode_for_model(tokenizer, _clean_text(text), seq_len)


def _encode_masked(tokenizer: Tokenizer, text: str, seq_len: int) -> tuple[EncodedText, int]:
    """A cleaned text with at least one [MASK] within ``seq_len``, encoded; and how many [MASK] it has in all."""
    if not text.strip():
        raise BadInput("the text is empty: type a sentence with [MASK] where a word should be predicted")
    enc = encode_for_model(tokenizer, text, seq_len)
    if enc.n_real == 0:
        raise BadInput("the text has no readable word pieces: type a sentence with [MASK] in it")
    n_masks = count_masks(text)  # encode_for_model turns each match into one [MASK] id
    if not enc.mask_positions:
        if n_masks:
            raise BadInput(
                f"every [MASK] is beyond the first {seq_len} word pieces the model reads "
                f"(the text has {enc.n_total}): move a [MASK] earlier or shorten the text"
            )
        raise BadInput('the text has no [MASK]: write "[MASK]" where the model should predict a word')
    return enc, n_masks


def _mask_probabilities(model: nn.Module, enc: EncodedText) -> Tensor:
    """``(n_masks, vocab)`` softmax at each [MASK] position (only those are projected onto the vocabulary)."""
    ids = torch.tensor([enc.input_ids], dtype=torch.long, device=model.device)  # (1, seq_len)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[0, enc.mask_positions] = MASK_ID  # any id: only selects which positions get vocabulary logits
    with torch.inference_mode():
        return model(input_ids=ids, labels=labels).masked_logits.float().softmax(dim=-1)  # masks in position order


def fill_mask(model: nn.Module, tokenizer: Tokenizer, text: str, top_k: int = 5) -> FillMaskResult:
    """Predict the top-k word pieces for every "[MASK]" in ``text`` (any case, e.g. "[mask]").

    The text is encoded without [CLS]/[SEP], truncated to the model's ``seq_len`` (``truncated`` says
    so) and padded with [PAD], as during training. Only the masked positions are projected onto the
    vocabulary. Raises :class:`BadInput` for empty text, text without a [MASK] (or with all of them
    beyond ``seq_len``), text over ``MAX_TEXT_CHARS`` characters, or a bad ``top_k``.
    """
    _check_model(model, "mlm")
    text = _clean_text(text)
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not 1 <= top_k <= MAX_TOP_K:
        raise BadInput(f"top_k must be an integer from 1 to {MAX_TOP_K}, got {top_k!r}")
    cfg = model.config
    top_k = min(int(top_k), cfg.vocab_size)
    enc, n_masks = _encode_masked(tokenizer, text, cfg.seq_len)
    start = time.perf_counter()
    with torch.inference_mode():
        top_p, top_i = _mask_probabilities(model, enc).topk(top_k, dim=-1)
    top_p, top_i = top_p.cpu().numpy(), top_i.cpu().numpy()
    latency_ms = (time.perf_counter() - start) * 1e3

    rows = []
    for m, position in enumerate(enc.mask_positions):
        for r in range(top_k):
            token_id = int(top_i[m, r])
            rows.append((m, position, r + 1, tokenizer.id_to_token(token_id) or f"[{token_id}]", token_id))
    table = pd.DataFrame(rows, columns=["mask_index", "position", "rank", "token", "token_id"])
    table["probability"] = top_p.reshape(-1).astype(float)
    return FillMaskResult(
        tokens=enc.tokens,
        input_ids=enc.input_ids,
        mask_positions=enc.mask_positions,
        truncated=enc.truncated,
        n_real=enc.n_real,
        n_total=enc.n_total,
        n_masks_dropped=n_masks - len(enc.mask_positions),
        latency_ms=latency_ms,
        table=table,
    )


@dataclass(frozen=True)
class MaskPrediction:
    """One [MASK] of a text and the token to explain there (the model's best guess, or a chosen token)."""

    input_ids: list[int]  # length seq_len
    tokens: list[str]  # the seq_len word pieces, "[PAD]" for padding
    n_real: int  # word pieces read (before padding)
    position: int  # the [MASK]'s index among the seq_len inputs
    token_id: int
    token: str
    probability: float  # of ``token_id`` at ``position`` (softmax over the vocabulary)


def predict_mask(
    model: nn.Module, tokenizer: Tokenizer, text: str, mask_index: int = 0, token: str | None = None
) -> MaskPrediction:
    """The prediction at the ``mask_index``-th [MASK] of ``text`` (the last one read if there are fewer).

    The text goes through the same cleaning, limits and checks as :func:`fill_mask`. ``token`` picks
    the word to score instead of the model's top guess; it must be a single word piece.
    """
    _check_model(model, "mlm")
    enc, _ = _encode_masked(tokenizer, _clean_text(text), model.config.seq_len)
    which = min(max(int(mask_index), 0), len(enc.mask_positions) - 1)
    probs = _mask_probabilities(model, enc)[which]  # (vocab,)
    if token is None:
        token_id = int(probs.argmax())
    else:
        pieces = encode_ids(tokenizer, _clean_text(token))
        if len(pieces) != 1:
            raise BadInput(f"'{token}' is {len(pieces)} word pieces in this vocabulary; pick a single-piece word")
        token_id = pieces[0]
    return MaskPrediction(
        input_ids=enc.input_ids,
        tokens=enc.tokens,
        n_real=enc.n_real,
        position=enc.mask_positions[which],
        token_id=token_id,
        token=tokenizer.id_to_token(token_id) or str(token_id),
        probability=float(probs[token_id]),
    )


def _as_pixels(pixel_values: object, cfg: ModelConfig) -> Tensor:
    expected = (cfg.in_channels, cfg.image_size, cfg.image_size)
    try:
        x = torch.as_tensor(np.asarray(pixel_values) if not isinstance(pixel_values, Tensor) else pixel_values)
    except (TypeError, ValueError, RuntimeError) as err:
        raise BadInput(f"pixel_values must be an array of shape {expected}, got {type(pixel_values).__name__}") from err
    if x.dim() == 2 and cfg.in_channels == 1:
        x = x[None]
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or tuple(x.shape) != (1, *expected):
        raise BadInput(
            f"pixel_values must be one image of shape {expected} (or (1, ...)), got {tuple(x.shape)}: "
            "convert images with gmlp_core.data.images.to_pixel_values"
        )
    if not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int32, torch.int64)):
        raise BadInput(f"pixel_values must be numbers, got dtype {x.dtype}")
    x = x.float()
    if not torch.isfinite(x).all():
        raise BadInput("pixel_values contain NaN or infinity")
    return x


def classify_image(model: nn.Module, pixel_values: Tensor | np.ndarray) -> ClassifyResult:
    """Class probabilities for one image already in the model's convention (``(1, C, H, W)``: floats in [0, 1],
    or normalised as the checkpoint's preprocessing says; see ``gmlp_core.data.images.to_pixel_values``).

    Raises :class:`BadInput` for a wrong shape or non-finite values.
    """
    _check_model(model, "vision")
    x = _as_pixels(pixel_values, model.config)
    param = next(model.parameters())
    x = x.to(device=param.device, dtype=param.dtype)
    start = time.perf_counter()
    with torch.inference_mode():
        probs = model(pixel_values=x).logits[0].float().softmax(dim=-1).cpu().numpy()  # (classes,)
    latency_ms = (time.perf_counter() - start) * 1e3
    order = np.argsort(-probs, kind="stable")
    table = pd.DataFrame({"class": order.astype(int), "probability": probs[order].astype(float)})
    names = class_names_of(model.config)
    if names is not None:
        table.insert(1, "name", [names[i] for i in order])
    return ClassifyResult(int(order[0]), probs, latency_ms, table, names)
