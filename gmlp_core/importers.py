"""Import trained gMLPs, exactly: timm's ImageNet gMLPs and g-mlp-pytorch (lucidrains) checkpoints.

Both peers compute the same function as our ``GMLPBlock`` (``x + V(s(GELU(U(LN(x)))))``, split gating,
``s(Z) = Z1 * (W LN(Z2) + b)``), so an import is a renaming of tensors, checked three ways:

1. our ``ModelConfig`` is built from the peer's (and from the weights' shapes, which must agree with it);
2. every peer tensor is mapped exactly once onto every one of ours (names and shapes, ``strict=True``);
3. the peer's own model code and ours run on one random batch: the largest logit difference is reported
   and above ``TOLERANCE`` nothing is written.

| timm (``MlpMixer`` with ``SpatialGatingBlock``)     | g-mlp-pytorch (``gMLP`` / ``gMLPVision``)      | ours                          |
| --------------------------------------------------- | ---------------------------------------------- | ----------------------------- |
| ``stem.proj``  (Conv2d)                              | ``to_patch_embed.1`` (Linear, reshaped)        | ``embed.proj``                |
|                                                     | ``to_embed`` (token model)                     | ``embed.token``               |
| ``blocks.i.norm``                                   | ``layers.i.fn.norm``                           | ``blocks.i.norm``             |
| ``blocks.i.mlp_channels.fc1``                       | ``layers.i.fn.fn[.fn].proj_in.0``              | ``blocks.i.proj_in`` (U)      |
| ``blocks.i.mlp_channels.gate.norm``                 | ``...sgu.norm``                                | ``blocks.i.sgu.norm``         |
| ``blocks.i.mlp_channels.gate.proj`` (weight, bias)  | ``...sgu.weight[0]``, ``...sgu.bias[0]``        | ``blocks.i.sgu.spatial``      |
| ``blocks.i.mlp_channels.fc2``                       | ``...proj_out``                                | ``blocks.i.proj_out`` (V)     |
|                                                     | ``...attn.to_qkv`` (no bias), ``...attn.to_out`` | ``blocks.i.tiny_attn`` (aMLP) |
| ``norm``, ``head``                                  | ``to_logits.0``, ``to_logits.1`` / ``.2``       | ``norm``, ``head``            |

Two config fields exist for these peers: timm's LayerNorms use eps 1e-6 except the one inside the gate
(``nn.LayerNorm``'s default 1e-5), hence ``sgu_norm_eps``; g-mlp-pytorch's token model ends in an untied
``Linear(dim, num_tokens)``, hence ``mlm_head="linear"``. Its tiny attention has no qkv bias: ours is set to 0.

timm and g-mlp-pytorch are optional (``pip install -e .[import]``); nothing here runs at import time.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import math
import re
import sys
import traceback
import types
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from gmlp_core.checkpoints import CheckpointError, _safetensors_header, save_checkpoint
from gmlp_core.data.images import Preprocess
from gmlp_core.limits import GB, Limits, check_config
from gmlp_core.models import LensModel, ModelConfig, build_model

log = logging.getLogger(__name__)

TOLERANCE = 1e-4  # the largest logit difference an import may have (fp32: ~1e-6 is typical)
VERIFY_BATCH = 2

# timm's gMLPs (timm/models/mlp_mixer.py): 224 px, 16 px patches, 30 blocks, mlp_ratio 6. timm publishes weights
# for gMLP-S only (ImageNet-1k, 79.6% top-1); Ti and B are registered "untrained" and import from --weights.
TIMM_MODELS: dict[str, int] = {"gmlp_ti16_224": 128, "gmlp_s16_224": 256, "gmlp_b16_224": 512}
# timm's pretrained_cfg for all three: bicubic, crop_pct 0.875, mean = std = 0.5 (tests compare with timm's own)
TIMM_PREPROCESS = Preprocess.from_crop_pct(224, 0.875, "bicubic", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
TIMM_EPS, TIMM_GATE_EPS = 1e-6, 1e-5

# g-mlp-pytorch's constructor arguments (gMLP and gMLPVision) that ``--set`` may name.
GMLP_PYTORCH_ARGS = (
    "num_tokens",
    "dim",
    "depth",
    "seq_len",
    "heads",
    "ff_mult",
    "attn_dim",
    "causal",
    "circulant_matrix",
    "shift_tokens",
    "prob_survival",
    "image_size",
    "patch_size",
    "num_classes",
    "channels",
)


class ImportRefused(ValueError):
    """Weights that cannot be imported exactly; the message says what differs and what to do."""


@dataclass(frozen=True)
class Imported:
    """An import's result: our model (eval mode), its source, and the verification."""

    model: LensModel
    source: dict[str, Any]  # what was imported (library, version, model, weights) and the check's figures
    max_abs_diff: float


