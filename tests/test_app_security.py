"""Hostile links, URLs, files and logs against the dashboard: shown as text, refused, never a crashed page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from app_helpers import start, texts

from dashboard import widgets
from dashboard.catalog import find_checkpoints, inspect_checkpoint
from dashboard.style import escape_markdown

pytestmark = pytest.mark.timeout(300)

PAYLOADS = [
    "![t](http://127.0.0.1:9/track.png)",
    "[Click to re-login](http://127.0.0.1:9/login)",
    "<img src=x onerror=alert(1)>",
    "$\\href{http://x}{y}$ :red[alarm] **bold** `code`",
]


def _copy(lens_root: Path, tmp_path: Path, names: tuple[str, ...] = ("mlm-gmlp",)) -> Path:
    root = tmp_path / "root"
    for name in names:
        shutil.copytree(lens_root / name, root / name)
    return root


@pytest.mark.parametrize("payload", PAYLOADS)
def test_escaped_text_has_no_markup_left(payload: str) -> None:
    escaped = escape_markdown(payload)
    # every markdown-active character is preceded by a backslash, so no image, link, HTML or LaTeX remains
    for i, ch in enumerate(escaped):
        if ch in "![]()<>`*_$:\\" and (i == 0 or escaped[i - 1] != "\\"):
            assert ch == "\\" and i + 1 < len(escaped), (payload, escaped, i)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_shared_link_cannot_inject_markup(lens_root: Path, monkeypatch: pytest.MonkeyPatch, payload: str) -> None:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(lens_root))
    at = start("overview", {"folder": payload})
    errors = " ".join(e.value for e in at.sidebar.error)
    assert "Showing the root instead" in errors
    assert "](" not in errors and "![" not in errors, errors  # the payload is escaped text, not markdown


def test_a_very_long_folder_name_gets_a_message(lens_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(lens_root))
    for folder in ("a" * 300, "b/" * 600):
        at = start("overview", {"folder": folder})
        assert "too long" in " ".join(e.value for e in at.sidebar.error)
        assert not at.exception and len(at.dataframe[0].value) > 0, "the root is still served"


@pytest.mark.parametrize(
    "name", ["metrics.jsonl", "metrics.json", "model.safetensors", "config.json", "tokenizer.json"]
)
def test_files_linked_out_of_the_root_are_never_read(lens_root: Path, tmp_path: Path, name: str) -> None:
    root = _copy(lens_root, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / name
    secret.write_bytes((root / "mlm-gmlp" / name).read_bytes() if (root / "mlm-gmlp" / name).exists() else b"{}")
    (root / "mlm-gmlp" / name).unlink(missing_ok=True)
    (root / "mlm-gmlp" / name).symlink_to(secret)
    [candidate] = find_checkpoints(root)
    row = inspect_checkpoint(candidate)
    assert row["status"] == "refused" and name in row["error"]


@pytest.mark.parametrize("loop", ["self", "pair", "through a folder"])
def test_symlink_loops_are_refused_with_a_message(
    lens_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loop: str
) -> None:
    from dashboard.paths import PathRefused, resolve_within

    root = _copy(lens_root, tmp_path)
    if loop == "self":
        (root / "a").symlink_to("a")
    elif loop == "pair":
        (root / "a").symlink_to("b")
        (root / "b").symlink_to("a")
    else:
        (root / "d").mkdir()
        (root / "d" / "up").symlink_to(root / "a")
        (root / "a").symlink_to(root / "d" / "up")
    for folder in ("a", "a/mlm-gmlp"):
        with pytest.raises(PathRefused, match="symlink loop"):
            resolve_within(root, folder)
    # inside a checkpoint folder too: the folder is refused, the rest listed
    (root / "mlm-gmlp" / "tokenizer.json").rename(root / "tok.json")
    (root / "mlm-gmlp" / "tokenizer.json").symlink_to("tokenizer.json")
    rows = {c.name: inspect_checkpoint(c) for c in find_checkpoints(root)}
    assert rows["a"]["status"] == "refused" and "loop" in rows["a"]["error"]
    assert rows["mlm-gmlp"]["status"] == "refused" and "tokenizer.json" in rows["mlm-gmlp"]["error"]
    monkeypatch.setenv("GMLP_LENS_ROOT", str(root))
    at = start("overview", {"folder": "a"})
    assert not at.exception
    assert "symlink loop" in " ".join(e.value for e in at.sidebar.error)


@pytest.mark.parametrize("stray", ["x.pt", "notes.bin", "old/weights.ckpt"])
def test_a_stray_pickle_does_not_hide_the_checkpoints_beside_it(lens_root: Path, tmp_path: Path, stray: str) -> None:
    root = _copy(lens_root, tmp_path, ("mlm-gmlp", "mlm-transformer"))
    (root / stray).parent.mkdir(parents=True, exist_ok=True)
    (root / stray).write_bytes(b"\x80\x04not really a pickle")
    rows = {c.name: inspect_checkpoint(c) for c in find_checkpoints(root)}
    assert rows["mlm-gmlp"]["status"] == rows["mlm-transformer"]["status"] == "ok"
    assert rows[stray]["status"] == "broken" and "refusing to load a pickle" in rows[stray]["error"]


def test_hard_linked_files_are_refused_unless_allowed(
    lens_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _copy(lens_root, tmp_path, ("mlm-gmlp", "mlm-transformer"))
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    (root / "mlm-gmlp" / "metrics.json").unlink()
    (root / "mlm-gmlp" / "metrics.json").hardlink_to(outside)
    rows = {c.name: inspect_checkpoint(c) for c in find_checkpoints(root)}
    assert rows["mlm-gmlp"]["status"] == "refused" and "hard-linked" in rows["mlm-gmlp"]["error"]
    assert rows["mlm-transformer"]["status"] == "ok"
    monkeypatch.setenv("GMLP_LENS_ALLOW_HARD_LINKS", "1")
    assert inspect_checkpoint(find_checkpoints(root)[0])["status"] == "ok"


def test_training_page_without_validation_rows(
    lens_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _copy(lens_root, tmp_path)
    rows = [{"step": s, "loss": 3.0 - s / 100, "lr": 1e-3} for s in range(0, 60, 10)]
    (root / "mlm-gmlp" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "[1, 2]\n")
    monkeypatch.setenv("GMLP_LENS_ROOT", str(root))
    at = start("training", {"models": "mlm-gmlp"})
    assert "no validation loss in these logs" in json.dumps([c.proto.spec for c in at.get("plotly_chart")])


HOSTILE_LOG_LINES = [
    {"step": 10, "loss": "abc", "lr": 1e-3},  # a string loss
    {"step": None, "loss": 2.0},  # a null step
    {"step": "20", "loss": 2.0},  # a step that is text
    {"step": True, "loss": 2.0},  # a step that is a boolean
    {"step": -5, "loss": 2.0},
    {"step": 30, "loss": [1, 2], "val_loss": {"x": 1}, "tokens_per_s": False},
    {"step": 40, "loss": 1.5, "val_loss": "NaN"},
    {"step": 50},  # nothing but a step
]


def test_a_log_with_bad_rows_and_values_is_drawn_without_them(tmp_path: Path) -> None:
    from gmlp_core.checkpoints import load_metrics_log

    lines = [json.dumps(r) for r in HOSTILE_LOG_LINES] + ["not json", "[1, 2]", '{"step": 60, "loss": NaN}']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    log = load_metrics_log(tmp_path)
    assert [r["step"] for r in log.rows] == [10, 30, 40, 50, 60]
    for row in log.rows:  # what is kept is a finite number, and the step a whole number
        assert all(isinstance(v, (int, float)) and not isinstance(v, bool) and v == v for v in row.values()), row
    assert log.rows[2] == {"step": 40, "loss": 1.5}
    text = " ".join(log.notes)
    assert "6 line(s)" in text and "'loss'" in text and "'val_loss'" in text and "'tokens_per_s'" in text


@pytest.mark.parametrize("page", ["training", "spatial"])
def test_pages_skip_bad_log_rows_with_a_note(
    lens_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: str
) -> None:
    root = _copy(lens_root, tmp_path)
    good = [{"step": s, "loss": 3.0 - s / 100, "val_loss": 3.1 - s / 100, "lr": 1e-3} for s in range(0, 60, 10)]
    lines = [json.dumps(r) for r in good + HOSTILE_LOG_LINES]
    (root / "mlm-gmlp" / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("GMLP_LENS_ROOT", str(root))
    at = start(page, {"models": "mlm-gmlp"})  # fails on any exception
    if page == "training":
        assert "line(s) of metrics.jsonl skipped" in texts(at) and at.get("plotly_chart")
    # a log whose loss is never a number: no loss chart, the rest still drawn, no exception
    (root / "mlm-gmlp" / "metrics.jsonl").write_text("\n".join(json.dumps({"step": s, "loss": "x"}) for s in range(5)))
    at = start(page, {"models": "mlm-gmlp"})


@pytest.mark.parametrize("kind", ["wrong shapes among good ones", "garbage", "truncated"])
def test_bad_w_snapshots_are_skipped_with_a_note(
    lens_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    import torch
    from safetensors.torch import save_file

    from gmlp_core.checkpoints import read_config
    from gmlp_core.train.snapshots import SNAPSHOTS_NAME, read_spatial_snapshots

    root = _copy(lens_root, tmp_path)
    folder = root / "mlm-gmlp"
    cfg = read_config(folder)
    shape = (cfg.n_layers, cfg.seq_len, cfg.seq_len)
    good = {f"step_{s}": torch.randn(shape).half() for s in (0, 10)}
    if kind == "wrong shapes among good ones":
        bad = {"step_5": torch.zeros(1, 3, 3).half(), "weights": torch.zeros(shape).half()}
        save_file(good | bad | {"step_7": torch.zeros(shape, dtype=torch.int32)}, str(folder / SNAPSHOTS_NAME))
    elif kind == "garbage":
        (folder / SNAPSHOTS_NAME).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}" * 3)
    else:
        save_file(good, str(folder / SNAPSHOTS_NAME))
        data = (folder / SNAPSHOTS_NAME).read_bytes()
        (folder / SNAPSHOTS_NAME).write_bytes(data[: len(data) - 100])
    snaps, notes = read_spatial_snapshots(folder)
    if kind == "wrong shapes among good ones":
        assert sorted(snaps) == [0, 10] and "3 tensor(s) skipped" in notes[0]
    else:
        assert snaps == {} and notes
    monkeypatch.setenv("GMLP_LENS_ROOT", str(root))
    at = start("spatial", {"models": "mlm-gmlp"})  # fails on any exception
    shown = texts(at)
    assert "Snapshots:" in shown, shown[-2000:]


def test_guard_survives_a_tokenizer_panic_but_not_an_exit() -> None:
    class PanicException(BaseException):  # what tokenizers raises from a Rust panic
        pass

    with widgets.guard("Fill-mask"):
        raise PanicException("regex backtrack limit")
    with pytest.raises(SystemExit), widgets.guard("Fill-mask"):
        raise SystemExit(1)


def test_overview_escapes_a_hostile_checkpoint_name(
    lens_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    hostile = root / "![t](track.png) [x](y)"
    hostile.mkdir()
    (hostile / "config.json").write_text("{not json")
    monkeypatch.setenv("GMLP_LENS_ROOT", str(root))
    at = start("overview")
    source = " ".join(e.value for e in at.error)  # the markdown Streamlit renders
    assert "![t](track.png)" not in source and "](" not in source, source
    assert "![t](track.png) [x](y)" in texts(at), "a reader sees the name as it is, as text"


def test_a_long_sequence_is_drawn_as_block_means(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The largest n the limits allow reaches the Spatial weights page without sending n x n cells."""
    import torch

    from dashboard.plots import MAX_SIDE, pool_blocks
    from gmlp_core import build_model, preset, save_checkpoint
    from gmlp_core.limits import Limits

    z = torch.arange(20.0).reshape(4, 5).numpy()
    pooled, factor = pool_blocks(z, max_side=2)
    assert factor == 3 and pooled.shape == (2, 2) and pooled[0, 0] == z[:3, :3].mean()
    n = Limits().max_seq_len
    cfg = preset("gmlp-tiny-vision", image_size=int(n**0.5), patch_size=1, d_model=4, d_ffn=8, n_layers=1)
    assert n - 2 * n**0.5 < cfg.seq_len <= n  # the largest square grid within the limit
    save_checkpoint(build_model(cfg), tmp_path / "root" / "long", dtype=torch.float16)
    monkeypatch.setenv("GMLP_LENS_ROOT", str(tmp_path / "root"))
    at = start("spatial", {"models": "long"})
    sides = [
        len(t["z"]) if isinstance(t["z"], list) else int(str(t["z"]["shape"]).split(",")[0])
        for c in at.get("plotly_chart")
        for t in json.loads(c.proto.spec)["data"]
        if t.get("type") == "heatmap"
    ]
    # The n x n maps are pooled to MAX_SIDE; the tiled filter grid (at most 8 x 8 rows of W of grid x grid, one
    # heatmap) is the largest other one: nothing near n = 2025 cells a side is sent.
    w_maps = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert max(len(t["z"]) for t in w_maps if t.get("type") == "heatmap") <= MAX_SIDE
    assert sides and max(sides) <= 8 * (cfg.spatial_grid * 5 // 4 + 3) < n / 4  # tiles, their gaps and titles
