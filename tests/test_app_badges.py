"""A model's kind is visible wherever it is named: badges (causal, Toeplitz W, a gating variant) in the pickers,
beside the name of the model shown, in the zoo table; scores fixed by construction say so; and Live inference says
that a causal model reads only the left context."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_helpers import start, texts
from conftest import TINY_TEXT
from streamlit.testing.v1 import AppTest

from dashboard.inference_view import CAUSAL_NOTE
from dashboard.style import model_badges, model_label
from gmlp_core import build_model, list_presets, preset, save_checkpoint
from gmlp_core.models import config_summary

pytestmark = pytest.mark.timeout(300)

KINDS = {
    "plain": {},
    "causal-toeplitz": {"causal": True, "spatial": "toeplitz"},
    "additive": {"gating": "additive"},
}
BADGES = {"plain": [], "causal-toeplitz": ["causal", "Toeplitz W"], "additive": ["additive gating"]}
LABELS = {name: model_label(name, words) for name, words in BADGES.items()}


@pytest.fixture(scope="module")
def kinds_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny untrained MLM gMLPs of three kinds: plain, causal with a Toeplitz W, additive gating."""
    from gmlp_core.data.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("kinds")
    tokenizer = train_tokenizer(TINY_TEXT, 160)
    for name, changes in KINDS.items():
        cfg = preset("gmlp-tiny-mlm").replace(vocab_size=tokenizer.get_vocab_size(), **changes)
        save_checkpoint(build_model(cfg), root / name, tokenizer=tokenizer)
    return root


@pytest.fixture
def kinds(kinds_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(kinds_root))
    return kinds_root


def _badges(at: AppTest) -> list[str]:
    """The badges on the page, as st.badge writes them (``:color-badge[word]``)."""
    return [m.value for m in at.markdown if "-badge[" in m.value]


@pytest.mark.parametrize("name", list_presets(group="tiny"))
@pytest.mark.parametrize("changes", list(KINDS.values()) + [{"gating": "identity"}, {"causal": True}])
def test_badges_read_the_same_from_a_config_and_from_a_zoo_row(name: str, changes: dict) -> None:
    if changes.get("causal") and not preset(name).arch_spec.causal:
        with pytest.raises(ValueError, match="cannot be causal"):
            preset(name).replace(**changes)
        return
    cfg = preset(name).replace(**changes)
    words = model_badges(cfg)
    assert words == model_badges(config_summary(cfg))
    assert ("causal" in words) == cfg.causal
    assert ("Toeplitz W" in words) == (cfg.spatial == "toeplitz" and cfg.has_spatial_weights)
    if not changes and cfg.arch_spec.gated:
        assert words == [], "a plain model has no badge"


def test_pickers_name_each_model_with_its_badges(kinds: Path) -> None:
    at = start("spatial", query={"models": ",".join(KINDS)})
    assert at.selectbox(key="spatial-model").options == list(LABELS.values())
    assert sorted(at.sidebar.multiselect[0].options) == sorted(LABELS.values())
    assert at.sidebar.multiselect[0].value == list(KINDS), "the labels change what is shown, not what is picked"
    at.switch_page("../pages/interventions.py").run()
    assert at.selectbox(key="iv-model").options == list(LABELS.values())
    at.switch_page("../pages/training.py").run()
    assert sorted(at.multiselect(key="train-names").options) == sorted(LABELS.values())


def test_spatial_page_shows_the_models_badges_and_what_is_fixed_by_construction(kinds: Path) -> None:
    at = start("spatial", query={"models": ",".join(KINDS)})
    at.selectbox(key="spatial-model").set_value("causal-toeplitz").run()
    assert _badges(at) == [":orange-badge[causal]", ":violet-badge[Toeplitz W]"]
    shown = texts(at)
    assert "Shift invariance is 1.0 in every layer **by construction**" in shown
    assert "upper triangle" in shown and "masked to zero by construction" in shown
    at.selectbox(key="spatial-model").set_value("plain").run()
    assert _badges(at) == [], "a plain model has no badge"
    assert "by construction" not in texts(at)
    at.selectbox(key="spatial-model").set_value("additive").run()
    assert _badges(at) == [":blue-badge[additive gating]"]


def test_live_inference_says_a_causal_model_reads_only_the_left_context(kinds: Path) -> None:
    def notes(models: str) -> tuple[int, list[str]]:
        at = start("inference", query={"models": models})
        return sum(CAUSAL_NOTE in c.value for c in at.caption), _badges(at)

    count, badges = notes("plain,causal-toeplitz")
    assert count == 1 and badges == [":orange-badge[causal]", ":violet-badge[Toeplitz W]"]
    assert notes("causal-toeplitz")[0] == 1
    assert notes("plain") == (0, [])
    assert "only the words before it" in CAUSAL_NOTE


def test_zoo_table_has_a_kind_column(kinds: Path) -> None:
    zoo = start("overview").dataframe[0].value
    assert list(zoo.columns[5:8]) == ["val_ppl", "val_accuracy", "kind"], "beside the scores it qualifies"
    assert dict(zip(zoo["name"], zoo["kind"], strict=True)) == {n: ", ".join(w) for n, w in BADGES.items()}