# ---- reading weights --------------------------------------------------------------------------------------
def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A state dict from ``.safetensors``, or from ``.pth``/``.pt``/``.bin`` with ``torch.load(weights_only=True)``
    (tensors and plain containers only: no code is unpickled). A ``{"state_dict": ...}`` or ``{"model": ...}``
    wrapper, as training scripts save, is unwrapped.

    Before a tensor is read, what reading it and converting it to float32 takes is checked against the memory limit:
    from the header of a safetensors file, from the size of a torch file (its tensors are its bytes). A file that is
    not what its suffix says is an ``ImportRefused`` that says what it looks like."""
    path = Path(path)
    if not path.is_file():
        raise ImportRefused(f"{path}: no such weights file")
    limits = Limits.from_env()
    if path.suffix == ".safetensors":
        try:
            header = _safetensors_header(path, limits.max_header_mb)
        except CheckpointError as err:
            raise ImportRefused(f"{err}{_looks_like(path)}") from err
        # as read (at most 4 bytes a number for the float dtypes) and as float32
        _check_weights_memory(path, 8.0 * sum(math.prod(shape) for _, shape in header.values()), limits)
        try:
            state: Any = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            raise ImportRefused(f"{path}: not a readable safetensors file ({err}){_looks_like(path)}") from err
    else:
        _check_weights_memory(path, 3.0 * path.stat().st_size, limits)  # float16 as read, then twice that as float32
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # on bytes it cannot parse, the unpickler raises anything (KeyError, IndexError...)
            why = f"{type(err).__name__}: {err}"[:300]
            raise ImportRefused(f"{path}: not a weights-only torch file ({why}){_looks_like(path)}") from err
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise ImportRefused(f"{path}: expected a state dict (names to tensors)")
    return {k.removeprefix("module."): v.float() for k, v in state.items()}


def _check_weights_memory(path: Path, need: float, limits: Limits) -> None:
    if need > limits.max_memory_gb * GB:
        raise ImportRefused(
            f"{path}: reading its tensors as float32 takes about {need / GB:.1f} GB, above the limit of "
            f"{limits.max_memory_gb:g} GB (raise it with GMLP_LENS_MAX_MEMORY_GB)"
        )


def _looks_like(path: Path) -> str:
    """A hint when a weights file's first bytes say it is in the other format than its suffix."""
    try:
        with path.open("rb") as f:
            head = f.read(9)
    except OSError:
        return ""
    pickled = head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"  # a torch zip file, or a plain pickle
    if path.suffix == ".safetensors" and pickled:
        return "; it looks like a torch pickle: name it .pt to read it with torch.load(weights_only=True)"
    if path.suffix != ".safetensors" and head[8:9] == b"{":  # 8 bytes of header size, then the JSON header
        return "; it looks like a safetensors file: name it .safetensors"
    return ""


def _rename(state: dict[str, Tensor], rules: list[tuple[str, str]], source: str) -> dict[str, Tensor]:
    """Every tensor renamed by the first rule whose pattern matches its whole name; an unmatched name is an error."""
    out = {}
    for name, value in state.items():
        for pattern, repl in rules:
            if re.fullmatch(pattern, name):
                out[re.sub(pattern, repl, name)] = value
                break
        else:
            raise ImportRefused(f"{source}: tensor {name!r} has no counterpart in our gMLP (is this a gMLP?)")
    return out


