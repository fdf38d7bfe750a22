"""Corpora, tokenizer, MLM masking and image preprocessing."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gmlp_core import preset
from gmlp_core.data.images import BadImage, ImageTooLarge, load_digits_split, load_image, to_pixel_values
from gmlp_core.data.masking import MaskingConfig, mask_tokens, mlm_batch, validation_batches
from gmlp_core.data.text import embedded_corpus, load_text_corpus, python_docs_corpus
from gmlp_core.data.tokenizer import MASK_ID, PAD_ID, SPECIAL_TOKENS, encode_for_model, train_tokenizer
from gmlp_core.models import IGNORE_INDEX


@pytest.fixture(scope="module")
def corpus():
    return embedded_corpus()


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return train_tokenizer(corpus.train, 1000)


def test_embedded_corpus_is_real_english_with_a_fixed_split(corpus) -> None:
    assert sum(map(len, corpus.train)) > 200_000
    assert len(corpus.validation) > 50
    assert not set(corpus.train) & set(corpus.validation)
    again = embedded_corpus()
    assert again.train == corpus.train and again.validation == corpus.validation
    words = " ".join(corpus.train).lower().split()
    assert words.count("the") > 1000


def test_python_docs_adds_the_standard_library_docstrings(corpus) -> None:
    docs = load_text_corpus("python-docs")
    assert docs.name == "python-docs"
    size = sum(map(len, docs.train + docs.validation))
    assert size > 4 * sum(map(len, corpus.train + corpus.validation)) and size > 1_000_000
    assert not set(docs.train) & set(docs.validation)
    # The topics come first, so the smaller corpus's validation paragraphs stay held out here.
    assert set(corpus.validation) <= set(docs.validation) and set(corpus.train) <= set(docs.train)
    again = python_docs_corpus()
    assert again.train == docs.train and again.validation == docs.validation
    text = " ".join(docs.train)
    # Library prose (a docstring of a module the manual's topics don't cover), not code or tests.
    assert "Return the number of" in text and "urllib" in text.lower()
    added = set(docs.train) - set(corpus.train)
    assert not any(p.startswith((">>>", "def ", "class ", "import ")) for p in added), "code is not prose"
    assert not any("self.assert" in p for p in added), "no test suites"


def test_tokenizer_special_ids_and_round_trip(tokenizer, tmp_path: Path) -> None:
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    text = "the object must be an iterable with the same number of items"
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    assert tokenizer.decode(ids) == text
    tokenizer.save(str(tmp_path / "tok.json"))
    from tokenizers import Tokenizer

    assert Tokenizer.from_file(str(tmp_path / "tok.json")).encode(text).ids == ids


def test_encode_for_model_pads_truncates_and_finds_masks(tokenizer) -> None:
    enc = encode_for_model(tokenizer, "The [MASK] returns a [mask] value.", 16)
    assert len(enc.input_ids) == 16 and enc.input_ids[enc.n_real :] == [PAD_ID] * (16 - enc.n_real)
    # How many pieces "returns a" takes depends on the learned vocabulary; the second mask follows them.
    middle = len(tokenizer.encode("returns a", add_special_tokens=False).ids)
    assert enc.mask_positions == [1, 2 + middle] and all(enc.input_ids[p] == MASK_ID for p in enc.mask_positions)
    assert enc.input_ids[0] == tokenizer.token_to_id("the") and enc.tokens[1] == "[MASK]"
    assert not enc.truncated
    long = encode_for_model(tokenizer, "the " * 100 + "[MASK]", 16)
    assert long.truncated and long.n_real == 16 and long.n_total == 101 and long.mask_positions == []
    empty = encode_for_model(tokenizer, "", 8)
    assert empty.n_real == 0 and empty.input_ids == [PAD_ID] * 8


def test_masking_statistics() -> None:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (400, 64), generator=g)
    ids[:, 48:] = PAD_ID
    masked, labels = mask_tokens(ids, 1000, g)
    selected = labels != IGNORE_INDEX
    assert not selected[:, 48:].any(), "padding is never predicted"
    rate = selected[:, :48].float().mean().item()
    assert 0.14 < rate < 0.17
    assert torch.equal(labels[selected], ids[selected])
    n = selected.sum().item()
    as_mask = (masked[selected] == MASK_ID).sum().item() / n
    kept = (masked[selected] == ids[selected]).sum().item() / n
    assert 0.77 < as_mask < 0.83
    assert 0.08 < kept < 0.13  # 10% kept + random draws that hit the same id
    assert torch.equal(masked[~selected], ids[~selected])


def test_batches_are_a_pure_function_of_the_step_and_include_short_rows() -> None:
    stream = torch.randint(5, 500, (5000,))
    a = mlm_batch(stream, 64, 32, 500, seed=1, step=7)
    b = mlm_batch(stream, 64, 32, 500, seed=1, step=7)
    c = mlm_batch(stream, 64, 32, 500, seed=1, step=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    padded_rows = (a[0] == PAD_ID).any(dim=1).float().mean().item()
    assert 0.1 < padded_rows < 0.5, "a fraction of rows are short sequences padded to n"
    assert ((a[1] != IGNORE_INDEX).sum(dim=1) >= 1).all(), "every row predicts at least one token"
    r0 = mlm_batch(stream, 8, 32, 500, seed=1, step=7, rank=0)
    r1 = mlm_batch(stream, 8, 32, 500, seed=1, step=7, rank=1)
    assert not torch.equal(r0[0], r1[0])


def test_validation_batches_are_deterministic_and_short_ones_padded() -> None:
    stream = torch.randint(5, 500, (3000,))
    full = validation_batches(stream, 32, 500)
    assert all(torch.equal(x[0], y[0]) for x, y in zip(full, validation_batches(stream, 32, 500), strict=True))
    short = validation_batches(stream, 32, 500, short=True)
    assert all((ids[:, 17:] == PAD_ID).all() for ids, _ in short)
    with pytest.raises(ValueError, match="fewer than seq_len"):
        validation_batches(stream[:10], 32, 500)
    with pytest.raises(ValueError, match="fewer than seq_len"):
        mlm_batch(stream[:10], 2, 32, 500, 0, 0, cfg=MaskingConfig())


def _write_parquet(path: Path, texts: list[str]) -> None:
    import pandas as pd

    pd.DataFrame({"text": texts, "id": range(len(texts))}).to_parquet(path)


def test_local_files_load_through_datasets(tmp_path: Path) -> None:
    texts = [f"sentence number {i} about gated linear units" for i in range(50)]
    (tmp_path / "a.txt").write_text("\n".join(texts))
    corpus = load_text_corpus(str(tmp_path / "a.txt"))
    assert len(corpus.train) + len(corpus.validation) == 50 and len(corpus.validation) == 5
    _write_parquet(tmp_path / "b.parquet", texts)
    assert len(load_text_corpus(str(tmp_path / "b.parquet")).train) == 45
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps({"body": t}) for t in texts))
    assert load_text_corpus(str(tmp_path / "c.jsonl")).train[0].startswith("sentence")
    (tmp_path / "d.csv").write_text("x")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_text_corpus(str(tmp_path / "d.csv"))


def test_hub_names_go_through_the_same_code_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls = []

    def fake_load(name, config=None, **kwargs):
        calls.append((name, config))
        train = datasets.Dataset.from_dict({"text": ["hello world", "", "gated units"] * 10})
        val = datasets.Dataset.from_dict({"text": ["validation text"]})
        return datasets.DatasetDict({"train": train, "validation": val})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    corpus = load_text_corpus("wikitext:wikitext-103-raw-v1")
    assert calls == [("wikitext", "wikitext-103-raw-v1")]
    assert len(corpus.train) == 20 and corpus.validation == ["validation text"]


def test_digits_split_is_fixed_and_in_range() -> None:
    x, y = load_digits_split("train")
    xv, yv = load_digits_split("validation")
    assert x.shape == (1437, 1, 8, 8) and xv.shape == (360, 1, 8, 8)
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert set(yv.tolist()) == set(range(10))
    assert torch.equal(load_digits_split("validation")[0], xv)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_user_images_become_digit_like_pixels() -> None:
    cfg = preset("gmlp-demo-vision")
    # A dark stroke on white paper, RGBA, not square: inverted, padded, resized.
    img = Image.new("RGBA", (300, 200), (255, 255, 255, 255))
    for x in range(140, 160):
        for yy in range(20, 180):
            img.putpixel((x, yy), (0, 0, 0, 255))
    px = to_pixel_values(load_image(_png(img)), cfg)
    assert px.shape == (1, 1, 8, 8) and px.dtype == torch.float32
    assert px.max() == pytest.approx(1.0)
    assert px[0, 0, :, 3:5].mean() > px[0, 0, :, 0].mean() + 0.3, "the stroke is bright in the middle column"
    x, _ = load_digits_split("validation")
    assert torch.allclose(to_pixel_values(x[0, 0].numpy() * 16, cfg), x[0:1] / x[0].max(), atol=0.02)


def test_bad_images_get_clear_errors() -> None:
    with pytest.raises(BadImage, match="not an image"):
        load_image(b"this is not an image at all")
    with pytest.raises(BadImage, match="empty"):
        load_image(b"")
    data = _png(Image.new("L", (64, 64), 128))
    with pytest.raises(BadImage, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])
    big = Image.new("1", (8000, 8000))
    with pytest.raises(ImageTooLarge, match="8000 x 8000"):
        load_image(_png(big))
    with pytest.raises(BadImage, match="finite"):
        to_pixel_values(np.full((4, 4), np.nan), preset("gmlp-demo-vision"))


def test_canvas_digits_move_every_step_and_validation_is_fixed() -> None:
    from gmlp_core.data.canvas import VAL_PLACEMENTS, canvas_digits_split, place_on_canvas
    from gmlp_core.train.data import CanvasDigitsData, build_task_data

    digits, _ = load_digits_split("train")
    placed = place_on_canvas(digits[:2], torch.tensor([0, 8]), torch.tensor([8, 0]), canvas=16)
    assert torch.equal(placed[0, 0, :8, 8:], digits[0, 0]) and torch.equal(placed[1, 0, 8:, :8], digits[1, 0])
    assert placed.sum() == digits[:2].sum(), "nothing but the digit is drawn"
    with pytest.raises(ValueError, match="inside"):
        place_on_canvas(digits[:1], torch.tensor([9]), torch.tensor([0]), canvas=16)

    cfg = preset("gmlp-demo-vision").replace(image_size=16, patch_size=2)
    data, _ = build_task_data(cfg, "digits-canvas", batch_size=64, seed=0)
    assert isinstance(data, CanvasDigitsData)
    a, b, again = data.train_batch(0), data.train_batch(1), data.train_batch(0)
    assert a["pixel_values"].shape == (64, 1, 16, 16)
    assert torch.equal(a["pixel_values"], again["pixel_values"]), "a pure function of the step"

    def centres(x: torch.Tensor) -> torch.Tensor:  # each image's centre of mass (row, column)
        grid = torch.arange(16.0)
        mass = x.sum(dim=(1, 2, 3))
        return torch.stack([(x.sum(dim=(1, 3)) * grid).sum(1) / mass, (x.sum(dim=(1, 2)) * grid).sum(1) / mass], 1)

    spread = centres(torch.cat([a["pixel_values"], b["pixel_values"]])).std(dim=0)
    assert (spread > 1.5).all(), "digits land all over the canvas, not in the centre"
    x_val, y_val = canvas_digits_split("validation")
    assert len(x_val) == VAL_PLACEMENTS * 360 and torch.equal(x_val, canvas_digits_split("validation")[0])
    assert torch.equal(data.x_val, x_val) and torch.equal(data.y_val, y_val)
    with pytest.raises(ValueError, match="in_channels=1"):
        build_task_data(cfg.replace(in_channels=3), "digits-canvas", batch_size=8, seed=0)


def test_short_fraction_sets_how_many_training_rows_are_padded() -> None:
    from gmlp_core.train.data import build_task_data

    cfg = preset("gmlp-tiny-mlm").replace(vocab_size=300, seq_len=32)
    padded = {}
    for fraction in (0.0, 0.3, 1.0):
        data, _ = build_task_data(cfg, "embedded", batch_size=64, seed=0, short_fraction=fraction)
        ids = torch.cat([data.train_batch(step)["input_ids"] for step in range(4)])
        padded[fraction] = float((ids == PAD_ID).any(dim=1).float().mean())
    assert padded[0.0] == 0.0 and 0.15 < padded[0.3] < 0.45 and padded[1.0] > 0.9


def test_mask_prob_sets_how_many_training_tokens_are_predicted_and_never_the_validation_ones() -> None:
    """A recipe may predict more of each training row (``--mask-prob``), but validation always masks BERT's 15%
    of the same tokens, so perplexities of different recipes are comparable."""
    from gmlp_core.train.data import build_task_data

    cfg = preset("gmlp-tiny-mlm").replace(vocab_size=300, seq_len=32)
    predicted, validation = {}, {}
    for prob in (0.15, 0.4):
        data, _ = build_task_data(cfg, "embedded", batch_size=64, seed=0, short_fraction=0.0, mask_prob=prob)
        labels = torch.cat([data.train_batch(step)["labels"] for step in range(4)])
        predicted[prob] = float((labels != IGNORE_INDEX).float().mean())
        validation[prob] = [(ids.clone(), lab.clone()) for ids, lab in data.val_full]
    assert 0.12 < predicted[0.15] < 0.19 and 0.36 < predicted[0.4] < 0.44
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(validation[0.15], validation[0.4], strict=True)
    )


def test_a_digit_on_the_canvas_lands_where_asked_and_is_centred_by_default() -> None:
    from gmlp_core.data.canvas import canvas_positions, digit_on_canvas, is_canvas_model
    from gmlp_core.models import preset

    digit = torch.rand(8, 8) + 0.1  # no zero pixel: where it landed is exactly where the canvas is non-zero
    placed = digit_on_canvas(digit, 32, (3, 20))
    assert placed.shape == (1, 1, 32, 32)
    rows, cols = placed[0, 0].nonzero(as_tuple=True)
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (3, 10, 20, 27)
    assert torch.equal(placed[0, 0, 3:11, 20:28], digit)
    centred = digit_on_canvas(digit, 32)[0, 0].nonzero(as_tuple=True)
    assert int(centred[0].min()) == int(centred[1].min()) == (canvas_positions(32) - 1) // 2 == 12
    for off in [(-1, 0), (0, 25)]:
        with pytest.raises(ValueError, match="off the canvas"):
            digit_on_canvas(digit, 32, off)
    cfg = preset("gmlp-demo-canvas")
    assert not is_canvas_model(cfg), "a model is a canvas model by what it was trained on, not by its shape"
    assert is_canvas_model(cfg.replace(extra={"data": "digits-canvas"}))


def test_docstring_walk_finds_the_definitions_in_ast_walks_order() -> None:
    """The corpus reads docstrings through a walk that skips expressions (``text._doc_nodes``): the same nodes, in
    the same order, as ``ast.walk`` (the corpus, and so every split built from it, must not change)."""
    import ast

    from gmlp_core.data.text import _DOC_NODES, _doc_nodes

    source = '''
"""module"""
def f():
    """f"""
    def g(): """g"""
    return lambda x: [y for y in x]
class C:
    """C"""
    if True:
        async def h(): """h"""
    else:
        class D: """D"""
    try:
        def i(): """i"""
    except ValueError:
        def j(): """j"""
    finally:
        def k(): """k"""
    def m(self):
        match self:
            case 1:
                def n(): """n"""
        with open("x") as fh:
            for _ in fh:
                while False:
                    def o(): """o"""
'''
    tree = ast.parse(source)
    expected = [n for n in ast.walk(tree) if isinstance(n, _DOC_NODES)]
    assert list(_doc_nodes(tree)) == expected and len(expected) == 12
