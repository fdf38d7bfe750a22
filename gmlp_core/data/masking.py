"""BERT-style MLM batches for fixed-length models.

Every batch is a pure function of (seed, step, rank), so training resumes exactly from a step number
and data-parallel ranks see different data. A fraction of rows are short sequences (4..seq_len tokens)
padded with [PAD] to seq_len: gMLP has a fixed length n, and this is what makes a short sentence typed
into the app get sound predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gmlp_core.data.tokenizer import MASK_ID, PAD_ID
from gmlp_core.limits import MLM_EVAL_BATCH
from gmlp_core.models.model import IGNORE_INDEX

N_SPECIAL = 5  # random replacements never draw a special token


@dataclass(frozen=True)
class MaskingConfig:
    mask_prob: float = 0.15
    mask_token_frac: float = 0.8
    random_token_frac: float = 0.1  # the remaining 10% keep the original token
    short_fraction: float = 0.3
    min_short_len: int = 4


def mask_tokens(
    input_ids: torch.Tensor, vocab_size: int, generator: torch.Generator, cfg: MaskingConfig = MaskingConfig()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Select ``mask_prob`` of the non-pad tokens; 80% -> [MASK], 10% -> random, 10% kept.

    Returns ``(masked_ids, labels)`` with labels -100 at unselected positions. At least one token of
    every row with real tokens is selected.
    """
    real = input_ids != PAD_ID
    probs = torch.rand(input_ids.shape, generator=generator)
    selected = (probs < cfg.mask_prob) & real
    # Guarantee one prediction per non-empty row (short rows would often get none otherwise).
    first_pick = torch.where(real, probs, torch.full_like(probs, 2.0)).argmin(dim=1)
    rows = real.any(dim=1)
    selected[rows, first_pick[rows]] = True
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    action = torch.rand(input_ids.shape, generator=generator)
    to_mask = selected & (action < cfg.mask_token_frac)
    to_random = selected & (action >= cfg.mask_token_frac) & (action < cfg.mask_token_frac + cfg.random_token_frac)
    random_ids = torch.randint(N_SPECIAL, vocab_size, input_ids.shape, generator=generator)
    out = input_ids.clone()
    out[to_mask] = MASK_ID
    out[to_random] = random_ids[to_random]
    return out, labels


def sample_windows(
    stream: torch.Tensor,
    batch_size: int,
    seq_len: int,
    generator: torch.Generator,
    cfg: MaskingConfig = MaskingConfig(),
) -> torch.Tensor:
    """``batch_size`` windows of ``seq_len`` ids from a token stream; a fraction truncated and padded."""
    if stream.numel() <= seq_len:
        raise ValueError(f"the corpus has {stream.numel()} tokens, fewer than seq_len={seq_len}: use more text")
    starts = torch.randint(0, stream.numel() - seq_len, (batch_size,), generator=generator)
    ids = torch.stack([stream[s : s + seq_len] for s in starts.tolist()])
    short = torch.rand(batch_size, generator=generator) < cfg.short_fraction
    lo = min(cfg.min_short_len, seq_len)
    lengths = torch.randint(lo, seq_len + 1, (batch_size,), generator=generator)
    positions = torch.arange(seq_len)[None, :]
    pad = short[:, None] & (positions >= lengths[:, None])
    return ids.masked_fill(pad, PAD_ID)


def mlm_batch(
    stream: torch.Tensor,
    batch_size: int,
    seq_len: int,
    vocab_size: int,
    seed: int,
    step: int,
    rank: int = 0,
    cfg: MaskingConfig = MaskingConfig(),
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training batch for ``(seed, step, rank)``: ``(input_ids, labels)``."""
    g = torch.Generator().manual_seed(_mix(seed, step, rank))
    ids = sample_windows(stream, batch_size, seq_len, g, cfg)
    return mask_tokens(ids, vocab_size, g, cfg)


def validation_batches(
    stream: torch.Tensor,
    seq_len: int,
    vocab_size: int,
    batch_size: int = MLM_EVAL_BATCH,
    max_windows: int = 128,
    short: bool = False,
    seed: int = 1234,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Deterministic validation: non-overlapping full windows (or, with ``short``, the first 4..n/2
    tokens of each window padded to n), masked with a fixed seed."""
    n_windows = min(max_windows, stream.numel() // seq_len)
    if n_windows == 0:
        raise ValueError(f"the validation text has fewer than seq_len={seq_len} tokens")
    ids = stream[: n_windows * seq_len].view(n_windows, seq_len).clone()
    g = torch.Generator().manual_seed(seed)
    if short:
        lengths = torch.randint(4, max(5, seq_len // 2 + 1), (n_windows,), generator=g)
        ids = ids.masked_fill(torch.arange(seq_len)[None] >= lengths[:, None], PAD_ID)
    masked, labels = mask_tokens(ids, vocab_size, g, MaskingConfig())
    return [(masked[i : i + batch_size], labels[i : i + batch_size]) for i in range(0, n_windows, batch_size)]


def _mix(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7_919 + rank * 104_729) % (2**63 - 1)