def _build_exact(cfg: ModelConfig, state: dict[str, Tensor], source: str) -> LensModel:
    """Our model for ``cfg`` holding exactly ``state`` (built on the meta device: no random init to throw away)."""
    with torch.device("meta"):
        model = build_model(cfg)
    expected = model.state_dict()
    problems = [f"missing {k}" for k in sorted(set(expected) - set(state))]
    problems += [f"unexpected {k}" for k in sorted(set(state) - set(expected))]
    problems += [
        f"{k}: {tuple(state[k].shape)} for our {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if state[k].shape != expected[k].shape
    ]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... ({len(problems)} in all)" if len(problems) > 5 else "")
        raise ImportRefused(f"{source}: the weights do not fit the config: {shown}")
    model.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True, assign=True)
    return model.eval()


def _compare(ours: LensModel, theirs: nn.Module, ours_inputs: dict[str, Tensor], their_input: Tensor) -> float:
    with torch.no_grad():
        a = ours(**ours_inputs).logits.float()
        b = theirs(their_input).float()
    if a.shape != b.shape:
        raise ImportRefused(f"logits differ in shape: ours {tuple(a.shape)}, theirs {tuple(b.shape)}")
    return float((a - b).abs().max())


def _check_diff(diff: float, source: str) -> None:
    log.info("%s: max |our logits - theirs| = %.3g on a random batch of %d", source, diff, VERIFY_BATCH)
    if not diff <= TOLERANCE:
        raise ImportRefused(
            f"{source}: our logits differ from the peer's by up to {diff:.3g} (tolerance {TOLERANCE:g}) on a random "
            "batch: the weights do not mean the same model here, so nothing was written"
        )


# ---- timm ----------------------------------------------------------------------------------------------
class _Missing(type):
    """A placeholder class for any torchvision member: it can be named and subclassed, never used."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{cls.__qualname__}.{name}")


def _placeholder(name: str) -> type:
    def fail(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError(f"{name} is part of a stand-in torchvision (gmlp_core.importers.load_timm): not usable")

    return _Missing(name, (), {"__init__": fail, "__call__": fail, "__module__": "torchvision"})


class _StandInModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = _placeholder(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class _StandInTorchvision(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StandInModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def load_timm() -> types.ModuleType:
    """The ``timm`` package, to run its own gMLP code.

    timm's package imports torchvision (datasets, transforms, a frozen BatchNorm) but its gMLP uses none of it
    (``MlpMixer``, ``SpatialGatingBlock``, ``GatedMlp``, ``PatchEmbed``: torch only). Where torchvision is
    missing or cannot load (e.g. a CUDA torchvision beside a CPU torch), timm is imported once more with a
    stand-in torchvision whose every member raises when used, so timm's model code runs unchanged.
    """
    if importlib.util.find_spec("timm") is None:
        raise ImportRefused("timm is not installed: `pip install --no-deps timm` (its gMLP needs no torchvision)")
    try:
        return importlib.import_module("timm")
    except Exception as err:  # torchvision missing, or a build that does not match this torch
        if "torchvision" not in "".join(traceback.format_exception(err)):
            raise
        reason = f"{type(err).__name__}: {err}"
    for name in [m for m in sys.modules if m.split(".")[0] in ("timm", "torchvision")]:
        del sys.modules[name]  # the half-imported attempt
    finder = _StandInTorchvision()
    sys.meta_path.insert(0, finder)
    try:
        timm = importlib.import_module("timm")
    finally:
        sys.meta_path.remove(finder)
    log.warning("torchvision cannot be imported here (%s): timm was imported with a stand-in torchvision", reason)
    return timm


def timm_config(name: str) -> ModelConfig:
    """Our config of timm's ``name`` (one of ``TIMM_MODELS``), with timm's LayerNorm eps."""
    if name not in TIMM_MODELS:
        raise ImportRefused(f"unknown timm gMLP {name!r}; expected one of {', '.join(TIMM_MODELS)}")
    d = TIMM_MODELS[name]
    return _timm_like(name, d_model=d, d_ffn=6 * d, n_layers=30, image_size=224, patch_size=16, in_channels=3)


def _timm_like(name: str, **fields: Any) -> ModelConfig:
    return ModelConfig(
        arch="gmlp",
        task="vision",
        num_classes=fields.pop("num_classes", 1000),
        layer_norm_eps=TIMM_EPS,
        sgu_norm_eps=TIMM_GATE_EPS,
        name=name,
        **fields,
    )


def config_from_timm_state(state: dict[str, Tensor], name: str = "") -> ModelConfig:
    """Our config read off a timm gMLP state dict's shapes (any size: tests use small ones)."""
    try:
        d_model, in_channels, patch, _ = state["stem.proj.weight"].shape
        n = state["blocks.0.mlp_channels.gate.proj.weight"].shape[0]
        d_ffn = state["blocks.0.mlp_channels.fc1.weight"].shape[0]
        num_classes = state["head.weight"].shape[0]
    except (KeyError, ValueError) as err:
        raise ImportRefused(
            f"not a timm gMLP state dict (no {err}): expected stem.proj, blocks.N.mlp_channels.gate"
        ) from err
    layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    grid = math.isqrt(n)
    if grid * grid != n:
        raise ImportRefused(f"a timm gMLP has a square patch grid; its gate has n = {n} positions")
    return _timm_like(
        name,
        d_model=d_model,
        d_ffn=d_ffn,
        n_layers=layers,
        image_size=grid * patch,
        patch_size=patch,
        in_channels=in_channels,
        num_classes=num_classes,
    )


