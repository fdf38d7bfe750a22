"""The shared trunk: embeddings, a stack of blocks chosen by ``arch``, final norm and a task head.

The architectures (``gmlp_core.models.archs``) differ only inside the block (``gmlp.GMLPBlock``,
``transformer.TransformerBlock``, ``mixer.MixerBlock``) and in one place the paper names: the Transformer adds
learned absolute position embeddings, gMLP, aMLP and the Mixer use none (their n x n mixing already knows positions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gmlp_core.models.config import ModelConfig
from gmlp_core.models.gmlp import SpatialWeight
from gmlp_core.models.layers import init_linear

IGNORE_INDEX = -100


@dataclass
class ModelOutput:
    """What ``forward`` returns (HF style: optional fields are filled only when asked).

    - ``logits``: ``(B, L, vocab)`` for MLM or ``(B, classes)`` for vision and text classification. For MLM with ``labels``
      the full logits are skipped unless ``output_logits=True``: most of the cost is the vocabulary
      projection of positions that are not predicted.
    - ``masked_logits``: ``(N, vocab)`` logits of the N predicted positions (MLM with labels).
    - ``attentions``: per layer ``(B, heads, L, L)`` (aMLP: its single tiny head); None for gMLP.
    - ``hidden_states``: the embeddings and every block's output, ``(B, L, d_model)`` each.
    - ``gates``: per layer the input-dependent gate ``W LN(Z2) + b (+ attention)``, ``(B, L, gate_dim)``.
    - ``last_hidden_state``: the trunk's output after the final norm, ``(B, L, d_model)`` (what the head reads).
    - ``start_logits``, ``end_logits``: ``(B, L)`` each, for an extractive span head.
    """

    logits: Tensor | None = None
    loss: Tensor | None = None
    masked_logits: Tensor | None = None
    attentions: tuple[Tensor, ...] | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    gates: tuple[Tensor, ...] | None = None
    last_hidden_state: Tensor | None = None
    start_logits: Tensor | None = None
    end_logits: Tensor | None = None


def _on_meta() -> bool:
    """Whether modules are being built on the meta device (``with torch.device("meta")``): shapes only."""
    return torch.empty(0).is_meta


def _embedding(n: int, d: int) -> nn.Embedding:
    # On the meta device there is nothing to initialise, and nn.Embedding's own normal_ there costs ~0.9 s the
    # first time in a process (torch loads its Python decompositions): the dashboard's first page paid it.
    # Elsewhere the ordinary constructor, so random streams (and seeded trainings) stay what they were.
    return nn.Embedding(n, d, _weight=torch.empty(n, d)) if _on_meta() else nn.Embedding(n, d)


class TokenEmbedding(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.token = _embedding(config.vocab_size, config.d_model)
        self.position = _embedding(config.seq_len, config.d_model) if config.arch_spec.positions else None

    def forward(self, input_ids: Tensor) -> Tensor:
        x = self.token(input_ids)  # (B, L, d_model)
        if self.position is not None:
            x = x + self.position.weight[: input_ids.shape[1]]
        return x


class PatchEmbedding(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        p = config.patch_size
        self.proj = nn.Conv2d(config.in_channels, config.d_model, kernel_size=p, stride=p)
        self.position = (
            nn.Parameter(torch.zeros(config.seq_len, config.d_model)) if config.arch_spec.positions else None
        )

    def forward(self, pixel_values: Tensor) -> Tensor:
        x = self.proj(pixel_values).flatten(2).transpose(1, 2)  # (B, n_patches, d_model), row-major grid
        if self.position is not None:
            x = x + self.position
        return x


class LensModel(nn.Module):
    """gMLP, aMLP, Transformer or MLP-Mixer for masked language modelling, image or text classification, or span extraction.

    The head is the task's (``config.spec``): BERT's MLM head, a linear classifier on the mean of the real
    positions (images: every patch; text: the tokens ``attention_mask`` marks), or BERT's span head, a
    ``Linear(d_model, 2)`` giving every position a start and an end logit.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        spec = config.spec
        self.embed = TokenEmbedding(config) if spec.is_text else PatchEmbedding(config)
        self.blocks = nn.ModuleList(config.arch_spec.block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        if spec.fill_mask and config.mlm_head == "linear":
            # g-mlp-pytorch's head: the final norm, then an untied Linear(d_model, vocab) with its own bias.
            self.head = nn.Linear(config.d_model, config.vocab_size)
            self.decoder_bias = None
        elif spec.fill_mask:
            # BERT's MLM head: dense + GELU + LayerNorm, then a decoder tied to the token embedding
            # (only its bias is a separate parameter, so safetensors sees no shared tensors).
            self.head = nn.Sequential(
                nn.Linear(config.d_model, config.d_model),
                nn.GELU(),
                nn.LayerNorm(config.d_model, eps=config.layer_norm_eps),
            )
            self.decoder_bias = nn.Parameter(torch.zeros(config.vocab_size))
        elif spec.span:
            self.head = nn.Linear(config.d_model, 2)  # start and end logits per position
            self.decoder_bias = None
        else:
            self.head = nn.Linear(config.d_model, config.num_classes)
            self.decoder_bias = None
        self.init_weights()

    def init_weights(self) -> None:
        if next(self.parameters()).is_meta:  # shapes only (parameter counts, expected checkpoint tensors)
            return
        std = self.config.initializer_range
        for module in self.modules():
            init_linear(module, std)
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)
            elif isinstance(module, SpatialWeight):
                module.reset_parameters()
        if isinstance(self.embed, PatchEmbedding):
            nn.init.trunc_normal_(self.embed.proj.weight, std=std, a=-2 * std, b=2 * std)
            nn.init.zeros_(self.embed.proj.bias)
            if self.embed.position is not None:
                nn.init.trunc_normal_(self.embed.position, std=std, a=-2 * std, b=2 * std)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _embed(self, input_ids: Tensor | None, pixel_values: Tensor | None, inputs_embeds: Tensor | None) -> Tensor:
        cfg = self.config
        if inputs_embeds is not None:
            return inputs_embeds
        if cfg.is_text:
            if input_ids is None:
                raise ValueError(f"{cfg.spec.noun} needs input_ids (B, L) or inputs_embeds")
            if input_ids.dim() != 2:
                raise ValueError(f"input_ids must be (batch, length); got shape {tuple(input_ids.shape)}")
            if input_ids.shape[1] > cfg.seq_len:
                raise ValueError(f"input length {input_ids.shape[1]} exceeds seq_len={cfg.seq_len}")
            return self.embed(input_ids)
        if pixel_values is None:
            raise ValueError("a vision model needs pixel_values (B, C, H, W)")
        expected = (cfg.in_channels, cfg.image_size, cfg.image_size)
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"pixel_values must be (batch, {', '.join(map(str, expected))}); got {tuple(pixel_values.shape)}"
            )
        return self.embed(pixel_values)

    def trunk(
        self,
        input_ids: Tensor | None = None,
        pixel_values: Tensor | None = None,
        attention_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        output_gates: bool = False,
    ) -> ModelOutput:
        """Embeddings, blocks and final norm without the task head (HF's ``BertModel`` to ``BertForMaskedLM``).

        Fills ``last_hidden_state`` ``(B, L, d_model)`` and the internals asked for; no logits, no loss.
        Every analysis reads this: it skips the vocabulary projection an MLM head would spend most time on.
        ``attention_mask`` (B, L), 1 for real tokens, masks keys of attention only: gMLP's W has no notion
        of padding, which is why training includes padded sequences.
        """
        x = self._embed(input_ids, pixel_values, inputs_embeds)  # (B, L, d_model)
        hidden: list[Tensor] = [x]
        attentions: list[Tensor] = []
        gates: list[Tensor] = []
        for block in self.blocks:
            x, probs, gate = block(x, attention_mask, output_attentions, output_gates)
            if probs is not None:
                attentions.append(probs)
            if gate is not None:
                gates.append(gate)
            hidden.append(x)
        return ModelOutput(
            attentions=tuple(attentions) if output_attentions and attentions else None,
            hidden_states=tuple(hidden) if output_hidden_states else None,
            gates=tuple(gates) if output_gates and gates else None,
            last_hidden_state=self.norm(x),  # (B, L, d_model)
        )

    def forward(
        self,
        input_ids: Tensor | None = None,
        pixel_values: Tensor | None = None,
        labels: Tensor | None = None,
        attention_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        output_gates: bool = False,
        output_logits: bool = False,
        start_positions: Tensor | None = None,
        end_positions: Tensor | None = None,
    ) -> ModelOutput:
        """The trunk, then the task head (see ``trunk`` for ``attention_mask``).

        ``labels``: MLM ``(B, L)`` word-piece ids, -100 where nothing is predicted; classification ``(B,)``.
        ``start_positions`` / ``end_positions`` ``(B,)``: a span head's answer, -100 for an example without one
        in the input (its answer was truncated away), which then adds nothing to the loss.
        """
        out = self.trunk(
            input_ids,
            pixel_values,
            attention_mask,
            inputs_embeds,
            output_attentions,
            output_hidden_states,
            output_gates,
        )
        x = out.last_hidden_state  # (B, L, d_model)
        spec = self.config.spec
        if spec.classes:
            out.logits = self.head(_mean_over(x, attention_mask))  # (B, classes)
            if labels is not None:
                out.loss = F.cross_entropy(out.logits, labels)
            return out
        if spec.span:
            logits = self.head(x)  # (B, L, 2)
            out.start_logits, out.end_logits = logits[..., 0], logits[..., 1]  # (B, L) each
            if start_positions is not None and end_positions is not None:
                out.loss = _span_loss(out.start_logits, out.end_logits, start_positions, end_positions)
            return out
        if labels is None or output_logits:
            out.logits = self.decode(x)  # (B, L, vocab)
        if labels is not None:
            selected = labels != IGNORE_INDEX  # (B, L)
            out.masked_logits = self.decode(x[selected])  # (N, vocab): only the predicted positions
            target = labels[selected]
            # A batch with nothing to predict has zero loss (not NaN), still connected to the graph.
            out.loss = F.cross_entropy(out.masked_logits, target) if target.numel() else out.masked_logits.sum() * 0.0
        return out

    def decode(self, h: Tensor) -> Tensor:
        """Project hidden states ``(..., d_model)`` onto the vocabulary (BERT's head is tied to the embedding)."""
        if self.config.mlm_head == "linear":
            return self.head(h)
        return F.linear(self.head(h), self.embed.token.weight, self.decoder_bias)

    def spatial_weights(self) -> list[Tensor]:
        """Every layer's effective n x n W, as used in the forward pass (detached copies)."""
        return [self.spatial_weight(layer).clone() for layer in range(self.config.n_layers)]

    def spatial_weight(self, layer: int) -> Tensor:
        """Layer ``layer``'s effective n x n W, detached and possibly a view of the parameters: read it or copy it,
        never write to it. One layer at a time keeps an analysis of many layers at one n x n copy."""
        return self._spatial_modules()[layer].matrix().detach()

    def spatial_biases(self) -> list[Tensor]:
        """Every layer's per-position bias b (length n)."""
        return [m.bias.detach().clone() for m in self._spatial_modules()]

    def _spatial_modules(self) -> list[SpatialWeight]:
        if not self.config.has_spatial_weights:
            hint = "; use output_attentions=True instead" if self.config.has_attention else ""
            raise ValueError(f"this model has no spatial weights W ({no_spatial_weights_reason(self.config)}){hint}")
        return [block.sgu.spatial for block in self.blocks]


