"""Property tests (hypothesis) over everything a user can type or upload: the text path of ``fill_mask`` and
the image path ``load_image`` -> ``to_pixel_values`` -> ``classify_image``. Bounded examples, no deadline
flakiness: the whole file runs in well under a minute."""

from __future__ import annotations

import io
import re
import struct
import zlib
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from gmlp_core import build_model, preset
from gmlp_core.data.images import BadImage, ImageTooLarge, load_image, to_pixel_values
from gmlp_core.data.tokenizer import MASK_ID, PAD_ID, train_tokenizer
from gmlp_core.inference import BadInput, classify_image, fill_mask

MASK_RE = re.compile(r"\[\s*mask\s*\]", re.IGNORECASE)
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_TOKENIZER = train_tokenizer(["the value of the loop is returned by the function ."] * 3, 100)
torch.manual_seed(0)
_MLM = {
    a: build_model(preset(f"{a}-tiny-mlm", vocab_size=_TOKENIZER.get_vocab_size())).eval()
    for a in ("gmlp", "transformer")
}
_VISION = build_model(preset("gmlp-tiny-vision")).eval()

# Any code point, surrogates and control characters included (Python strings may hold lone surrogates).
any_char = st.characters(codec=None, exclude_categories=())
mask_spelling = st.sampled_from(["[MASK]", "[mask]", "[ Mask ]", "[\tMASK\n]", "[MASK]" * 3])
words = st.sampled_from(["the", "value", "loop", "returned", "🙂", "\x00", "\u200b", "\ud800", "é", "  ", "\n"])
texts = st.one_of(
    st.text(any_char, max_size=200),
    st.lists(st.one_of(words, mask_spelling, st.text(any_char, max_size=5)), max_size=60).map(" ".join),
    st.tuples(st.integers(1, 40_000), mask_spelling, st.booleans()).map(
        lambda t: ("value " * t[0] + t[1]) if t[2] else (t[1] + " the" * t[0])
    ),
)


@SETTINGS
@given(text=texts, top_k=st.integers(1, 8), arch=st.sampled_from(sorted(_MLM)))
def test_fill_mask_any_text(text: str, top_k: int, arch: str) -> None:
    model = _MLM[arch]
    n = model.config.seq_len
    try:
        result = fill_mask(model, _TOKENIZER, text, top_k=top_k)
    except BadInput as err:
        message = str(err)
        event("refused")
        assert message and ("[MASK]" in message or "empty" in message or "word pieces" in message)
        if not MASK_RE.search(text):
            return
        # the text has a [MASK]: the only acceptable refusals are "nothing readable" and "every [MASK] truncated away"
        assert "beyond the first" in message or "no readable" in message or "empty" in message
        return
    event("predicted, truncated" if result.truncated else "predicted")
    assert MASK_RE.search(text), "a text without [MASK] must be refused"
    table = result.table
    assert len(result.input_ids) == len(result.tokens) == n
    assert 0 < result.n_real <= n and result.truncated == (result.n_total > n)
    assert all(i == PAD_ID for i in result.input_ids[result.n_real :])
    assert result.mask_positions and all(result.input_ids[p] == MASK_ID for p in result.mask_positions)
    assert result.n_masks_dropped == len(MASK_RE.findall(text)) - len(result.mask_positions) >= 0
    assert len(table) == top_k * len(result.mask_positions)
    assert table["probability"].between(0, 1).all() and np.isfinite(table["probability"]).all()
    for _, group in table.groupby("mask_index"):
        assert group.sort_values("rank")["probability"].is_monotonic_decreasing
        assert group["token_id"].nunique() == top_k


def test_fill_mask_huge_text_runs_the_model_on_one_window_and_says_so() -> None:
    text = "[MASK] " + "value of the loop " * 25_000  # ~450k characters
    model = _MLM["gmlp"]
    shapes: list[tuple[int, ...]] = []
    hook = model.register_forward_pre_hook(
        lambda _m, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    try:
        result = fill_mask(model, _TOKENIZER, text)
    finally:
        hook.remove()
    assert shapes == [(1, model.config.seq_len)], "the model reads one window, however long the text"
    assert result.truncated and result.n_total > 70_000 and result.mask_positions == [0]
    with pytest.raises(BadInput, match="limit"):
        fill_mask(_MLM["gmlp"], _TOKENIZER, "[MASK]" + "x" * 2_000_000)


# ------------------------------------------------------------------------------------------------
# images

MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "I", "F", "CMYK", "I;16"]
FORMATS = {
    "PNG": ("1", "L", "P", "RGB", "RGBA", "LA", "I;16"),
    "JPEG": ("L", "RGB", "CMYK"),
    "BMP": ("1", "L", "P", "RGB"),
    "GIF": ("L", "P"),
    "TIFF": ("1", "L", "RGB", "RGBA", "I", "F", "CMYK"),
}


@st.composite
def encoded_images(draw) -> tuple[bytes, str, str]:
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(FORMATS[fmt]))
    w, h = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    seed = draw(st.integers(0, 2**16))
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    img = Image.fromarray(rgb, "RGB").convert(mode) if mode != "I;16" else Image.fromarray(rgb[..., 0]).convert("I;16")
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue(), fmt, mode


def _classify_any(img: Image.Image) -> None:
    pixels = to_pixel_values(img, _VISION.config)
    assert pixels.shape == (1, 1, 8, 8) and pixels.dtype == torch.float32
    assert torch.isfinite(pixels).all() and pixels.min() >= 0 and pixels.max() <= 1
    result = classify_image(_VISION, pixels)
    assert abs(result.table["probability"].sum() - 1) < 1e-5 and 0 <= result.predicted < 10


@SETTINGS
@given(encoded=encoded_images())
def test_any_mode_and_size_classifies(encoded: tuple[bytes, str, str]) -> None:
    data, _, _ = encoded
    _classify_any(load_image(data))


# PIL's notes on a cut TIFF ("Corrupt EXIF data", "Truncated File Read"), before it refuses or decodes
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.filterwarnings("ignore:Truncated File Read")
@SETTINGS
@given(encoded=encoded_images(), cut=st.floats(0.0, 0.99))
def test_truncated_files_are_refused_or_decoded(encoded: tuple[bytes, str, str], cut: float) -> None:
    data, _, _ = encoded
    try:
        img = load_image(data[: int(len(data) * cut)])
    except BadImage as err:
        assert str(err)
        return
    _classify_any(img)  # some formats decode a prefix: then it must still be a usable image


@SETTINGS
@given(data=st.binary(max_size=2000))
def test_random_bytes_never_crash(data: bytes) -> None:
    try:
        img = load_image(data)
    except BadImage as err:
        assert str(err)
        return
    _classify_any(img)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels with almost no data: a decompression-bomb header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


@settings(max_examples=20, deadline=None)
@given(side=st.integers(5_001, 2**31 - 1), other=st.integers(5_001, 60_000))
def test_decompression_bomb_is_refused_by_pixel_count_before_decoding(side: int, other: int) -> None:
    def no_decoding(_image: Image.Image) -> None:
        raise AssertionError("the image was decoded before its size was checked")

    with mock.patch.object(Image.Image, "load", no_decoding), pytest.raises(ImageTooLarge, match="megapixels|bomb"):
        load_image(_png_header_only(side, other))