TIMM_RULES = [
    (r"stem\.proj\.(weight|bias)", r"embed.proj.\1"),
    (r"blocks\.(\d+)\.norm\.(weight|bias)", r"blocks.\1.norm.\2"),
    (r"blocks\.(\d+)\.mlp_channels\.fc1\.(weight|bias)", r"blocks.\1.proj_in.\2"),
    (r"blocks\.(\d+)\.mlp_channels\.gate\.norm\.(weight|bias)", r"blocks.\1.sgu.norm.\2"),
    (r"blocks\.(\d+)\.mlp_channels\.gate\.proj\.(weight|bias)", r"blocks.\1.sgu.spatial.\2"),
    (r"blocks\.(\d+)\.mlp_channels\.fc2\.(weight|bias)", r"blocks.\1.proj_out.\2"),
    (r"(norm|head)\.(weight|bias)", r"\1.\2"),
]


def timm_peer(timm: types.ModuleType, cfg: ModelConfig) -> nn.Module:
    """timm's own gMLP for ``cfg``: ``MlpMixer`` with the blocks ``timm.create_model("gmlp_*")`` uses."""
    mixer = timm.models.mlp_mixer
    return mixer.MlpMixer(
        num_classes=cfg.num_classes,
        img_size=cfg.image_size,
        in_chans=cfg.in_channels,
        patch_size=cfg.patch_size,
        num_blocks=cfg.n_layers,
        embed_dim=cfg.d_model,
        mlp_ratio=cfg.d_ffn / cfg.d_model,
        block_layer=mixer.SpatialGatingBlock,
        mlp_layer=timm.layers.GatedMlp,
    )


def import_timm(name: str, weights: str | Path | None = None, *, seed: int = 0) -> Imported:
    """timm's gMLP ``name`` with ``weights`` (a timm state dict file), or timm's own pretrained weights (downloaded
    once by timm's loader, which needs internet), verified against timm's forward on a random batch."""
    timm = load_timm()
    if weights is None:
        timm_config(name)  # a known name, or the message
        pretrained = timm.models.get_pretrained_cfg(name)
        if pretrained is None or not (pretrained.hf_hub_id or pretrained.url):
            raise ImportRefused(f"timm publishes no weights for {name} (registered untrained): pass --weights FILE")
        log.info("fetching %s's pretrained weights with timm's loader (%s)", name, pretrained.hf_hub_id)
        state = timm.create_model(name, pretrained=True).state_dict()
        origin = f"timm pretrained ({pretrained.hf_hub_id or pretrained.url})"
    else:
        state, origin = read_state_dict(weights), str(weights)
    cfg = config_from_timm_state(state, name)
    if name in TIMM_MODELS and cfg != timm_config(name):
        raise ImportRefused(f"{origin}: these weights are not {name} ({_shape_line(cfg)})")
    source = f"timm {name or 'gMLP'} ({origin})"
    model = _build_exact(cfg, _rename(state, TIMM_RULES, source), source)
    peer = timm_peer(timm, cfg).eval()
    peer.load_state_dict(state, strict=True)
    x = torch.randn(VERIFY_BATCH, cfg.in_channels, cfg.image_size, cfg.image_size, generator=_gen(seed))
    diff = _compare(model, peer, {"pixel_values": x}, x)
    _check_diff(diff, source)
    info = {"library": "timm", "version": timm.__version__, "model": name, "weights": origin, "max_abs_diff": diff}
    return Imported(model, info, diff)


