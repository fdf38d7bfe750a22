"""Importing trained gMLPs (gmlp_core.importers): timm's ImageNet gMLPs and g-mlp-pytorch checkpoints.

What is compared against what: every test runs the *peer's own model code* on randomly initialised weights
(no download) and our model on the imported weights, and compares the logits.

- g-mlp-pytorch: its ``gMLP`` / ``gMLPVision`` classes, imported as they are (the package needs only einops).
- timm: the real ``timm.models.mlp_mixer.MlpMixer`` with ``SpatialGatingBlock`` and ``timm.layers.GatedMlp``
  (what ``timm.create_model("gmlp_s16_224")`` builds), at smaller sizes. timm's package imports torchvision,
  which cannot be imported on this machine (the CPU torch comes from a local wheel; the index's torchvision is a
  CUDA build). ``importers.load_timm`` then imports timm with a stand-in torchvision whose every member raises
  when used; timm's gMLP code uses nothing from torchvision, so it runs unchanged (the test checks the model
  classes come from timm's own files). The published gMLP-S weights cannot be fetched here: the full-size
  architecture is checked against ``timm.create_model`` tensor by tensor, and its logits on random weights.

timm initialises W to ~1e-6 and the classifier to 0, which would hide a transposed W or a wrong LayerNorm eps:
every test draws all peer tensors at random first.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from gmlp_core import CheckpointError, build_model, load_checkpoint, preset, read_config, save_checkpoint
from gmlp_core import importers as im
from gmlp_core.cli import main
from gmlp_core.data.images import Preprocess, class_names_of, preprocess_of, to_pixel_values
from gmlp_core.inference import classify_image
from gmlp_core.limits import check_config, estimate_parameters
from gmlp_core.models import count_parameters

g_mlp_pytorch = pytest.importorskip("g_mlp_pytorch")  # in requirements-dev.txt: present wherever the suite runs


@pytest.fixture(scope="module")
def timm() -> ModuleType:
    return im.load_timm()


def _randomise(module: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return module.eval()


def _small_timm(timm: ModuleType, **changes: int) -> torch.nn.Module:
    cfg = im._timm_like("", d_model=32, d_ffn=192, n_layers=2, image_size=32, patch_size=8, in_channels=3)
    return _randomise(im.timm_peer(timm, cfg.replace(**changes)))


def test_timm_is_timms_own_code(timm: ModuleType) -> None:
    mixer = timm.models.mlp_mixer
    assert Path(mixer.__file__).parent.parent == Path(timm.__file__).parent  # the installed timm's own file
    assert mixer.SpatialGatingUnit.__module__ == "timm.models.mlp_mixer"
    assert timm.layers.GatedMlp.__module__.startswith("timm.layers")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_timm_gmlp_imports_exactly(timm: ModuleType, tmp_path: Path, suffix: str) -> None:
    peer = _small_timm(timm)
    path = tmp_path / f"timm{suffix}"
    if suffix == ".pth":
        torch.save(peer.state_dict(), path)
    else:
        save_file({k: v.contiguous() for k, v in peer.state_dict().items()}, str(path))
    imported = im.import_timm("", path)
    assert imported.max_abs_diff <= 1e-5
    cfg = imported.model.config
    assert (cfg.layer_norm_eps, cfg.sgu_norm_eps, cfg.n_layers, cfg.seq_len) == (1e-6, 1e-5, 2, 16)
    # The written checkpoint, loaded as the dashboard loads it, gives timm's logits on a new batch.
    out = im.write_import(imported, tmp_path / "ckpt")
    ours = load_checkpoint(out, device="cpu")
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.allclose(ours(pixel_values=x).logits, peer(x), atol=1e-5)
    assert ours.spatial_weights()[1].equal(peer.blocks[1].mlp_channels.gate.proj.weight)  # W row i = output i


def test_the_gate_norm_eps_is_what_makes_timm_exact(timm: ModuleType) -> None:
    peer = _small_timm(timm)
    state = im._rename(peer.state_dict(), im.TIMM_RULES, "test")
    x = torch.randn(2, 3, 32, 32)
    diffs = {}
    for eps in (1e-5, None):  # timm's SGU LayerNorm has 1e-5; None would use the blocks' 1e-6 there too
        cfg = im.config_from_timm_state(peer.state_dict()).replace(sgu_norm_eps=eps)
        model = build_model(cfg).eval()
        model.load_state_dict(state)
        diffs[eps] = im._compare(model, peer, {"pixel_values": x}, x)
    assert diffs[1e-5] <= 1e-6 < diffs[None]


def test_timms_registered_gmlps_match_our_configs_and_preprocessing(timm: ModuleType) -> None:
    for name in im.TIMM_MODELS:
        with torch.device("meta"):
            theirs = timm.create_model(name, pretrained=False).state_dict()
            ours = build_model(im.timm_config(name)).state_dict()
        renamed = im._rename(theirs, im.TIMM_RULES, name)
        assert {k: v.shape for k, v in renamed.items()} == {k: v.shape for k, v in ours.items()}, name
        assert im.config_from_timm_state(theirs, name) == im.timm_config(name)
        check_config(im.timm_config(name))  # gMLP-Ti/S/B are within the default resource limits
        pcfg = timm.models.get_pretrained_cfg(name)
        want = Preprocess.from_crop_pct(224, pcfg.crop_pct, pcfg.interpolation, pcfg.mean, pcfg.std)
        assert want == im.TIMM_PREPROCESS and pcfg.input_size == (3, 224, 224) and pcfg.num_classes == 1000
    assert timm.models.get_pretrained_cfg("gmlp_s16_224").hf_hub_id  # the one timm publishes trained weights for


def test_full_size_gmlp_s_through_timms_loader_imports_exactly(
    timm: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = timm.create_model

    def create_model(name: str, pretrained: bool = False, **kwargs: object) -> torch.nn.Module:
        calls.append((name, pretrained))
        return _randomise(original(name, pretrained=False, **kwargs), scale=0.05)  # stands in for the download

    monkeypatch.setattr(timm, "create_model", create_model)
    imported = im.import_timm("gmlp_s16_224")  # no --weights: timm's own loader
    assert calls == [("gmlp_s16_224", True)]
    assert "timm/gmlp_s16_224" in imported.source["weights"] and imported.max_abs_diff <= 1e-4
    assert imported.model.config == im.timm_config("gmlp_s16_224")
    with pytest.raises(im.ImportRefused, match="publishes no weights"):
        im.import_timm("gmlp_ti16_224")  # registered untrained: refused before any download
    assert len(calls) == 1
    path = tmp_path / "gmlp_s16_224.safetensors"
    save_file({k: v.contiguous() for k, v in imported.model.state_dict().items()}, str(path))
    with pytest.raises(im.ImportRefused, match="not a timm gMLP state dict"):  # our format is not timm's
        im.import_timm("gmlp_s16_224", path)


GMLP_PYTORCH_CASES = {
    "gMLP": dict(num_tokens=50, dim=32, depth=2, seq_len=16),
    "aMLP": dict(num_tokens=50, dim=32, depth=2, seq_len=16, attn_dim=8),
    "causal gMLP": dict(num_tokens=50, dim=32, depth=2, seq_len=16, causal=True, ff_mult=2),
    "causal aMLP": dict(num_tokens=50, dim=32, depth=2, seq_len=16, causal=True, attn_dim=8),
    "gMLPVision": dict(image_size=32, patch_size=8, num_classes=10, dim=32, depth=2),
    "aMLP vision": dict(image_size=32, patch_size=8, num_classes=10, dim=32, depth=2, attn_dim=8, channels=1),
}


@pytest.mark.parametrize("case", list(GMLP_PYTORCH_CASES))
def test_g_mlp_pytorch_imports_exactly(tmp_path: Path, case: str) -> None:
    kwargs = GMLP_PYTORCH_CASES[case]
    vision = "num_classes" in kwargs
    peer = _randomise((g_mlp_pytorch.gMLPVision if vision else g_mlp_pytorch.gMLP)(**kwargs))
    path = tmp_path / "peer.pt"
    torch.save({"model": peer.state_dict()}, path)  # a training script's wrapper
    given = {k: v for k, v in kwargs.items() if k in ("causal", "channels", "depth")}
    imported = im.import_gmlp_pytorch(path, given)
    assert imported.max_abs_diff <= 1e-5
    cfg = imported.model.config
    assert cfg.arch == ("amlp" if "attn_dim" in kwargs else "gmlp") and cfg.causal == kwargs.get("causal", False)
    ours = load_checkpoint(im.write_import(imported, tmp_path / "ckpt"), device="cpu")
    g = torch.Generator().manual_seed(3)
    if vision:
        x = torch.randn(2, kwargs.get("channels", 3), 32, 32, generator=g)
        got = ours(pixel_values=x).logits
    else:
        x = torch.randint(0, 50, (2, 16), generator=g)
        got = ours(input_ids=x).logits
    with torch.no_grad():
        assert torch.allclose(got, peer(x), atol=1e-5)
    assert estimate_parameters(cfg) == count_parameters(cfg)  # mlm_head="linear" is counted too


@pytest.mark.parametrize(
    ("kwargs", "given", "message"),
    [
        (dict(heads=2), {}, "heads=2"),
        (dict(circulant_matrix=True), {}, "circulant"),
        ({}, {"shift_tokens": 1}, "shift_tokens=1"),
        ({}, {"dim": 64}, "--set dim=64, but the weights have dim=32"),
        ({}, {"depht": 2}, "unknown g-mlp-pytorch argument"),
    ],
)
def test_g_mlp_pytorch_refusals_say_why(tmp_path: Path, kwargs: dict, given: dict, message: str) -> None:
    peer = g_mlp_pytorch.gMLP(**(dict(num_tokens=20, dim=32, depth=1, seq_len=8) | kwargs))
    torch.save(peer.state_dict(), tmp_path / "w.pt")
    with pytest.raises(im.ImportRefused, match=message):
        im.import_gmlp_pytorch(tmp_path / "w.pt", given)


def test_a_trunk_without_embedding_and_code_in_a_pickle_are_refused(tmp_path: Path) -> None:
    torch.save(g_mlp_pytorch.gMLP(dim=16, depth=1, seq_len=8).state_dict(), tmp_path / "trunk.pt")
    with pytest.raises(im.ImportRefused, match="num_tokens"):
        im.import_gmlp_pytorch(tmp_path / "trunk.pt", {})
    torch.save({"weights": torch.zeros(2), "how": Image.new("L", (1, 1))}, tmp_path / "code.pth")
    with pytest.raises(im.ImportRefused, match="not a weights-only torch file"):
        im.read_state_dict(tmp_path / "code.pth")


def test_the_cli_imports_and_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    peer = _randomise(g_mlp_pytorch.gMLP(num_tokens=50, dim=32, depth=2, seq_len=16, causal=True))
    torch.save(peer.state_dict(), tmp_path / "lm.pt")
    args = ["import", "g-mlp-pytorch", "--weights", str(tmp_path / "lm.pt"), "--out", str(tmp_path / "out")]
    sets = ["--set", "dim=32", "depth=2", "seq_len=16", "causal=true"]
    assert main(args + sets) == 0
    assert "max |our logits - g-mlp-pytorch's| on a random batch: " in capsys.readouterr().out
    source = read_config(tmp_path / "out").extra["source"]
    assert source["arguments"]["causal"] is True and source["max_abs_diff"] <= 1e-5
    assert main(args + sets) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["import", "timm:gmlp_x16_224", "--out", str(tmp_path / "x")]) == 2
    assert "unknown timm gMLP" in capsys.readouterr().err


def test_the_cli_imports_a_timm_gmlp_with_imagenet_names_and_preprocessing(timm: ModuleType, tmp_path: Path) -> None:
    peer = _randomise(timm.create_model("gmlp_ti16_224"), scale=0.05)
    torch.save(peer.state_dict(), tmp_path / "ti.pth")
    out = tmp_path / "gmlp_ti16_224"
    assert main(["import", "timm:gmlp_ti16_224", "--weights", str(tmp_path / "ti.pth"), "--out", str(out)]) == 0
    cfg = read_config(out)
    names = class_names_of(cfg)
    assert names is not None and len(names) == 1000 and names[0].startswith("tench") and names[999].startswith("toilet")
    assert preprocess_of(cfg) == im.TIMM_PREPROCESS and cfg.extra["source"]["library"] == "timm"


def test_an_imported_imagenet_gmlp_classifies_a_photo_as_timm_does(timm: ModuleType, tmp_path: Path) -> None:
    peer = _small_timm(timm, image_size=224, patch_size=16, num_classes=1000)
    torch.save(peer.state_dict(), tmp_path / "small.pth")
    imported = im.import_timm("", tmp_path / "small.pth")
    model = load_checkpoint(im.write_import(imported, tmp_path / "ckpt", extra=im.timm_extra(imported)), device="cpu")
    cfg = model.config
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    result = classify_image(model, to_pixel_values(photo, cfg))
    assert list(result.table.columns[:2]) == ["class", "name"] and result.label(0) == "tench"
    with torch.no_grad():  # timm's model on the same pixels gives the same top class
        assert int(peer(to_pixel_values(photo, cfg)).argmax()) == result.predicted


def test_recorded_preprocessing_is_resize_centre_crop_normalise() -> None:
    cfg = preset("gmlp-tiny-vision", image_size=224, patch_size=16, in_channels=3).replace(
        extra={"preprocess": im.TIMM_PREPROCESS.to_dict()}
    )
    arr = np.zeros((300, 600, 3), dtype=np.uint8)  # 2:1 -> shorter side 256, 512 x 256, crop the middle 224
    arr[:, 300:] = 255  # right half white
    x = to_pixel_values(Image.fromarray(arr), cfg)
    assert x.shape == (1, 3, 224, 224)
    assert torch.allclose(x[0, :, :, :100], torch.tensor(-1.0)) and torch.allclose(x[0, :, :, 124:], torch.tensor(1.0))
    flat = to_pixel_values(Image.new("RGB", (500, 500), (51, 102, 255)), cfg)[0, :, 100, 100]
    assert torch.allclose(flat, (torch.tensor([51, 102, 255]) / 255 - 0.5) / 0.5, atol=1e-6)


@pytest.mark.parametrize(
    "extra",
    [
        {"preprocess": {"resize": 256, "crop": 224, "interpolation": "bicubic", "mean": [0.5], "std": [0.5, 0.5, 0.5]}},
        {"preprocess": {"resize": 10**9, "crop": 224, "interpolation": "bicubic", "mean": [0, 0, 0], "std": [1, 1, 1]}},
        {"preprocess": "resize"},
        {"class_names": ["a"] * 999},
        {"class_names": ["x" * 300] * 1000},
    ],
)
def test_malformed_preprocessing_or_class_names_are_refused_at_load(tmp_path: Path, extra: dict) -> None:
    cfg = preset("gmlp-tiny-vision", image_size=224, patch_size=16, in_channels=3, num_classes=1000)
    folder = save_checkpoint(build_model(cfg), tmp_path / "ckpt")
    data = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(data | {"extra": extra}))
    with pytest.raises(CheckpointError, match="extra"):
        read_config(folder)


def test_imagenet_class_names_ship_with_the_package() -> None:
    names = im.imagenet_class_names()
    assert len(names) == 1000 and names[1].startswith("goldfish") and names[281].startswith("tabby")
