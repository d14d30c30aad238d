"""FSDP2 for the trainer (``run.parallel: fsdp2``): torch's ``fully_shard`` applied by us, so the
same code runs on CPU with gloo (tested with 2 processes) and on GPUs with NCCL.

Each decoder layer is its own FSDP unit, then the root (embeddings, final norm, head). Trained
models keep float32 parameters (sharded: each process holds 1/world of the weights, gradients
and AdamW states); on GPU the compute runs in bf16 / fp16 with float32 gradient reductions
(``MixedPrecisionPolicy``). The frozen reference is sharded the same way.

Generation does not run on the sharded actor: an FSDP forward gathers each layer's weights (a
collective), and processes stop decoding at different steps, so a collective inside the decoding
loop deadlocks. :func:`gather_into` copies the full weights into a plain (unsharded) sampler
model once per iteration, outside the loop; decoding then needs no collective.

Durable checkpoints are written sharded (:func:`save_sharded`, ``torch.distributed.checkpoint``:
each process writes its shard of the models and AdamW states; nothing is gathered), beside the
usual schedulers, counters and per-process RNG files. The final policy is gathered whole and
saved by the main process as one HF folder.
"""

from __future__ import annotations

import torch
from torch import nn

from prmrl.config import PARALLEL  # noqa: F401  (the names run.parallel allows)


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks of an HF decoder (``model.model.layers`` for Llama / Qwen2 / Mistral,
    the causal LM and the token-classification heads alike)."""
    base = getattr(model, "model", None) or getattr(model, "base_model", None)
    layers = getattr(base, "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__}: no decoder layers found (model.model.layers) to shard")
    return list(layers)


def shard(model: nn.Module, compute_dtype: torch.dtype | None = None) -> nn.Module:
    """Apply FSDP2 to ``model`` in place: each decoder layer, then the root. ``compute_dtype``
    (bf16 / fp16 on GPU) casts parameters for compute and keeps gradient reductions float32."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = (MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
          if compute_dtype is not None else MixedPrecisionPolicy())
    for layer in decoder_layers(model):
        fully_shard(layer, mp_policy=mp)
    fully_shard(model, mp_policy=mp)
    return model


def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def full_model_state(model: nn.Module, to_cpu: bool = True) -> dict[str, torch.Tensor]:
    """The whole state dict of a sharded model (every process must call it; with ``to_cpu``
    only the main process receives the tensors, the others an empty dict)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_options(cpu_offload=to_cpu))


def save_sharded(folder, parts: dict[str, tuple]) -> None:
    """Write sharded models and optimizers with ``torch.distributed.checkpoint`` (every process
    its own shard; a collective). ``parts``: name -> (model,) or (model, optimizer)."""
    import torch.distributed.checkpoint as dcp

    dcp.save(_sharded_state(parts), checkpoint_id=str(folder))


def load_sharded(folder, parts: dict[str, tuple]) -> None:
    """Read what :func:`save_sharded` wrote into the same models and optimizers (any process
    count that shards them the same way reads its own shards)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    state = _sharded_state(parts)
    dcp.load(state, checkpoint_id=str(folder))
    for name, objs in parts.items():
        if len(objs) == 1:
            set_model_state_dict(objs[0], state[name])
        else:
            set_optimizer_state_dict(objs[0], objs[1], state[name])


def _sharded_state(parts: dict[str, tuple]) -> dict:
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    return {name: get_model_state_dict(objs[0]) if len(objs) == 1 else get_optimizer_state_dict(*objs)
            for name, objs in parts.items()}


@torch.no_grad()
def gather_into(target: nn.Module, sharded: nn.Module) -> nn.Module:
    """Copy the full weights of ``sharded`` into the plain model ``target`` (same architecture),
    in place; every process calls it (one all-gather per tensor, the same order everywhere)."""
    from torch.distributed.tensor import DTensor

    dsts = target.state_dict(keep_vars=True)        # tied weights appear under each name
    for name, value in sharded.state_dict().items():
        full = value.full_tensor() if isinstance(value, DTensor) else value
        dst = dsts.get(name)
        if dst is None:
            raise KeyError(f"{name}: in the sharded model but not in the sampler copy")
        dst.copy_(full.to(dst.dtype))
    return target


def clip_grad_norm(model: nn.Module, max_norm: float) -> torch.Tensor:
    """Clip the gradients of a sharded model by their global norm (over all shards); returns the
    norm as a plain tensor."""
    from torch.distributed.tensor import DTensor

    norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], max_norm)
    return norm.full_tensor() if isinstance(norm, DTensor) else norm
