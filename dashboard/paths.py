"""Where the app may read: the configured checkpoint root, and nothing outside it.

The root comes from ``streamlit run dashboard/app.py -- --root DIR``, else the ``GMLP_LENS_ROOT``
environment variable, else the repository's ``checkpoints/``. A user can only narrow it (a sub-folder
typed in the sidebar); ``..``, absolute paths and symlinks that lead outside the root are refused.
No streamlit import here: these are plain functions the tests call directly.
"""

from __future__ import annotations

import argparse
import errno
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from gmlp_core.zoo import DEFAULT_ROOT

ROOT_ENV = "GMLP_LENS_ROOT"
ALLOW_HARD_LINKS_ENV = "GMLP_LENS_ALLOW_HARD_LINKS"  # "1": read hard-linked files (a root only you write to)
MAX_FOLDER_CHARS = 1024  # a sub-folder typed in the sidebar or given in the URL


class PathRefused(ValueError):
    """A path the app will not read because it is not inside the configured root."""


def configured_root(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> Path:
    """The checkpoint root: ``--root`` on the command line, else ``$GMLP_LENS_ROOT``, else ``checkpoints/``."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    parser.add_argument("--root", default=None)
    try:
        args, _ = parser.parse_known_args(list(argv) if argv is not None else [])
    except argparse.ArgumentError as err:
        raise SystemExit(f"gMLP Lens: {err}; usage: streamlit run dashboard/app.py -- --root DIR") from err
    environ = os.environ if environ is None else environ
    root = args.root or environ.get(ROOT_ENV) or str(DEFAULT_ROOT)
    return Path(root).expanduser().resolve()


def resolve_within(root: Path, relative: str) -> Path:
    """``root / relative`` resolved, refusing anything that would read outside ``root``.

    Raises ``PathRefused`` for absolute paths, ``~``, any ``..`` component, NUL bytes, and for
    symlinks (anywhere along the path) whose target lies outside the root.
    """
    root = Path(root).resolve()
    text = (relative or "").strip()
    if not text or text == ".":
        return root
    if "\x00" in text:
        raise PathRefused("the folder name contains a NUL byte")
    if len(text) > MAX_FOLDER_CHARS or any(len(part) > 255 for part in text.replace("\\", "/").split("/")):
        raise PathRefused(f"the folder name is too long ({len(text):,} characters; at most {MAX_FOLDER_CHARS})")
    pure = PurePosixPath(text.replace("\\", "/"))
    if pure.is_absolute() or text.startswith("~") or (len(text) > 1 and text[1] == ":"):
        raise PathRefused(
            f"{text!r} is an absolute path; give a sub-folder relative to the checkpoint root ({root}), "
            "or restart the app with `-- --root DIR` to use another root"
        )
    if ".." in pure.parts:
        raise PathRefused(f"{text!r} contains '..'; only folders inside the checkpoint root ({root}) can be opened")
    try:
        target = (root / pure).resolve()
    except (OSError, RuntimeError) as err:  # Python 3.11-3.12 raise RuntimeError on a symlink loop, 3.13 OSError
        raise PathRefused(f"{text!r} cannot be opened ({_reason(err)})") from err
    if not is_within(target, root):
        raise PathRefused(f"{text!r} is a link that leads outside the checkpoint root ({root}); it is not opened")
    return target


def _reason(err: Exception) -> str:
    """Why a path did not resolve, in words: a symlink loop, or the operating system's reason."""
    if isinstance(err, RuntimeError) or getattr(err, "errno", None) == errno.ELOOP:
        return "a symlink loop: a link that leads, through other links, back to itself"
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def link_problem(path: Path, root: Path) -> str | None:
    """Why the link ``path`` may not be followed (a loop, or a target outside ``root``), or None when it may."""
    try:
        target = Path(path).resolve(strict=False)
    except (OSError, RuntimeError) as err:
        return _reason(err)
    try:
        os.stat(target)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return _reason(err)
    return None if is_within(target, root) else "a link that leads outside the root"


def is_within(path: Path, root: Path) -> bool:
    """Whether ``path`` (after resolving symlinks) lies inside ``root``."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):  # a symlink loop resolves to an error
        return False


def display_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` for tables and messages ("." for the root itself)."""
    try:
        rel = Path(path).relative_to(root)
    except ValueError:
        return str(path)
    return str(rel) if str(rel) != "." else "."


def links_leaving(folder: Path, root: Path) -> list[str]:
    """The names of files in ``folder`` that are links resolving outside ``root`` (none may be read)."""
    out = []
    try:
        for entry in os.scandir(folder):
            if entry.is_symlink() and link_problem(Path(entry.path), root):
                out.append(entry.name)
    except OSError:
        return out
    return sorted(out)


def hard_linked(folder: Path) -> list[str]:
    """The names of files in ``folder`` with more than one hard link (``st_nlink > 1``), unless
    ``$GMLP_LENS_ALLOW_HARD_LINKS`` is 1.

    A hard link, unlike a symlink, carries no trace of where its other names are: one may name a file outside
    the root (anyone who can write into a shared root can link a file they can read). The app cannot tell, so it
    refuses them; on a root only you write to, set ``GMLP_LENS_ALLOW_HARD_LINKS=1``.
    """
    if os.environ.get(ALLOW_HARD_LINKS_ENV) == "1":
        return []
    out = []
    try:
        for entry in os.scandir(folder):
            if not entry.is_symlink() and entry.is_file() and entry.stat().st_nlink > 1:
                out.append(entry.name)
    except OSError:
        return out
    return sorted(out)