def no_spatial_weights_reason(config: ModelConfig) -> str:
    """Why ``config`` has no W, in a clause: identity gating, or what mixes its tokens instead."""
    spec = config.arch_spec
    if spec.gated:
        return "identity gating: no token mixing at all"
    return f"{spec.label} mixes tokens with its {spec.mixing}, not a spatial gating unit"


def _mean_over(x: Tensor, mask: Tensor | None) -> Tensor:
    """The mean of ``x`` (B, L, d) over the positions ``mask`` (B, L) marks (all of them without a mask)."""
    if mask is None:
        return x.mean(dim=1)
    weights = mask.to(x.dtype).unsqueeze(-1)  # (B, L, 1)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)  # (B, d)


def _span_loss(start_logits: Tensor, end_logits: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """BERT's span loss: the mean of the start and end cross-entropies over the examples with an answer."""
    keep = start != IGNORE_INDEX  # (B,)
    if not bool(keep.any()):
        return start_logits.sum() * 0.0  # nothing to learn from this batch, still connected to the graph
    loss_start = F.cross_entropy(start_logits[keep].float(), start[keep])
    loss_end = F.cross_entropy(end_logits[keep].float(), end[keep])
    return (loss_start + loss_end) / 2


def build_model(config: ModelConfig) -> LensModel:
    """Build a freshly initialised model for ``config``."""
    if not isinstance(config, ModelConfig):
        raise TypeError(f"build_model expects a ModelConfig, got {type(config).__name__}")
    return LensModel(config)
