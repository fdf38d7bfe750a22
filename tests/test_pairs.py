"""A sentence pair through a finetuned classifier (gmlp_core.analysis.pairs): the answer the page shows is the
evaluation's answer, W is the same matrix for every pair, attention sees no padding, and the same-word share
measures what it says."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gmlp_core import build_model, load_checkpoint, load_tokenizer, preset, save_checkpoint
from gmlp_core.analysis.influence import layer_influence
from gmlp_core.analysis.pairs import (
    alignment_table,
    effective_mixing,
    pair_maps,
    pair_predictions,
    read_pair,
    same_word_share,
)
from gmlp_core.data.finetune import Example, load_task_splits
from gmlp_core.data.tokenizer import train_tokenizer
from gmlp_core.inference import BadInput
from gmlp_core.models.archs import ARCHS
from gmlp_core.train.finetune import start_finetune

TEXT = [
    "the value of the key is returned if the key is in the dictionary.",
    "the name of the file is read from the path and the file is opened.",
    "a list holds items in order and a set holds each item once.",
] * 5
PAIRS = [
    Example("the value of the key is returned.", "the value of the key is returned.", 0),
    Example("the value of the key is returned.", "the value of the name is returned.", 1),
    Example("a list holds items in order.", "a set holds items in order.", 1),
    Example("the file is read from the path and opened.", "the file is read from the path and opened.", 0),
]


@pytest.fixture(scope="module")
def pair_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny MLM model per architecture, finetuned for no steps on docs-match (its trunk, a new head)."""
    root = tmp_path_factory.mktemp("pairs")
    tokenizer = train_tokenizer(TEXT, 120)
    out = {}
    for i, arch in enumerate(ARCHS):
        torch.manual_seed(i)
        cfg = preset(f"{arch}-tiny-mlm").replace(vocab_size=tokenizer.get_vocab_size(), seq_len=40)
        save_checkpoint(build_model(cfg), root / f"mlm-{arch}", tokenizer=tokenizer)
        start = start_finetune(root / f"mlm-{arch}", "docs-match", 0, torch.device("cpu"))
        out[arch] = save_checkpoint(start.model, root / f"match-{arch}", tokenizer=start.tokenizer)
    return out


def _load(path: Path):
    return load_checkpoint(path, device="cpu").eval(), load_tokenizer(path)


@pytest.mark.parametrize("arch", ARCHS)
def test_the_live_answer_is_the_evaluations_answer(pair_models: dict[str, Path], arch: str) -> None:
    model, tok = _load(pair_models[arch])
    table = pair_predictions(model, tok, PAIRS, batch_size=3)  # batches of another size than one
    for example, row in zip(PAIRS, table.itertuples(), strict=True):
        reading = read_pair(model, tok, example.text_a, example.text_b)
        assert reading.predicted == row.predicted
        assert float(reading.probabilities.max()) == pytest.approx(row.probability, abs=1e-5)
        assert reading.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
        assert row.correct == (row.predicted == example.label)
    reading = read_pair(model, tok, PAIRS[0].text_a, PAIRS[0].text_b)
    assert reading.tokens[0] == "[CLS]" and reading.tokens[-1] == "[SEP]" and not reading.truncated
    assert [reading.tokens[i] for i in reading.a_positions] == [reading.tokens[i] for i in reading.b_positions]


def test_w_is_one_matrix_for_every_pair_and_attention_sees_no_padding(pair_models: dict[str, Path]) -> None:
    gmlp, tok = _load(pair_models["gmlp"])
    first = pair_maps(gmlp, read_pair(gmlp, tok, PAIRS[0].text_a, PAIRS[0].text_b))
    other = pair_maps(gmlp, read_pair(gmlp, tok, PAIRS[2].text_a, PAIRS[2].text_b))
    assert set(first) == {"W"}
    for w1, w2, full in zip(first["W"], other["W"], gmlp.spatial_weights(), strict=True):
        m = min(len(w1), len(w2))
        assert torch.equal(w1[:m, :m], w2[:m, :m]) and torch.equal(w1, full[: len(w1), : len(w1)].float())
    amlp, tok = _load(pair_models["amlp"])
    reading = read_pair(amlp, tok, PAIRS[1].text_a, PAIRS[1].text_b)
    assert reading.n_real < amlp.config.seq_len, "the pair leaves padding"
    found = pair_maps(amlp, reading)
    assert set(found) == {"W", "attention"}
    for probs in found["attention"]:  # cut to the real positions, each row still sums to one: nothing on padding
        assert torch.allclose(probs.sum(-1), torch.ones(probs.shape[:-1]), atol=1e-5)


def test_effective_mixing_takes_nothing_from_padding_in_an_attention_block(pair_models: dict[str, Path]) -> None:
    model, tok = _load(pair_models["transformer"])
    reading = read_pair(model, tok, PAIRS[1].text_a, PAIRS[1].text_b)
    m = reading.n_real
    full = layer_influence(
        model, 0, reading.input_ids, rows=range(m), exact=True, attention_mask=reading.attention_mask
    )
    assert torch.all(full[:m, m:] == 0), "masked keys move nothing"
    unmasked = layer_influence(model, 0, reading.input_ids, rows=range(m), exact=True)
    assert full[:m, m:].abs().sum() < unmasked[:m, m:].abs().sum()
    assert torch.allclose(effective_mixing(model, reading, 0, exact=True), full[:m, :m])