def _shape_line(cfg: ModelConfig) -> str:
    return f"d_model={cfg.d_model}, d_ffn={cfg.d_ffn}, layers={cfg.n_layers}, n={cfg.seq_len}"


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in class order ("tench, Tinca tinca", ...), shipped with the package."""
    text = resources.files("gmlp_core.data").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    names = [line.split("\t", 1)[1] for line in text.splitlines() if line and not line.startswith("#")]
    if len(names) != 1000:
        raise RuntimeError(f"imagenet_classes.txt has {len(names)} classes, expected 1000")
    return names


def timm_extra(imported: Imported) -> dict[str, Any]:
    """What an imported timm model records in ``config.extra``: preprocessing, class names, provenance."""
    extra: dict[str, Any] = {"source": imported.source, "data": "ImageNet-1k (timm)"}
    if imported.model.config.num_classes == 1000:
        extra["class_names"] = imagenet_class_names()
    if imported.model.config.image_size == TIMM_PREPROCESS.crop and imported.model.config.in_channels == 3:
        extra["preprocess"] = TIMM_PREPROCESS.to_dict()
    return extra


# ---- g-mlp-pytorch --------------------------------------------------------------------------------------
def gmlp_pytorch_args(state: dict[str, Tensor], given: dict[str, Any]) -> dict[str, Any]:
    """g-mlp-pytorch's constructor arguments for ``state``: read off the shapes, checked against ``given``.

    ``causal`` has no tensor of its own (default False); ``heads > 1``, ``circulant_matrix`` and
    ``shift_tokens`` are not our architecture and are refused.
    """
    unknown = sorted(set(given) - set(GMLP_PYTORCH_ARGS))
    if unknown:
        raise ImportRefused(f"unknown g-mlp-pytorch argument(s) {unknown}; known: {', '.join(GMLP_PYTORCH_ARGS)}")
    vision = "to_patch_embed.1.weight" in state
    if not vision and "to_embed.weight" not in state:
        raise ImportRefused(
            "not a g-mlp-pytorch gMLP with an embedding: expected to_embed.weight (gMLP with num_tokens) or "
            "to_patch_embed.1.weight (gMLPVision)"
        )
    sgu = [k for k in state if k.endswith(".sgu.weight")]
    if not sgu:
        raise ImportRefused("no layers.N...sgu.weight tensors: not a g-mlp-pytorch gMLP")
    w0 = state[min(sgu, key=lambda k: int(k.split(".")[1]))]
    if w0.dim() != 3:
        raise ImportRefused(f"sgu.weight has shape {tuple(w0.shape)}: circulant_matrix=True is not supported")
    heads, n, _ = w0.shape
    prefix = sgu[0].removesuffix("sgu.weight")
    dim, d_ffn = state[prefix + "proj_in.0.weight"].shape[1], state[prefix + "proj_in.0.weight"].shape[0]
    attn = state.get(prefix + "attn.to_qkv.weight")
    found: dict[str, Any] = {
        "dim": dim,
        "depth": len(sgu),
        "seq_len": n,
        "heads": heads,
        "ff_mult": d_ffn // dim,
        "attn_dim": None if attn is None else attn.shape[0] // 3,
    }
    if vision:
        channels = int(given.get("channels", 3))
        patch = math.isqrt(state["to_patch_embed.1.weight"].shape[1] // channels)
        found |= {"channels": channels, "patch_size": patch, "image_size": math.isqrt(n) * patch}
        found["num_classes"] = state["to_logits.2.weight"].shape[0]
    else:
        found["num_tokens"] = state["to_embed.weight"].shape[0]
    args = {"causal": False, "circulant_matrix": False, "shift_tokens": 0} | found
    for key, value in given.items():
        if key in found and value != found[key]:
            raise ImportRefused(f"--set {key}={value!r}, but the weights have {key}={found[key]!r}")
        args[key] = value
    problems = {
        "heads": args["heads"] != 1,
        "circulant_matrix": bool(args["circulant_matrix"]),
        "shift_tokens": args["shift_tokens"] != 0,
        "ff_mult": d_ffn != dim * args["ff_mult"],
    }
    bad = [f"{k}={args[k]!r}" for k, v in problems.items() if v]
    if bad:
        raise ImportRefused(f"not supported: {', '.join(bad)} (our gMLP has one W per layer and no token shift)")
    if vision and (args["patch_size"] ** 2 * args["channels"] != state["to_patch_embed.1.weight"].shape[1]):
        raise ImportRefused("the patch embedding does not fit channels x patch_size^2: pass --set channels=C")
    if vision and args.get("causal"):
        raise ImportRefused("gMLPVision has no causal option")
    return args


def config_from_gmlp_pytorch(args: dict[str, Any], name: str = "") -> ModelConfig:
    """Our config for g-mlp-pytorch's constructor ``args`` (as :func:`gmlp_pytorch_args` completes them)."""
    common = dict(
        arch="gmlp" if args["attn_dim"] is None else "amlp",
        d_model=args["dim"],
        d_ffn=args["dim"] * args["ff_mult"],
        n_layers=args["depth"],
        attn_dim=args["attn_dim"] or 64,
        layer_norm_eps=1e-5,
        name=name,
    )
    if "num_classes" in args:
        return ModelConfig(
            task="vision",
            image_size=args["image_size"],
            patch_size=args["patch_size"],
            in_channels=args["channels"],
            num_classes=args["num_classes"],
            **common,
        )
    return ModelConfig(
        task="mlm",
        vocab_size=args["num_tokens"],
        seq_len=args["seq_len"],
        causal=bool(args["causal"]),
        mlm_head="linear",
        **common,
    )


