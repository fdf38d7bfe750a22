"""Memory past the estimate (#38): every path that turns a file into tensors is bounded by an estimate in
``gmlp_core.limits``, and refuses before allocating, with a message naming the field and the limit.

The estimates are checked against what the code really allocates: each analysis runs in a fresh interpreter whose
peak resident memory is reset just before it (``/proc/self/clear_refs``) and read just after (``VmHWM``), with
glibc told to give every freed block of 64 KB or more back at once (``MALLOC_MMAP_THRESHOLD_``), so the peak is what
was live at once, torch's and numpy's allocations alike. Sizes are small (tens of MB) but span the terms of each
estimate: one layer against several, 1-D against a grid, dense against Toeplitz, few snapshots against many.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from gmlp_core import CheckpointError, build_model, load_checkpoint, preset, read_config, save_checkpoint
from gmlp_core import checkpoints as ck
from gmlp_core.cli import main
from gmlp_core.data import canvas
from gmlp_core.data.images import load_digits_split
from gmlp_core.importers import ImportRefused, read_state_dict
from gmlp_core.limits import estimate_images, estimate_memory
from gmlp_core.train import snapshots as sn

REPO = Path(__file__).resolve().parents[1]

# Run in the child: ``peak(fn)`` is (fn(), the most resident memory fn added while it ran, in bytes).
_PEAK = """
import gc, json, sys
import torch
torch.set_num_threads(1)

def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(key)

def peak(fn):
    gc.collect()
    base = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the high-water mark VmHWM starts again from the memory in use now
    out = fn()
    return out, _status("VmHWM") - base
