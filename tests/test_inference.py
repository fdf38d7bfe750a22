"""gmlp_core.inference: fill-mask and classification on tiny models, bad text, and no mutation of the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmlp_core import build_model, preset
from gmlp_core.data.tokenizer import MASK_ID, PAD_ID, encode_for_model, train_tokenizer
from gmlp_core.inference import BadInput, classify_image, fill_mask
from gmlp_core.models.archs import ARCHS

TEXT = [
    "the function returns the value of the expression.",
    "a loop repeats the statement until the condition is false.",
    "the gate multiplies the channels by a spatial projection.",
] * 3


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXT, 120)


@pytest.fixture(scope="module", params=ARCHS)
def mlm(request, tokenizer):
    torch.manual_seed(0)
    cfg = preset(f"{request.param}-tiny-mlm", vocab_size=tokenizer.get_vocab_size())
    return build_model(cfg).eval()


@pytest.fixture(scope="module", params=ARCHS)
def vision(request):
    torch.manual_seed(0)
    return build_model(preset(f"{request.param}-tiny-vision")).eval()


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_fill_mask_matches_full_logits(mlm, tokenizer) -> None:
    text = "the [MASK] returns the value of the [mask] ."
    result = fill_mask(mlm, tokenizer, text, top_k=4)
    enc = encode_for_model(tokenizer, text, mlm.config.seq_len)
    assert result.mask_positions == enc.mask_positions and len(result.mask_positions) == 2
    assert result.input_ids == enc.input_ids and len(result.tokens) == mlm.config.seq_len
    assert not result.truncated and result.n_real == enc.n_real and result.n_masks_dropped == 0
    assert list(result.table.columns) == ["mask_index", "position", "rank", "token", "token_id", "probability"]
    assert len(result.table) == 8 and result.latency_ms > 0
    with torch.no_grad():  # the plain path: full logits over every position
        logits = mlm(input_ids=torch.tensor([enc.input_ids])).logits[0]
    for m, pos in enumerate(enc.mask_positions):
        probs = logits[pos].softmax(-1)
        want_p, want_i = probs.topk(4)
        rows = result.table[result.table["mask_index"] == m].sort_values("rank")
        assert (rows["position"] == pos).all()
        assert rows["token_id"].tolist() == want_i.tolist()
        np.testing.assert_allclose(rows["probability"].to_numpy(), want_p.numpy(), rtol=1e-4, atol=1e-6)
        assert rows["token"].tolist() == [tokenizer.id_to_token(i) for i in want_i.tolist()]
        assert rows["probability"].is_monotonic_decreasing


def test_fill_mask_truncation_is_reported(mlm, tokenizer) -> None:
    n = mlm.config.seq_len
    text = "the [MASK] loop " + "value " * (2 * n) + "[MASK] end"
    result = fill_mask(mlm, tokenizer, text, top_k=2)
    assert result.truncated and result.n_real == n and result.n_total > n
    assert result.mask_positions == [1] and result.n_masks_dropped == 1
    with pytest.raises(BadInput, match="beyond the first"):
        fill_mask(mlm, tokenizer, "value " * (2 * n) + "[MASK]")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \n\t  ", "empty"),
        ("the value of the function", "no \\[MASK\\]"),
        ("\x00\x01\x02\x7f", "no readable|no \\[MASK\\]"),
        ("x" * 1_000_001, "limit"),
    ],
)
def test_fill_mask_bad_text(text: str, message: str, tokenizer) -> None:
    model = build_model(preset("gmlp-tiny-mlm", vocab_size=tokenizer.get_vocab_size())).eval()
    with pytest.raises(BadInput, match=message):
        fill_mask(model, tokenizer, text)


def test_fill_mask_odd_unicode_and_top_k(tokenizer) -> None:
    model = build_model(preset("gmlp-tiny-mlm", vocab_size=tokenizer.get_vocab_size())).eval()
    for text in (
        "🙂 the [MASK] 🙂",
        "\ud800 [MASK] \udfff",
        "\x00[MASK]\x1b[31m",
        "[MASK]" * 40,
        "é" * 100_000 + "[MASK]",
    ):
        try:
            result = fill_mask(model, tokenizer, text, top_k=3)
        except BadInput as err:  # e.g. the [MASK] is beyond seq_len
            assert "[MASK]" in str(err)
        else:
            assert len(result.table) == 3 * len(result.mask_positions) > 0
            assert all(result.input_ids[p] == MASK_ID for p in result.mask_positions)
            assert all(i == PAD_ID for i in result.input_ids[result.n_real :])
    for k in (0, -1, 101, 2.5, True):
        with pytest.raises(BadInput, match="top_k"):
            fill_mask(model, tokenizer, "the [MASK]", top_k=k)
    with pytest.raises(BadInput, match="string"):
        fill_mask(model, tokenizer, b"the [MASK]")


def test_fill_mask_does_not_mutate_the_model(mlm, tokenizer) -> None:
    before = _state(mlm)
    hooks = (len(mlm._forward_hooks), len(mlm._forward_pre_hooks))
    first = fill_mask(mlm, tokenizer, "the [MASK] of the loop", top_k=5).table
    second = fill_mask(mlm, tokenizer, "the [MASK] of the loop", top_k=5).table
    assert first.equals(second)  # deterministic
    after = _state(mlm)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert (len(mlm._forward_hooks), len(mlm._forward_pre_hooks)) == hooks and not mlm.training


def test_fill_mask_refuses_a_vision_model(vision, tokenizer) -> None:
    with pytest.raises(ValueError, match="mlm"):
        fill_mask(vision, tokenizer, "the [MASK]")


def test_classify_image(vision) -> None:
    cfg = vision.config
    pixels = torch.rand(1, cfg.in_channels, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(1))
    before = _state(vision)
    result = classify_image(vision, pixels)
    with torch.no_grad():
        want = vision(pixel_values=pixels).logits[0].softmax(-1).numpy()
    np.testing.assert_allclose(result.probabilities, want, rtol=1e-5, atol=1e-7)
    assert result.predicted == int(want.argmax()) == int(result.table["class"].iloc[0])
    assert sorted(result.table["class"]) == list(range(cfg.num_classes))
    assert result.table["probability"].is_monotonic_decreasing
    assert abs(result.table["probability"].sum() - 1) < 1e-5 and result.latency_ms > 0
    # the same image as (C, H, W) and as a numpy array gives the same answer
    again = classify_image(vision, pixels[0].numpy())
    np.testing.assert_allclose(again.probabilities, result.probabilities, rtol=1e-6)
    after = _state(vision)
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    "bad",
    [
        torch.rand(2, 1, 8, 8),
        torch.rand(1, 3, 8, 8),
        torch.rand(1, 1, 16, 16),
        torch.full((1, 1, 8, 8), float("nan")),
        "an image",
        None,
    ],
)
def test_classify_image_bad_pixels(bad) -> None:
    model = build_model(preset("gmlp-tiny-vision")).eval()
    with pytest.raises(BadInput):
        classify_image(model, bad)


def test_predict_mask_is_fill_masks_prediction_through_the_same_checks(mlm, tokenizer) -> None:
    from gmlp_core.inference import MAX_TEXT_CHARS, encode_text, predict_mask

    text = "the [MASK] returns the [MASK] of the expression."
    top = fill_mask(mlm, tokenizer, text, top_k=1).table
    for which in (0, 1):
        p = predict_mask(mlm, tokenizer, text, which)
        best = top[top["mask_index"] == which].iloc[0]
        assert (p.position, p.token_id, p.token) == (int(best["position"]), int(best["token_id"]), best["token"])
        assert p.probability == pytest.approx(float(best["probability"]), rel=1e-5)
    assert predict_mask(mlm, tokenizer, text, 5).position == p.position  # past the last [MASK]: the last one
    chosen = predict_mask(mlm, tokenizer, text, 0, token="the")
    assert chosen.token == "the" and 0.0 < chosen.probability < 1.0
    with pytest.raises(BadInput, match="word pieces"):
        predict_mask(mlm, tokenizer, text, 0, token="loop")
    for bad in ("", "no mask here", "[MASK]" + "x" * (MAX_TEXT_CHARS + 1)):
        with pytest.raises(BadInput):
            predict_mask(mlm, tokenizer, bad)
    with pytest.raises(BadInput, match="limit"):
        encode_text(tokenizer, "x" * (MAX_TEXT_CHARS + 1), mlm.config.seq_len)
    assert encode_text(tokenizer, text, mlm.config.seq_len) == encode_for_model(tokenizer, text, mlm.config.seq_len)