def _gmlp_pytorch_rules(vision: bool) -> list[tuple[str, str]]:
    block = r"layers\.(\d+)\.fn\.fn\." if vision else r"layers\.(\d+)\.fn\.fn\.fn\."  # token model: PreShiftTokens
    rules = [
        (r"layers\.(\d+)\.fn\.norm\.(weight|bias)", r"blocks.\1.norm.\2"),
        (block + r"proj_in\.0\.(weight|bias)", r"blocks.\1.proj_in.\2"),
        (block + r"sgu\.norm\.(weight|bias)", r"blocks.\1.sgu.norm.\2"),
        (block + r"sgu\.(weight|bias)", r"blocks.\1.sgu.spatial.\2"),
        (block + r"proj_out\.(weight|bias)", r"blocks.\1.proj_out.\2"),
        (block + r"attn\.to_qkv\.weight", r"blocks.\1.tiny_attn.qkv.weight"),
        (block + r"attn\.to_out\.(weight|bias)", r"blocks.\1.tiny_attn.proj.\2"),
        (r"to_logits\.0\.(weight|bias)", r"norm.\1"),
    ]
    if vision:
        return rules + [
            (r"to_patch_embed\.1\.(weight|bias)", r"embed.proj.\1"),
            (r"to_logits\.2\.(weight|bias)", r"head.\1"),
        ]
    return rules + [(r"to_embed\.weight", r"embed.token.weight"), (r"to_logits\.1\.(weight|bias)", r"head.\1")]