def test_gmlp_effective_mixing_is_zero_where_w_is(pair_models: dict[str, Path]) -> None:
    """The SGU mixes position j into i only through W_ij: zero W outside a band, zero mixing outside it."""
    model, tok = _load(pair_models["gmlp"])
    n = model.config.seq_len
    idx = torch.arange(n)
    band = (idx[:, None] - idx[None, :]).abs() <= 1
    with torch.no_grad():
        model.blocks[0].sgu.spatial.weight.mul_(band)
    reading = read_pair(model, tok, PAIRS[1].text_a, PAIRS[1].text_b)
    mixing = effective_mixing(model, reading, 0, exact=True)
    m = reading.n_real
    off_band = ~band[:m, :m] & ~torch.eye(m, dtype=torch.bool)
    assert torch.all(mixing[off_band] == 0) and mixing[band[:m, :m]].sum() > 0


def test_same_word_share_against_hand_made_maps() -> None:
    tokens = ["[CLS]", "a", "b", "c", "[SEP]", "a", "x", "c", "[SEP]"]
    segment = [0, 0, 0, 0, 0, 1, 1, 1, 1]
    m = len(tokens)
    aligned = torch.zeros(m, m)
    aligned[1, 5] = aligned[3, 7] = 1.0  # a -> a, c -> c; b has no copy in B
    share, chance, rows = same_word_share(aligned, tokens, segment)
    assert (share, rows) == (1.0, 2) and chance == pytest.approx(1 / 3)
    uniform = torch.ones(m, m)
    assert same_word_share(uniform, tokens, segment)[0] == pytest.approx(1 / 3)
    offset = torch.zeros(m, m)
    offset[1, 6] = offset[3, 5] = -2.0  # weight (of either sign) on other words only
    assert same_word_share(offset, tokens, segment)[0] == 0.0
    nothing_shared = ["[CLS]", "a", "[SEP]", "b", "[SEP]"]
    share, _, rows = same_word_share(torch.ones(5, 5), nothing_shared, [0, 0, 0, 1, 1])
    assert rows == 0 and share != share  # NaN: no word of A recurs in B


def test_alignment_table_covers_every_layer_and_head(pair_models: dict[str, Path]) -> None:
    model, tok = _load(pair_models["transformer"])
    table = alignment_table(model, tok, PAIRS)
    heads = model.config.n_heads
    assert len(table) == model.config.n_layers * heads
    assert table["share"].between(0, 1).all() and (table["pairs"] == len(PAIRS)).all()
    assert table["ratio"].to_numpy() == pytest.approx((table["share"] / table["chance"]).to_numpy())
    gmlp, tok = _load(pair_models["gmlp"])
    assert set(alignment_table(gmlp, tok, PAIRS)["mixing"]) == {"W"}


def test_bad_pairs_and_wrong_models_get_a_message(pair_models: dict[str, Path], tmp_path: Path) -> None:
    model, tok = _load(pair_models["gmlp"])
    for a, b, what in (("", "x", "sentence A is empty"), ("x", "   ", "sentence B is empty"), (None, "x", "text")):
        with pytest.raises(BadInput, match=what):
            read_pair(model, tok, a, b)
    source = pair_models["gmlp"].parent / "mlm-gmlp"
    mlm, mlm_tok = _load(source)
    with pytest.raises(ValueError, match="finetune it first"):
        read_pair(mlm, mlm_tok, "a", "b")
    single = start_finetune(source, "docs-order", 0, torch.device("cpu")).model.eval()
    with pytest.raises(ValueError, match="not a sentence-pair"):
        read_pair(single, mlm_tok, "a", "b")


def test_the_shipped_pair_task_has_pairs_where_words_recur() -> None:
    test = load_task_splits("docs-match").test
    assert all(e.text_b is not None for e in test[:50])


def test_interventions_measure_a_finetuned_classifier_on_its_tasks_validation_split(
    pair_models: dict[str, Path],
) -> None:
    """Interventions take a finetuned classifier too: its held-out set is its task's validation split, and the
    unedited score is the one evaluation reports (padding found by the pad id, as the task's encoding puts it)."""
    from gmlp_core.analysis.interventions import intervene, measure, validation_data
    from gmlp_core.train.data import FinetuneData

    model, tok = _load(pair_models["gmlp"])
    held_out = validation_data(model, tok)
    data = FinetuneData.build("docs-match", tok, model.config.seq_len)
    split = data.splits["validation"]
    assert torch.equal(split.attention_mask.bool(), split.input_ids != model.config.pad_token_id)
    name, value, count = measure(model, held_out)
    assert (name, count) == ("val_accuracy", len(split.examples))
    assert value == pytest.approx(data.evaluate(model, "validation")["val_accuracy"])
    zeroed = intervene(model, "zero", "all")
    assert 0.0 <= measure(zeroed, held_out)[1] <= 1.0  # an edit runs on a copy and is measured the same way
    assert zeroed is not model and measure(model, held_out)[1] == value, "the model itself is unchanged"
