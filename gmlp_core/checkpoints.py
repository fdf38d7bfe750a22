"""Safe checkpoints: ``config.json`` + ``model.safetensors`` (+ ``tokenizer.json``, ``metrics.json``).

Nothing here unpickles: safetensors stores raw tensors and JSON stores everything else, so loading a
checkpoint never runs code from it. Every file is written to a temporary name and renamed into
place, so a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gmlp_core.data.images import class_names_of, preprocess_of
from gmlp_core.limits import MB, LimitError, Limits, check_config
from gmlp_core.models import LensModel, ModelConfig, build_model

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_NAME = "tokenizer.json"
METRICS_NAME = "metrics.json"
METRICS_LOG_NAME = "metrics.jsonl"  # one row per evaluation during training
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
FLOAT_NAMES = ("F32", "F16", "BF16")  # the same dtypes as safetensors names them in its header


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the problem."""


def _umask() -> int:
    """The process umask, read without changing it (os.umask can only be read by setting it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp creates 0600 (and writers may recreate the file): a checkpoint is read by whoever runs the
        # dashboard, so it gets the mode a plain open() would give, 0644 under the usual umask.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, SafetensorError) or (isinstance(err, OSError) and err.errno == errno.ENOSPC):
            raise CheckpointError(f"{path}: could not be written ({err}); is the disk full?") from err
        raise


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` via a temporary file and a rename."""
    _atomic_write(Path(path), lambda p: p.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def save_checkpoint(
    model: LensModel,
    directory: str | Path,
    *,
    tokenizer: Any | None = None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Save ``model`` (and optionally its tokenizer and metrics) under ``directory``.

    ``extra`` is merged into ``config.json`` under the key ``"extra"`` (e.g. data and training
    provenance). ``dtype`` (e.g. ``torch.float16``) stores floating tensors in that type.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config
    if extra:
        config = config.replace(extra={**config.extra, **extra})
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    # Weights first, config last: a reader that finds the new config also finds the new weights.
    _atomic_write(directory / WEIGHTS_NAME, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
    if tokenizer is not None:
        _atomic_write(directory / TOKENIZER_NAME, lambda p: tokenizer.save(str(p)))
    if metrics is not None:
        write_json_atomic(directory / METRICS_NAME, metrics)
    write_json_atomic(directory / CONFIG_NAME, config.to_dict())
    return directory


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; a device that does not exist here is a ``ValueError``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a device torch knows: use auto, cpu, cuda or cuda:N") from err
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: no CUDA GPU is available here; use --device cpu (or auto)")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif resolved.type not in ("cpu", "meta"):
        raise ValueError(f"device {device!r}: use auto, cpu, cuda or cuda:N")
    return resolved


def read_config(directory: str | Path) -> ModelConfig:
    """Read and validate ``config.json`` of a checkpoint directory."""
    directory = _check_directory(directory)
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(
            f"{path}: missing {CONFIG_NAME}; a checkpoint is a folder with {CONFIG_NAME} and {WEIGHTS_NAME}"
        )
    return read_config_file(path)


def read_config_file(path: Path) -> ModelConfig:
    """Read and validate a config JSON file: its size, its fields, the resource limits (``limits.check_config``)
    and what an imported classifier records. Every config read from disk goes through here."""
    limits = Limits.from_env()
    data = read_json(path, limits.max_json_mb)
    try:
        config = ModelConfig.from_dict(data)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: {err}") from err
    try:
        check_config(config, limits, source=str(path))
    except LimitError as err:
        raise CheckpointError(str(err)) from err
    try:  # what an imported classifier records for its inputs and outputs
        preprocess_of(config)
        class_names_of(config)
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from err
    return config


def read_json(path: Path, max_mb: float) -> Any:
    """Parse a JSON file of at most ``max_mb`` megabytes, with a ``CheckpointError`` for anything wrong."""
    size = path.stat().st_size
    if size > max_mb * MB:
        raise CheckpointError(f"{path}: {size / MB:.1f} MB is above the limit of {max_mb:g} MB for this file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from err
    except RecursionError as err:
        raise CheckpointError(f"{path}: JSON nested too deeply") from err


def _check_directory(directory: str | Path) -> Path:
    directory = Path(directory)
    if directory.is_file() and directory.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(_pickle_message(directory))
    if not directory.exists():
        raise CheckpointError(f"{directory}: no such checkpoint folder")
    if not directory.is_dir():
        raise CheckpointError(
            f"{directory}: a checkpoint is a folder with {CONFIG_NAME} and {WEIGHTS_NAME}, not a file"
        )
    return directory


def _pickle_message(path: Path) -> str:
    return (
        f"{path}: refusing to load a pickle ({path.suffix}): unpickling can run arbitrary code. "
        "Convert it once, in a trusted environment, with "
        "`python -m gmlp_core convert PICKLE OUT_DIR --config CONFIG_JSON`, or load it yourself and "
        "call gmlp_core.save_checkpoint(model, OUT_DIR)."
    )


def load_state(directory: str | Path, config: ModelConfig | None = None) -> dict[str, torch.Tensor]:
    """Read and validate the tensors of a checkpoint against its config (float32, on CPU)."""
    directory = _check_directory(directory)
    config = config or read_config(directory)
    path = directory / WEIGHTS_NAME
    if not path.is_file():
        pickles = sorted(p.name for p in directory.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            raise CheckpointError(_pickle_message(directory / pickles[0]))
        raise CheckpointError(f"{path}: missing {WEIGHTS_NAME}")
    # The tensor list is checked against the config before a byte of tensor data is read.
    header = _safetensors_header(path, Limits.from_env().max_header_mb)
    with torch.device("meta"):
        expected = build_model(config).state_dict()
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    mismatched = [
        f"{k} (file {header[k][1]}, config {tuple(expected[k].shape)})"
        for k in sorted(set(header) & set(expected))
        if header[k][1] != tuple(expected[k].shape)
    ]
    wrong_dtype = [
        f"{k} ({header[k][0]})" for k in sorted(set(header) & set(expected)) if header[k][0] not in FLOAT_NAMES
    ]
    problems = []
    for label, items in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("shape mismatch", mismatched),
        ("not a float tensor", wrong_dtype),
    ):
        if items:
            shown = ", ".join(items[:5]) + (f", ... ({len(items)} in all)" if len(items) > 5 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointError(
            f"{path} does not match {directory / CONFIG_NAME} ({config.arch}/{config.task}): " + "; ".join(problems)
        )
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({err})") from err
    bad = [k for k, v in state.items() if not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: non-finite values in {', '.join(bad[:5])}")
    return {k: v.float() for k, v in state.items()}


def load_checkpoint(directory: str | Path, device: str | torch.device = "auto") -> LensModel:
    """Load a checkpoint folder into a model in ``eval()`` mode on ``device`` (``"auto"``: CUDA if
    available, else CPU). Raises ``CheckpointError`` naming the file and the problem."""
    config = read_config(directory)
    state = load_state(directory, config)
    model = build_model(config)
    model.load_state_dict(state, strict=True)
    return model.to(resolve_device(device)).eval()


def load_tokenizer(directory: str | Path) -> Any | None:
    """The checkpoint's HF ``tokenizers.Tokenizer``, or None when it has none."""
    path = Path(directory) / TOKENIZER_NAME
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    max_mb = Limits.from_env().max_tokenizer_mb
    if path.stat().st_size > max_mb * MB:
        raise CheckpointError(f"{path}: {path.stat().st_size / MB:.1f} MB is above the limit of {max_mb:g} MB")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except BaseException as err:  # tokenizers raises its own Exception subclass, or a PanicException
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        raise CheckpointError(f"{path}: not a valid tokenizer file ({type(err).__name__}: {err})") from err
    _probe_tokenizer(tokenizer, path)
    return tokenizer


# Inputs that make a backtracking pre-tokenizer regex slow or panic: long runs of one class of character.
TOKENIZER_PROBES = ("a" * 4000 + "!", " " * 4000 + "a", "1" * 4000 + "x", "ab-" * 1300 + "\n", "[MASK] " * 600)
TOKENIZER_PROBE_SECONDS = 2.0
# The longest text a visitor can give a tokenizer in one go (the dashboard reads at most this much of a text box:
# ``dashboard.widgets.TEXT_WINDOW``), and how long a tokenizer may take on the worst such text: encoding holds the
# interpreter, so every other session of the server waits that long.
TYPED_TEXT_CHARS = 20_000
TYPED_TEXT_SECONDS = 1.0


def _probe_tokenizer(tokenizer: Any, path: Path) -> None:
    """Refuse a tokenizer that panics or is slow on adversarial text of the size the dashboard accepts, before
    any visitor's text reaches it (a panic in Rust is a BaseException; a slow regex would hold a server thread)."""
    try:
        _probe_long_words(tokenizer, path)  # first: it stops within milliseconds of a word length that is too slow
        start = time.perf_counter()
        for text in TOKENIZER_PROBES:
            tokenizer.encode(text, add_special_tokens=False)
        seconds = time.perf_counter() - start
        if seconds > TOKENIZER_PROBE_SECONDS:
            raise CheckpointError(
                f"{path}: the tokenizer took {seconds:.1f} s on 20 kB of test text (limit "
                f"{TOKENIZER_PROBE_SECONDS:g} s): its pre-tokenizer pattern is too slow to serve"
            )
    except CheckpointError:
        raise
    except BaseException as err:
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        raise CheckpointError(
            f"{path}: the tokenizer fails on long runs of text ({type(err).__name__}: {err})"
        ) from err


def _worst_word(tokenizer: Any) -> tuple[str, int]:
    """The character whose runs cost the tokenizer the most per character, and the longest word worth timing.

    A WordPiece model matches a word greedily, longest piece first: a word it reads one piece per character (the
    character and its continuation, ``##c``, both in the vocabulary) makes it try every shorter substring at every
    position, quadratic in the word's length or worse, up to ``max_input_chars_per_word`` (longer words are one
    [UNK]). Other models have no such limit: a word as long as a typed text is timed.
    """
    model = tokenizer.model
    limit = getattr(model, "max_input_chars_per_word", None)
    longest = min(limit, TYPED_TEXT_CHARS) if isinstance(limit, int) and limit > 0 else TYPED_TEXT_CHARS
    prefix = getattr(model, "continuing_subword_prefix", None) or ""
    vocab = tokenizer.get_vocab(with_added_tokens=False)
    singles = sorted((t for t in vocab if len(t) == 1 and prefix + t in vocab), key=lambda c: (not c.isalnum(), c))
    for char in singles[:16]:  # one the normalizer and pre-tokenizer leave alone: eight characters, eight pieces
        if len(tokenizer.encode(char * 8, add_special_tokens=False).ids) == 8:
            return char, longest
    return "a", longest


def _probe_long_words(tokenizer: Any, path: Path) -> None:
    """Refuse a tokenizer whose worst words would hold the server for more than ``TYPED_TEXT_SECONDS`` over a typed
    text of ``TYPED_TEXT_CHARS`` characters: one such word is timed at doubling lengths up to the longest the
    tokenizer reads as a word, and its time is scaled to a text made of them (stopping at the first length over)."""
    char, longest = _worst_word(tokenizer)
    length = min(64, longest)
    while True:
        word = char * length
        seconds = _encode_seconds(tokenizer, word)
        if seconds * TYPED_TEXT_CHARS / (length + 1) > TYPED_TEXT_SECONDS:
            seconds = min(seconds, _encode_seconds(tokenizer, word))  # one slow measurement is not enough to refuse
        projected = seconds * TYPED_TEXT_CHARS / (length + 1)  # words of this length, one space apart
        if projected > TYPED_TEXT_SECONDS:
            limit = getattr(tokenizer.model, "max_input_chars_per_word", None)
            setting = f" (max_input_chars_per_word = {limit:,}; BERT's is 100)" if isinstance(limit, int) else ""
            raise CheckpointError(
                f"{path}: the tokenizer needs {seconds * 1e3:.0f} ms for one word of {length:,} characters{setting}, "
                f"about {projected:.1f} s for {TYPED_TEXT_CHARS:,} typed characters of such words (limit "
                f"{TYPED_TEXT_SECONDS:g} s, during which the server answers nobody): too slow to serve"
            )
        if length >= longest:
            return
        length = min(longest, 2 * length)


def _encode_seconds(tokenizer: Any, text: str) -> float:
    start = time.perf_counter()
    tokenizer.encode(text, add_special_tokens=False)
    return time.perf_counter() - start


def load_metrics(directory: str | Path) -> dict[str, Any]:
    """The checkpoint's ``metrics.json`` (empty when absent)."""
    path = Path(directory) / METRICS_NAME
    if not path.is_file():
        return {}
    data = read_json(path, Limits.from_env().max_json_mb)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


@dataclass(frozen=True)
class MetricsLog:
    """A checkpoint's ``metrics.jsonl``: the rows that can be drawn, and a note for everything left out."""

    rows: list[dict[str, Any]]
    notes: list[str]


def load_metrics_log(directory: str | Path) -> MetricsLog:
    """The rows of the checkpoint's ``metrics.jsonl`` (one per evaluation during training); empty when absent.

    Everything else is left out with a note, never an error: a file over the log limit is not read; a line that is
    not a JSON object, or whose ``step`` is not a whole number >= 0, is skipped; a value that is not a finite
    number (a string loss, a list, true/false, NaN) is dropped from its row, which keeps its other values.
    """
    file = Path(directory) / METRICS_LOG_NAME
    max_mb = Limits.from_env().max_log_mb
    if not file.is_file():
        return MetricsLog([], [])
    if file.stat().st_size > max_mb * MB:
        log.warning("%s is over %g MB; not read", file, max_mb)
        return MetricsLog([], [f"metrics.jsonl is over the log limit of {max_mb:g} MB: not read"])
    rows: list[dict[str, Any]] = []
    bad_lines: list[int] = []
    dropped: dict[str, int] = {}
    for i, line in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            row = None
        step = row.get("step") if isinstance(row, dict) else None
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            bad_lines.append(i)
            continue
        kept: dict[str, Any] = {"step": step}
        for key, value in row.items():
            if key == "step":
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                kept[str(key)] = value
            elif value is not None:
                dropped[str(key)] = dropped.get(str(key), 0) + 1
        rows.append(kept)
    notes = []
    if bad_lines:
        shown = ", ".join(map(str, bad_lines[:5])) + (", ..." if len(bad_lines) > 5 else "")
        notes.append(
            f"{len(bad_lines)} line(s) of metrics.jsonl skipped (not a JSON object with a whole-number step): "
            f"line {shown}"
        )
    for key, count in sorted(dropped.items()):
        notes.append(f"{count} value(s) of {key!r} left out (not a finite number)")
    for note in notes:
        log.warning("%s: %s", file, note)
    return MetricsLog(rows, notes)


def read_metrics_log(directory: str | Path) -> list[dict[str, Any]]:
    """The drawable rows of the checkpoint's ``metrics.jsonl`` (``load_metrics_log``'s rows)."""
    return load_metrics_log(directory).rows


def _safetensors_header(path: Path, max_mb: float) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Each tensor's (dtype, shape) from a safetensors header, read without loading any tensor data."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path}: corrupt or truncated safetensors file (no header)")
            (size,) = struct.unpack("<Q", head)
            if size > path.stat().st_size - 8:
                raise CheckpointError(
                    f"{path}: corrupt or truncated safetensors file (its header claims {size:,} bytes, "
                    f"the file has {path.stat().st_size:,})"
                )
            if size > max_mb * MB:
                raise CheckpointError(
                    f"{path}: its tensor list (header) is {size / MB:.0f} MB, above the limit of {max_mb:g} MB"
                )
            raw = f.read(size)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read ({err})") from err
    if len(raw) < size:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file (header cut short)")
    try:
        header = json.loads(raw)
        return {
            k: (str(v["dtype"]), tuple(int(x) for x in v["shape"])) for k, v in header.items() if k != "__metadata__"
        }
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, AttributeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file (bad header: {err})") from err