def gmlp_pytorch_peer(args: dict[str, Any]) -> nn.Module:
    """g-mlp-pytorch's own ``gMLPVision`` or ``gMLP`` for the completed constructor ``args``."""
    import g_mlp_pytorch

    common = dict(dim=args["dim"], depth=args["depth"], ff_mult=args["ff_mult"], attn_dim=args["attn_dim"])
    if "num_classes" in args:
        return g_mlp_pytorch.gMLPVision(
            image_size=args["image_size"],
            patch_size=args["patch_size"],
            num_classes=args["num_classes"],
            channels=args["channels"],
            **common,
        )
    return g_mlp_pytorch.gMLP(num_tokens=args["num_tokens"], seq_len=args["seq_len"], causal=args["causal"], **common)


def import_gmlp_pytorch(weights: str | Path, given: dict[str, Any] | None = None, *, seed: int = 0) -> Imported:
    """A g-mlp-pytorch ``gMLP`` (token model) or ``gMLPVision`` state dict, with its constructor arguments
    ``given`` (``dim``, ``depth``, ``seq_len``, ``attn_dim``, ``causal``...; the shapes fill in the rest),
    verified against g-mlp-pytorch's own forward on a random batch."""
    try:
        import g_mlp_pytorch
    except ImportError as err:
        raise ImportRefused(f"g-mlp-pytorch is not installed ({err}): `pip install g-mlp-pytorch`") from err
    state = read_state_dict(weights)
    args = gmlp_pytorch_args(state, dict(given or {}))
    vision = "num_classes" in args
    cfg = config_from_gmlp_pytorch(args, name=Path(weights).stem)
    check_config(cfg, source=str(weights))  # before our model and the peer are built
    source = f"g-mlp-pytorch {'gMLPVision' if vision else 'gMLP'} ({weights})"
    ours_state = _rename(state, _gmlp_pytorch_rules(vision), source)
    for key in [k for k in ours_state if k.endswith("sgu.spatial.weight") or k.endswith("sgu.spatial.bias")]:
        ours_state[key] = ours_state[key][0]  # heads = 1: (1, n, n) -> (n, n), (1, n) -> (n,)
    if vision:
        w = ours_state["embed.proj.weight"]  # Linear over (c p1 p2): the same numbers as a Conv2d (d, c, p, p)
        ours_state["embed.proj.weight"] = w.reshape(w.shape[0], cfg.in_channels, cfg.patch_size, cfg.patch_size)
    for i in range(cfg.n_layers if cfg.has_attention else 0):  # aMLP: the only attention g-mlp-pytorch has
        ours_state[f"blocks.{i}.tiny_attn.qkv.bias"] = torch.zeros(3 * cfg.attn_dim)  # the peer's qkv has no bias
    model = _build_exact(cfg, ours_state, source)
    peer = gmlp_pytorch_peer(args).eval()
    peer.load_state_dict(state, strict=True)
    if vision:
        x = torch.randn(VERIFY_BATCH, cfg.in_channels, cfg.image_size, cfg.image_size, generator=_gen(seed))
        diff = _compare(model, peer, {"pixel_values": x}, x)
    else:
        ids = torch.randint(0, cfg.vocab_size, (VERIFY_BATCH, cfg.seq_len), generator=_gen(seed))
        diff = _compare(model, peer, {"input_ids": ids}, ids)
    _check_diff(diff, source)
    version = getattr(g_mlp_pytorch, "__version__", None) or _dist_version("g-mlp-pytorch")
    info = {
        "library": "g-mlp-pytorch",
        "version": version,
        "model": "gMLPVision" if vision else "gMLP",
        "weights": str(weights),
        "arguments": {k: v for k, v in args.items() if k != "prob_survival"},
        "max_abs_diff": diff,
    }
    return Imported(model, info, diff)


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


# ---- writing ----------------------------------------------------------------------------------------------
def write_import(
    imported: Imported, out: str | Path, *, extra: dict[str, Any] | None = None, tokenizer: Any = None
) -> Path:
    """Write ``imported`` as our checkpoint in ``out`` (refusing an existing non-empty folder), with its
    provenance in ``config.extra["source"]``; the config is checked against the resource limits first."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ImportRefused(f"{out} exists and is not empty: choose a new --out folder (nothing is overwritten)")
    extra = {"source": imported.source, **(extra or {})}
    check_config(imported.model.config.replace(extra=extra), source=str(out))
    return save_checkpoint(imported.model, out, tokenizer=tokenizer, extra=extra)
