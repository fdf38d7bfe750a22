"""WordPiece tokenizer (HF ``tokenizers``) with BERT's special tokens, and encoding for a fixed-length model.

Special tokens have fixed ids: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4. Encoding adds no [CLS]/[SEP],
so positions are word pieces, and "[MASK]" typed in any case becomes the single [MASK] token.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from tokenizers import Encoding, Tokenizer, decoders, models, normalizers, pre_tokenizers

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = [PAD, UNK, CLS, SEP, MASK]
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)
MASK_PATTERN = re.compile(r"\[\s*mask\s*\]", re.IGNORECASE)  # "[MASK]" as typed, in any case


class TokenizerFailure(ValueError):
    """A checkpoint's tokenizer failed on a text (e.g. a normalizer regex over its backtracking limit, which the
    Rust code turns into a panic); the message says so and what to do."""


def _pipeline(vocab: dict[str, int]) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token=UNK))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    return tok


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Learn a lowercase WordPiece vocabulary of ``vocab_size`` from ``texts``, deterministically.

    The HF ``WordPieceTrainer`` breaks ties between equally frequent merges in hash-map order, which
    changes from run to run; a zoo that must rebuild bit for bit cannot use it. This learner is
    deterministic: the special tokens, every character (word-initial and ``##`` continuation), then
    the most frequent whole words, word-initial pieces and ``##`` continuation pieces (2-6
    characters), ties broken alphabetically. The result is an HF ``tokenizers`` WordPiece model
    (greedy longest match), saved and loaded as ``tokenizer.json`` like any other.
    """
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ValueError(f"vocab_size={vocab_size} is too small for the {len(SPECIAL_TOKENS)} special tokens")
    probe = _pipeline({t: i for i, t in enumerate(SPECIAL_TOKENS)})
    words: Counter[str] = Counter()
    for text in texts:
        normalized = probe.normalizer.normalize_str(text)
        words.update(w for w, _ in probe.pre_tokenizer.pre_tokenize_str(normalized))
    chars = sorted({c for w in words for c in w})
    vocab = list(SPECIAL_TOKENS) + chars + [f"##{c}" for c in chars]
    candidates: Counter[str] = Counter()
    for word, n in words.items():
        if len(word) > 1:
            candidates[word] += n
        for length in range(2, min(6, len(word) - 1) + 1):
            candidates[word[:length]] += n
        for start in range(1, len(word)):
            for length in range(2, min(6, len(word) - start) + 1):
                candidates[f"##{word[start : start + length]}"] += n
    seen = set(vocab)
    ranked = sorted((t for t in candidates if t not in seen), key=lambda t: (-candidates[t], t))
    vocab += ranked[: max(0, vocab_size - len(vocab))]
    tok = _pipeline({t: i for i, t in enumerate(vocab)})
    for i, t in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(t) == i, f"special token {t} must have id {i}"
    return tok


@dataclass(frozen=True)
class EncodedText:
    """A text encoded for a model of fixed length ``seq_len``."""

    input_ids: list[int]  # length seq_len, padded with [PAD]
    tokens: list[str]  # the word pieces, "[PAD]" for padding
    n_real: int  # tokens before padding
    truncated: bool  # the text had more than seq_len tokens
    n_total: int  # tokens in the whole text, before truncation
    mask_positions: list[int]  # positions holding [MASK]


def count_masks(text: str) -> int:
    """How many [MASK] tokens ``text`` has before any truncation ("[mask]" in any case, as encoding reads it)."""
    return len(MASK_PATTERN.findall(text))


def encode_checked(tokenizer: Tokenizer, text: str) -> Encoding:
    """``tokenizer.encode(text)`` without special tokens, for text someone typed.

    Raises :class:`TokenizerFailure` when the tokenizer fails on it: a panic in its Rust code is a
    ``BaseException`` that would otherwise end the calling thread (a dashboard session) without a word.
    """
    try:
        return tokenizer.encode(text, add_special_tokens=False)
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt | SystemExit | GeneratorExit):
            raise
        raise TokenizerFailure(
            f"the checkpoint's tokenizer fails on this text ({type(err).__name__}: {str(err)[:300]}): change the "
            "text, or use a checkpoint whose tokenizer.json can read it"
        ) from err


def encode_ids(tokenizer: Tokenizer, text: str) -> list[int]:
    """The word-piece ids of ``text`` (``encode_checked``: :class:`TokenizerFailure` when the tokenizer fails)."""
    return encode_checked(tokenizer, text).ids


def encode_for_model(tokenizer: Tokenizer, text: str, seq_len: int) -> EncodedText:
    """Encode ``text`` to exactly ``seq_len`` ids (pad or truncate), with "[MASK]" as the mask token.

    Raises :class:`TokenizerFailure` when the tokenizer fails on the text.
    """
    pieces = MASK_PATTERN.split(text)
    ids: list[int] = []
    for i, piece in enumerate(pieces):
        if i:
            ids.append(MASK_ID)
        if piece.strip():
            ids.extend(encode_ids(tokenizer, piece))
    n_total = len(ids)
    ids = ids[:seq_len]
    n_real = len(ids)
    padded = ids + [PAD_ID] * (seq_len - n_real)
    tokens = [tokenizer.id_to_token(i) or UNK for i in padded]
    return EncodedText(
        input_ids=padded,
        tokens=tokens,
        n_real=n_real,
        truncated=n_total > seq_len,
        n_total=n_total,
        mask_positions=[p for p, i in enumerate(ids) if i == MASK_ID],
    )
