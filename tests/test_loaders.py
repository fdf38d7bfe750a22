"""dashboard.loaders: the checkpoint handle and the one per-checkpoint cache decorator (no app needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dashboard.loaders import Checkpoint, per_checkpoint


def test_per_checkpoint_caches_by_signature_and_keeps_functions_apart(lens_root: Path) -> None:
    calls: list[str] = []

    @per_checkpoint(max_entries=8)
    def first(checkpoint: Checkpoint, k: int) -> str:
        calls.append("first")
        return f"first {checkpoint.name} {k}"

    @per_checkpoint(max_entries=8)
    def second(checkpoint: Checkpoint, k: int) -> str:
        calls.append("second")
        return f"second {checkpoint.name} {k}"

    folder = lens_root / "mlm-gmlp"
    ckpt = Checkpoint.at("mlm-gmlp", folder)
    assert ckpt.config.arch == "gmlp" and ckpt.signature
    assert first(ckpt, 1) == first(Checkpoint.at("mlm-gmlp", folder), 1) == "first mlm-gmlp 1"
    assert second(ckpt, 1) == "second mlm-gmlp 1"  # same arguments, another function: its own cache
    assert first(ckpt, 2) == "first mlm-gmlp 2"
    assert calls == ["first", "second", "first"]
    config = folder / "config.json"
    stat = config.stat()
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # the file changed on disk
    try:
        assert first(Checkpoint.at("mlm-gmlp", folder), 1) == "first mlm-gmlp 1"
        assert calls[-1] == "first" and len(calls) == 4
    finally:
        os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_the_catalog_is_typed_shared_and_listed_at_most_once_per_scan_interval(
    tmp_path: Path, lens_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder's catalog gives each loadable checkpoint as a typed handle (its config, no table filtering), is
    one shared object while the folder's files are unchanged, and lists the folder at most once every
    ``GMLP_LENS_SCAN_SECONDS``: a checkpoint copied in shows up once that has passed, at once with 0."""
    import shutil

    from dashboard import loaders

    root = tmp_path / "root"
    root.mkdir()
    shutil.copytree(lens_root / "mlm-gmlp", root / "a")
    monkeypatch.setenv("GMLP_LENS_SCAN_SECONDS", "3600")
    first = loaders.catalog(root)
    assert list(first.checkpoints) == ["a"] and first.checkpoints["a"].config.arch == "gmlp"
    assert first.labels["a"].startswith("a") and first.records["a"]["status"] == "ok"
    shutil.copytree(lens_root / "mlm-gmlp", root / "b")
    assert loaders.catalog(root) is first  # within the interval: the same listing, the same shared catalog
    monkeypatch.setenv("GMLP_LENS_SCAN_SECONDS", "0")
    again = loaders.catalog(root)
    assert list(again.checkpoints) == ["a", "b"]
    assert loaders.catalog(root) is again  # listed again, nothing changed: the same catalog object
    assert again.checkpoints["a"] == first.checkpoints["a"]
