"""Build, load and save every model prmrl uses, always as Hugging Face models.

The policy is an ``AutoModelForCausalLM``; the critic, ORM and PRM are
``AutoModelForTokenClassification`` with ``num_labels=1``: a backbone with a scalar head on every
token, read at the positions each role needs (every response token for the critic, the last token
for the ORM, each step's last token for the PRM). A tiny local model and a 7B checkpoint go
through the same functions; nothing downstream special-cases the tiny one.
"""

from __future__ import annotations

import contextlib

import copy
import os
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForTokenClassification,
    AutoTokenizer,
    LlamaConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from prmrl.models.tokenizer import build_char_tokenizer


def quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


class ModelPathError(ValueError):
    """A model or tokenizer path that does not exist or holds no model."""


def tiny_llama_config(tokenizer: PreTrainedTokenizerBase, hidden: int = 128, layers: int = 2,
                      heads: int = 4, intermediate: int = 384, max_positions: int = 512) -> LlamaConfig:
    """About 0.45M parameters with the character vocabulary (2 layers, width 128)."""
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def build_tiny_policy(seed: int = 0, **size) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A freshly initialised tiny causal LM and its character tokenizer."""
    tokenizer = build_char_tokenizer()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_llama_config(tokenizer, **size))
    return model, tokenizer


def _check_path(path: str | os.PathLike) -> None:
    # A local-looking path that does not exist would otherwise become a hub lookup and a long
    # network error; say plainly what is missing instead.
    p = Path(path)
    looks_local = str(path).startswith((".", "/", "~")) or p.exists() or os.sep in str(path) and len(Path(path).parts) > 2
    if looks_local and not (p / "config.json").exists():
        raise ModelPathError(f"no model at '{path}': expected a folder with config.json "
                             f"(run `prmrl sft` first, or give a Hugging Face model name)")


def load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerBase:
    _check_path(path)
    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:  # many real tokenizers ship without one
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_policy(path: str | os.PathLike, dtype: torch.dtype | None = None) -> PreTrainedModel:
    _check_path(path)
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)


@contextlib.contextmanager
def _head_expected_missing(expected: bool):
    """Loading a scalar model from a causal-LM checkpoint: the head is missing by design, so
    transformers' load report (a warning table naming it) is held back; other warnings of that
    load are lost with it, errors are not."""
    from transformers.utils import logging

    if not expected or logging.get_verbosity() >= logging.ERROR:
        yield
        return
    old = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(old)


def load_scalar_model(path: str | os.PathLike, dtype: torch.dtype | None = None,
                      extra_layers: int = 0) -> PreTrainedModel:
    """A backbone with a scalar head per token (critic, ORM, PRM).

    From a causal-LM checkpoint the backbone weights are reused and the head starts fresh
    (initialised to zero, so a new critic predicts 0 and a new reward model 0.5).

    ``extra_layers`` stacks that many new decoder layers on top of the checkpoint's (before the
    final norm), each starting as the identity (zero output projections). A verifier needs
    them: what the policy expects at a position (e.g. which operation comes next) exists only in
    its last layer's output there, which no later position of the same depth can attend to; a
    layer above it can compare that expectation with what the step actually wrote.
    """
    _check_path(path)
    if extra_layers:
        return _deepened(path, extra_layers, dtype)
    config = AutoConfig.from_pretrained(str(path))
    if getattr(config, "prmrl_likelihood", None):   # a saved LikelihoodRewardModel
        from prmrl.models.likelihood import LikelihoodRewardModel

        scalar = AutoModelForTokenClassification.from_pretrained(str(path), num_labels=1, dtype=dtype)
        return LikelihoodRewardModel.load(scalar, path)
    fresh_head = not any(a.endswith("ForTokenClassification") for a in (config.architectures or []))
    with _head_expected_missing(fresh_head):
        model = AutoModelForTokenClassification.from_pretrained(str(path), num_labels=1, dtype=dtype)
    if fresh_head:
        head = model.score if hasattr(model, "score") else model.classifier
        torch.nn.init.zeros_(head.weight)
        if getattr(head, "bias", None) is not None:
            torch.nn.init.zeros_(head.bias)
    return model


def frozen_copy(model: PreTrainedModel, compute_dtype: torch.dtype | None = None) -> PreTrainedModel:
    """A frozen copy of a trained model (the reference) that runs the trained model's numeric
    path, so the KL between them is 0 while they have the same weights.

    Without autocast (``compute_dtype`` None or float32) it is an exact copy. Under autocast to a
    16-bit ``compute_dtype`` the copy's ``nn.Linear`` weights and biases are stored in that dtype
    (autocast casts the trained model's float32 ones to exactly those values before every
    matmul), and everything else (norms, embeddings, and a head tied to the embeddings) stays
    float32 as in the trained model: run under the same autocast, both give the same numbers,
    at about half the memory of a float32 copy."""
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    if compute_dtype is None or compute_dtype == torch.float32:
        return ref
    embedding = {id(p) for m in ref.modules() if isinstance(m, torch.nn.Embedding)
                 for p in m.parameters(recurse=False)}
    for m in ref.modules():
        if isinstance(m, torch.nn.Linear):
            for p in m.parameters(recurse=False):
                if id(p) not in embedding:
                    p.data = p.data.to(compute_dtype)
    return ref


def critic_from_policy(policy: PreTrainedModel, dtype: torch.dtype | None = torch.float32) -> PreTrainedModel:
    """A critic for a policy given as a model: the same backbone weights (copied) and a scalar
    head per token initialised to zero, as ``load_scalar_model`` makes from a path."""
    config = copy.deepcopy(policy.config)
    config.num_labels = 1          # (some token classifiers take no num_labels argument)
    critic = AutoModelForTokenClassification.from_config(config)
    critic.base_model.load_state_dict(policy.base_model.state_dict())
    head = critic.score if hasattr(critic, "score") else critic.classifier
    torch.nn.init.zeros_(head.weight)
    if getattr(head, "bias", None) is not None:
        torch.nn.init.zeros_(head.bias)
    return critic.to(dtype) if dtype is not None else critic


def without_dropout(model: torch.nn.Module) -> torch.nn.Module:
    """Every dropout of ``model`` set to 0, in place. For the critic: transformers' token
    classifiers put a dropout of 0.1 before the head when the config names none
    (``classifier_dropout``), so value targets were fitted through random masks in train mode,
    and the gradient of a minibatch depended on how it was split into micro-batches."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def _deepened(path, extra: int, dtype) -> PreTrainedModel:
    with _head_expected_missing(True):
        base = AutoModelForTokenClassification.from_pretrained(str(path), num_labels=1, dtype=dtype)
    if not hasattr(base.config, "num_hidden_layers"):
        raise ValueError(f"{path}: extra layers need a decoder config with num_hidden_layers")
    n = base.config.num_hidden_layers
    deep_cfg = copy.deepcopy(base.config)
    deep_cfg.num_hidden_layers = n + extra
    if getattr(deep_cfg, "layer_types", None) is not None:     # per-layer attention kinds
        deep_cfg.layer_types = list(deep_cfg.layer_types) + [deep_cfg.layer_types[-1]] * extra
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_config(deep_cfg, dtype=dtype)
    missing, _ = model.load_state_dict(base.state_dict(), strict=False)
    new = [k for k in missing if not any(f".layers.{i}." in k for i in range(n, n + extra))]
    if new:
        raise ValueError(f"{path}: weights missing after adding layers: {new[:3]}")
    for name, p in model.named_parameters():
        # identity at start: the new layers write nothing into the residual stream
        if any(f".layers.{i}." in name for i in range(n, n + extra)) and name.endswith(
                ("o_proj.weight", "down_proj.weight")):
            torch.nn.init.zeros_(p)
        if name.startswith(("score.", "classifier.")):
            torch.nn.init.zeros_(p)
    return model


def freeze_backbone(model: PreTrainedModel, trainable_layers: int) -> int:
    """Train only the top ``trainable_layers`` decoder layers, the final norm and the head;
    returns how many parameters stay trainable.

    For a verifier deepened with ``extra_layers``: the policy's layers below keep computing
    what the policy expects at each position (which the new layers compare with what was
    written), instead of being pulled away from it by a few hundred noisy BCE steps.
    """
    base = model.base_model
    layers = getattr(base, "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__}: no decoder layer list to freeze below")
    if not 0 < trainable_layers <= len(layers):
        raise ValueError(f"trainable_layers must be in 1..{len(layers)}, got {trainable_layers}")
    model.requires_grad_(False)
    for layer in list(layers)[len(layers) - trainable_layers:]:
        layer.requires_grad_(True)
    if getattr(base, "norm", None) is not None:
        base.norm.requires_grad_(True)
    for name in ("score", "classifier"):
        if getattr(model, name, None) is not None:
            getattr(model, name).requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None,
               path: str | os.PathLike) -> None:
    """Write with ``save_pretrained`` into a temporary folder, then rename: a crash mid-write
    never leaves a half-written checkpoint under the final name."""
    from prmrl.runs import atomic_dir

    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