"""


def _measure(body: str, *args: str) -> list:
    """Run ``body`` after ``_PEAK`` in a fresh interpreter; it prints one JSON value, returned here."""
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("measuring peak memory needs Linux's /proc/self/clear_refs")
    env = os.environ | {"MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK + textwrap.dedent(body), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check_bounds(rows: list, low: float) -> None:
    """Each row (label, measured, estimate): measured within the estimate, and at least ``low`` of it (the estimate
    describes this allocation, and the measurement sees it)."""
    for label, used, estimate in rows:
        assert used <= estimate, f"{label}: measured {used / 1e6:.1f} MB, above its estimate {estimate / 1e6:.1f} MB"
        assert used >= low * estimate, f"{label}: measured {used / 1e6:.1f} MB of an estimate of {estimate / 1e6:.1f}"


def test_the_peak_memory_measurement_sees_torch_and_numpy_and_what_was_freed() -> None:
    """The instrument itself: 20 MB of torch, 20 MB of numpy, and three 8 MB temporaries one after another."""
    rows = _measure(
        """
        import numpy as np
        def temporaries():
            for _ in range(3):
                x = torch.ones(2_000_000)
                del x
        print(json.dumps([peak(lambda: torch.ones(5_000_000))[1], peak(lambda: np.ones(2_500_000))[1],
                          peak(temporaries)[1]]))
        """
    )
    torch_bytes, numpy_bytes, temporaries = rows
    assert 0.95 * 20e6 <= torch_bytes <= 1.1 * 20e6
    assert 0.95 * 20e6 <= numpy_bytes <= 1.1 * 20e6
    assert 0.95 * 8e6 <= temporaries <= 1.5 * 8e6, "freed temporaries are not counted twice"


# ---- item 2: the spatial report ------------------------------------------------------------------------


def test_the_spatial_report_stays_within_its_estimate() -> None:
    """Three (layers, n, n) arrays and a fixed few tables, whatever the layers, grid, parameterisation or mask
    (before #38: about ten n x n copies per layer, against four estimated)."""
    rows = _measure(
        """
        from gmlp_core import build_model, preset
        from gmlp_core.analysis.spatial import spatial_report
        from gmlp_core.limits import estimate_memory, estimate_spatial_report
        small = dict(d_model=4, d_ffn=8, vocab_size=50)
        spatial_report(build_model(preset("gmlp-tiny-mlm", seq_len=16, **small)))  # imports and first calls
        cases = [
            ("text, toeplitz, 1 layer", "gmlp-tiny-mlm", dict(seq_len=1024, spatial="toeplitz", n_layers=1)),
            ("text, dense, 4 layers", "gmlp-tiny-mlm", dict(seq_len=512, n_layers=4)),
            ("text, causal toeplitz", "gmlp-tiny-mlm", dict(seq_len=768, spatial="toeplitz", causal=True, n_layers=2)),
            ("grid, toeplitz, 3 layers", "gmlp-tiny-vision", dict(image_size=24, patch_size=1, spatial="toeplitz",
                                                                  n_layers=3)),
            ("grid, dense, aMLP", "amlp-tiny-vision", dict(image_size=32, patch_size=1, n_layers=2)),
        ]
        rows = []
        for label, name, overrides in cases:
            extra = small if name.endswith("mlm") else dict(d_model=4, d_ffn=8)
            cfg = preset(name, **extra, **overrides)
            model = build_model(cfg).eval()
            _, used = peak(lambda: spatial_report(model))
            rows.append([label, used, estimate_spatial_report(cfg), estimate_memory(cfg)["n_x_n_maps"]])
        print(json.dumps(rows))
        """
    )
    _check_bounds([row[:3] for row in rows], low=0.75)
    for label, _, report, maps in rows:
        assert report <= maps, f"{label}: the config check's n x n term must cover the report"


def test_the_spatial_report_does_not_change_what_it_reports() -> None:
    """Written in place, one layer at a time: the same numbers as the functions that score one W."""
    from gmlp_core.analysis import spatial as sp

    torch.manual_seed(0)
    for name, overrides in (("gmlp-tiny-mlm", {"causal": True}), ("gmlp-tiny-vision", {"spatial": "toeplitz"})):
        model = build_model(preset(name, **overrides)).eval()
        report = sp.spatial_report(model)
        grid = model.config.spatial_grid
        for layer, w in enumerate(model.spatial_weights()):
            np.testing.assert_array_equal(report.weights[layer], w.numpy())
            row = report.summary.iloc[layer]
            assert row["locality"] == pytest.approx(sp.locality(w, grid=grid), rel=1e-5)
            assert row["mean_abs_offset"] == pytest.approx(sp.mean_abs_offset(w, grid), rel=1e-5)
            assert row["shift_invariance"] == pytest.approx(sp.shift_invariance(w, grid), abs=1e-6)
        assert report.summary.equals(sp.spatial_summary(model))


def test_the_dashboard_holds_one_spatial_report_and_one_set_of_snapshots(tmp_path: Path) -> None:
    """The page's caches share their value: a second copy per rerun would double what the estimate bounds."""
    from dashboard import loaders, spatial_view

    cfg = preset("gmlp-tiny-mlm")
    folder = save_checkpoint(build_model(cfg), tmp_path / "m")
    sn.save_spatial_snapshots(folder, {0: torch.zeros(cfg.n_layers, cfg.seq_len, cfg.seq_len)})
    checkpoint = loaders.Checkpoint.at("m", folder)
    assert spatial_view.spatial(checkpoint) is spatial_view.spatial(checkpoint)
    assert loaders.snapshots(checkpoint) is loaders.snapshots(checkpoint)


# ---- item 1: images the built-in data renders at the model's input size --------------------------------


def _canvas_config(image_size: int, patch_size: int, **overrides):
    return preset(
        "gmlp-tiny-vision",
        image_size=image_size,
        patch_size=patch_size,
        d_model=8,
        d_ffn=16,
        n_layers=1,
        spatial="toeplitz",
        extra={"data": "digits-canvas"},
        **overrides,
    )


def test_scoring_the_held_out_set_stays_within_its_estimate() -> None:
    """eval and the Interventions page score a held-out set: the digits on a canvas rendered at the model's
    image_size (before #38 the estimate counted positions, not these images), and batches of 256 images or 32 masked
    windows through the model. Images, wide layers, attention and a large vocabulary each dominate one case."""
    rows = _measure(
        """
        from gmlp_core import build_model, preset
        from gmlp_core.analysis import interventions as iv
        from gmlp_core.data.masking import validation_batches
        from gmlp_core.limits import estimate_batch, estimate_images
        from gmlp_core.train.data import build_task_data

        def canvas(size, patch, **widths):
            widths = dict(d_model=8, d_ffn=16) | widths
            return preset("gmlp-tiny-vision", image_size=size, patch_size=patch, n_layers=1, spatial="toeplitz",
                          extra={"data": "digits-canvas"}, **widths)

        def scored(model):
            return iv.measure(model, iv.validation_data(model))

        def evaluated(model):
            data, _ = build_task_data(model.config, "digits-canvas", batch_size=32, seed=0)
            return data.evaluate(model)

        def masked_text(model):
            cfg = model.config
            stream = torch.randint(5, cfg.vocab_size, (cfg.seq_len * 40,), generator=torch.Generator().manual_seed(0))
            return iv.measure(model, iv.HeldOut("mlm", validation_batches(stream, cfg.seq_len, cfg.vocab_size)))

        text = dict(n_layers=2, d_model=32, d_ffn=64, vocab_size=1000)
        cases = [
            ("interventions, canvas 48 px", canvas(48, 6), scored),
            ("eval, canvas 96 px", canvas(96, 12), evaluated),
            ("interventions, canvas 160 px", canvas(160, 16), scored),
            ("eval, canvas 64 px, d_ffn 1024", canvas(64, 4, d_ffn=1024), evaluated),
            ("interventions, aMLP canvas 32 px", canvas(32, 2, d_ffn=256).replace(arch="amlp"), scored),
            ("masked text, gMLP d_ffn 2048", preset("gmlp-tiny-mlm", **text | dict(seq_len=128, d_ffn=2048)),
             masked_text),
            ("masked text, vocabulary 30000", preset("gmlp-tiny-mlm", **text | dict(seq_len=128, vocab_size=30000)),
             masked_text),
            ("masked text, Transformer n 256", preset("transformer-tiny-mlm", **text | dict(seq_len=256, n_heads=4)),
             masked_text),
        ]
        warm = build_model(canvas(16, 2)).eval()
        scored(warm), evaluated(warm), masked_text(build_model(preset("gmlp-tiny-mlm")).eval())
        rows = []
        for label, cfg, run in cases:
            model = build_model(cfg).eval()
            rows.append([label, peak(lambda: run(model))[1], estimate_images(cfg) + estimate_batch(cfg)])
        print(json.dumps(rows))
        """
    )
    for label, used, estimate in rows:
        assert used <= estimate, f"{label}: measured {used / 1e6:.1f} MB, above its estimate {estimate / 1e6:.1f} MB"
    canvas_rows = [row for row in rows if "canvas" in row[0] and "d_ffn" not in row[0] and "aMLP" not in row[0]]
    _check_bounds(canvas_rows, low=0.6)  # the images dominate: the estimate describes them closely


def test_the_canvas_validation_set_has_the_size_the_estimate_counts() -> None:
    assert len(load_digits_split("validation")[1]) == canvas.VAL_DIGITS
    cfg = _canvas_config(16, 2)
    assert canvas.rendered_images(cfg) == canvas.VAL_IMAGES
    assert canvas.rendered_images(cfg.replace(in_channels=3)) == 0, "three channels cannot read the digits"
    assert canvas.rendered_images(cfg.replace(extra={"data": "digits"})) == canvas.VAL_IMAGES, "eval --data says"


def _never(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("this must not run for a refused checkpoint")


@pytest.mark.parametrize(
    "overrides",
    [
        {"image_size": 1600, "patch_size": 40},  # the 21 KB checkpoint of #38: n = 1,600 positions, a canvas of 1,600
        {"image_size": 200_000, "patch_size": 10_000},  # far larger: a message, not an allocation error
        {"image_size": 1600, "patch_size": 40, "extra": {"data": "digits"}},  # eval --data digits-canvas still renders
        {"image_size": 3000, "patch_size": 100, "in_channels": 3, "extra": {}},  # no canvas, a batch of 256 is too many
    ],
)
def test_a_vision_checkpoint_whose_images_would_not_fit_is_refused_from_its_config(
    tmp_path: Path, overrides: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _canvas_config(16, 2).replace(**overrides)
    assert estimate_memory(cfg)["images"] > 8e9 > estimate_memory(cfg)["total"] - estimate_memory(cfg)["images"]
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text(cfg.to_json())
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with mock.patch.object(ck, "build_model", _never), mock.patch.object(ck, "load_file", _never):
        with pytest.raises(CheckpointError, match=f"image_size={cfg.image_size}.*limit of 8 GB"):
            load_checkpoint(folder, device="cpu")
        assert main(["eval", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "image_size" in err and "Traceback" not in err


def test_a_vision_checkpoint_within_the_limit_still_loads(tmp_path: Path) -> None:
    """The zoo's canvas models and ImageNet-sized imports are far inside the images estimate."""
    canvas_model = preset("gmlp-demo-canvas")
    assert estimate_images(canvas_model) < 0.1e9
    folder = save_checkpoint(build_model(_canvas_config(64, 8)), tmp_path / "ok")
    assert read_config(folder).image_size == 64
    imagenet = preset("gmlp-tiny-vision", image_size=224, patch_size=16, in_channels=3, d_model=512, d_ffn=3072)
    assert estimate_images(imagenet) < 0.2e9


@pytest.mark.parametrize(
    ("name", "overrides", "field"),
    [
        (
            "gmlp-tiny-vision",
            {"image_size": 64, "patch_size": 2, "d_model": 1, "d_ffn": 100_000, "n_layers": 1},
            "d_ffn",
        ),
        ("gmlp-tiny-mlm", {"seq_len": 1024, "d_model": 1, "d_ffn": 400_000, "n_layers": 1}, "d_ffn"),
        ("transformer-tiny-mlm", {"seq_len": 2048, "d_model": 64, "n_heads": 64, "d_ffn": 8}, "n_heads=64"),
        ("gmlp-tiny-mlm", {"seq_len": 2048, "d_model": 1, "d_ffn": 2, "vocab_size": 900_000, "n_layers": 1}, "vocab"),
    ],
)
def test_a_checkpoint_whose_scored_batch_would_not_fit_is_refused_from_its_config(
    tmp_path: Path, name: str, overrides: dict, field: str
) -> None:
    """A few KB of weights whose widths make one scored batch of the held-out set (256 images, 32 windows) huge:
    refused at load, the batch and the field named."""
    cfg = preset(name, **overrides)
    memory = estimate_memory(cfg)
    assert max((k for k in memory if k != "total"), key=memory.__getitem__) == "batch"
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text(cfg.to_json())
    with mock.patch.object(ck, "build_model", _never), pytest.raises(CheckpointError, match=f"batch.*{field}"):
        load_checkpoint(folder, device="cpu")


# ---- item 3: the W snapshots file ------------------------------------------------------------------------


def test_w_snapshots_stay_within_their_estimate(tmp_path: Path) -> None:
    cases = [("mlm", 256, 3, 4), ("mlm", 512, 1, 6), ("vision", 576, 2, 2)]
    for i, (task, n, layers, count) in enumerate(cases):
        small = dict(d_model=4, d_ffn=8, n_layers=layers, spatial="toeplitz")
        cfg = (
            preset("gmlp-tiny-mlm", seq_len=n, vocab_size=50, **small)
            if task == "mlm"
            else preset("gmlp-tiny-vision", image_size=int(n**0.5), patch_size=1, **small)
        )
        folder = save_checkpoint(build_model(cfg), tmp_path / str(i))
        sn.save_spatial_snapshots(folder, {s: torch.randn(layers, n, n) for s in range(count)})
    rows = _measure(
        """
        from pathlib import Path
        from gmlp_core import read_config
        from gmlp_core.limits import estimate_snapshots
        from gmlp_core.train.snapshots import load_spatial_snapshots
        rows = []
        for folder in sorted(Path(sys.argv[1]).iterdir()):
            load_spatial_snapshots(folder)  # imports, page cache
            snaps, used = peak(lambda: load_spatial_snapshots(folder))
            rows.append([folder.name, used, estimate_snapshots(read_config(folder), len(snaps), itemsize=2)])
        print(json.dumps(rows))
        """,
        str(tmp_path),
    )
    assert len(rows) == len(cases)
    _check_bounds(rows, low=0.75)


def _snapshot_header(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    """A snapshots file whose header claims ``tensors``, sparse: its data is never written (a few KB on disk)."""
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        size = int(np.prod(shape)) * (4 if dtype == "F32" else 2 if dtype in ("F16", "BF16") else 8)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)


@pytest.mark.parametrize(
    ("tensors", "env", "message"),
    [
        (
            {"step_0": ("F16", [1, 40000, 40000])},
            {},
            "not snapshots of this model.*'step_0' \\(F16, shape \\(1, 40000, 40000\\)\\)",
        ),  # #38: 4 KB, sparse
        ({"step_0": ("F16", [3, 16, 16])}, {}, "shape"),  # more layers than the model
        ({"step_0": ("F16", [1, 2, 16, 16])}, {}, "shape"),  # not (n_layers, n, n)
        ({"step_0": ("I64", [2, 16, 16])}, {}, "I64"),  # not a float
        ({"weights": ("F16", [2, 16, 16])}, {}, "not snapshots of this model.*'weights'"),
        ({f"step_{s}": ("F16", [2, 16, 16]) for s in range(4000)}, {"GMLP_LENS_MAX_MEMORY_GB": "0.004"}, "4,000 snap"),
    ],
)
def test_a_w_snapshots_file_is_checked_from_its_header_before_a_tensor_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tensors: dict, env: dict, message: str
) -> None:
    cfg = preset("gmlp-tiny-mlm")  # 2 layers, n = 16
    folder = save_checkpoint(build_model(cfg), tmp_path / "m")
    _snapshot_header(folder / sn.SNAPSHOTS_NAME, tensors)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with mock.patch.object(sn, "safe_open", _never), pytest.raises(CheckpointError, match=message):
        sn.load_spatial_snapshots(folder)


def test_snapshots_a_model_can_hold_are_read(tmp_path: Path) -> None:
    cfg = preset("gmlp-tiny-mlm")
    folder = save_checkpoint(build_model(cfg), tmp_path / "m")
    saved = {s: torch.randn(cfg.n_layers, cfg.seq_len, cfg.seq_len) for s in (0, 10, 5)}
    sn.save_spatial_snapshots(folder, saved)
    loaded = sn.load_spatial_snapshots(folder)
    assert list(loaded) == [0, 5, 10]
    for step, w in loaded.items():
        assert w.dtype == torch.float32
        torch.testing.assert_close(w, saved[step].half().float())


# ---- item 4: convert's --config ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seq_len": 30000, "d_model": 2, "d_ffn": 2, "n_layers": 1}, "seq_len"),
        ({"n_layers": 100_000, "d_model": 2, "d_ffn": 2}, "n_layers"),
        ({"d_model": 60_000, "d_ffn": 60_000}, "GB"),
        ({"task": "vision", "image_size": 1600, "patch_size": 40, "in_channels": 1}, "image_size"),
        ({"seq_len": "long"}, "seq_len='long'"),
        ({"extra": {"pad": "x" * 2_000_000}}, "above the limit of 1 MB"),
    ],
)
def test_convert_checks_its_config_like_every_config_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: dict, message: str
) -> None:
    (tmp_path / "config.json").write_text(json.dumps(preset("gmlp-tiny-mlm").to_dict() | overrides))
    torch.save({"w": torch.zeros(1)}, tmp_path / "tiny.pt")
    with mock.patch("gmlp_core.build_model", _never), mock.patch("torch.load", _never):
        code = main(
            ["convert", str(tmp_path / "tiny.pt"), str(tmp_path / "out"), "--config", str(tmp_path / "config.json")]
        )
    assert code == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_convert_of_a_file_that_is_not_a_fitting_state_dict_exits_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = preset("gmlp-tiny-mlm")
    (tmp_path / "config.json").write_text(cfg.to_json())
    (tmp_path / "text.pt").write_text("hello, weights")
    _snapshot_header(tmp_path / "safetensors.pt", {"w": ("F32", [4])})
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    torch.save(build_model(cfg.replace(d_model=16)).state_dict(), tmp_path / "other.pt")
    for name, message in (
        ("text", "not a weights-only torch file"),
        ("safetensors", "safetensors.pt: "),
        ("list", "expected a state dict"),
        ("other", "does not fit"),
    ):
        out = tmp_path / f"out-{name}"
        code = main(["convert", str(tmp_path / f"{name}.pt"), str(out), "--config", str(tmp_path / "config.json")])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and message in err, (name, err)
        assert not out.exists()


# ---- item 13: a weights file given to import that is not what it says --------------------------------------


def _pickle_file(path: Path) -> None:
    torch.save({"layers.0.fn.norm.weight": torch.zeros(4)}, path)


def _hostile_weights(tmp_path: Path) -> dict[str, Path]:
    files = {}
    files["pickle named .safetensors"] = tmp_path / "a.safetensors"
    _pickle_file(files["pickle named .safetensors"])
    files["plain pickle named .safetensors"] = tmp_path / "b.safetensors"
    files["plain pickle named .safetensors"].write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    files["empty .safetensors"] = tmp_path / "c.safetensors"
    files["empty .safetensors"].write_bytes(b"")
    files["random bytes .safetensors"] = tmp_path / "d.safetensors"
    files["random bytes .safetensors"].write_bytes(os.urandom(4096))
    files["a header that is not a tensor list"] = tmp_path / "e.safetensors"
    raw = b'{"x": 1}    '
    files["a header that is not a tensor list"].write_bytes(struct.pack("<Q", len(raw)) + raw)
    files["a sparse 40000 x 40000 tensor"] = tmp_path / "f.safetensors"
    _snapshot_header(files["a sparse 40000 x 40000 tensor"], {"sgu.weight": ("F32", [1, 40000, 40000])})
    files["safetensors named .pt"] = tmp_path / "g.pt"
    _snapshot_header(files["safetensors named .pt"], {"w": ("F32", [4])})
    files["truncated torch file"] = tmp_path / "h.pt"
    _pickle_file(files["truncated torch file"])
    files["truncated torch file"].write_bytes(files["truncated torch file"].read_bytes()[:200])
    files["text named .bin"] = tmp_path / "i.bin"
    files["text named .bin"].write_text("hello, weights")
    return files


def test_a_weights_file_that_is_not_what_it_says_is_refused_with_a_message(tmp_path: Path) -> None:
    for label, path in _hostile_weights(tmp_path).items():
        with pytest.raises(ImportRefused, match=str(path.name)) as info:
            read_state_dict(path)
        assert "Traceback" not in str(info.value), label
    with pytest.raises(ImportRefused, match="torch pickle: name it .pt"):
        read_state_dict(tmp_path / "a.safetensors")
    with pytest.raises(ImportRefused, match="safetensors file: name it .safetensors"):
        read_state_dict(tmp_path / "g.pt")
    with pytest.raises(ImportRefused, match="GB, above the limit"):
        read_state_dict(tmp_path / "f.safetensors")


def test_import_of_a_file_that_is_not_what_it_says_exits_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("g_mlp_pytorch")
    for label, path in _hostile_weights(tmp_path).items():
        code = main(["import", "g-mlp-pytorch", "--weights", str(path), "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2, label
        assert err.startswith("error: ") and path.name in err, (label, err)
        assert not (tmp_path / "out").exists()
