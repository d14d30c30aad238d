"""A reward model that also reads its backbone's own token likelihoods.

A verifier built on the policy's layers has, in those layers, what the policy expected at every
position; whether the token written there was likely is one dot product away (the policy's LM
head), but learning that product through new decoder layers takes more data than the labelled
answers give (on the embedded task: the policy's lowest token probability in a prefix ranks
steps at AUC 0.93; two new layers trained on the same answers, 0.86). So the model computes it:

    lp[t]   = log p_backbone(x_t | x_<t)          response tokens only (0 on the prompt and padding)
    run[t]  = min(lp[s] for s <= t)                the least likely token so far
    logit[t] = head(h[t]) + w_run * run[t] + w_lp * lp[t] + b

``p_backbone`` is the checkpoint's causal LM as it was (its final norm and output embedding,
kept frozen), read from the hidden state after the checkpoint's own layers, below any extra
layers; ``head(h)`` is the usual scalar head on the top layer. The mix (w_run, w_lp, b) starts
at 0, so a new model scores as a plain scalar head would and training decides how much the
likelihoods count. Everything is in one forward pass, so a PRM still scores K steps at once.

The forward needs ``response_mask`` (1 on response tokens): the prompt's tokens are not the
policy's writing. Saved as the scalar-head model's Hugging Face folder (config key
``prmrl_likelihood``) plus ``likelihood_head.safetensors``; ``load_scalar_model`` restores both.
Loaded with plain ``AutoModelForTokenClassification``, the folder gives the head without the
likelihood terms, which scores differently: load it with prmrl.

Memory: the forward holds (B, L, V) float32 log-probs, as a policy's log-prob pass does; with a
real vocabulary (150k tokens) keep scoring and training batches small, or set
``rm.likelihood_features=false``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel

CONFIG_KEY = "prmrl_likelihood"
WEIGHTS = "likelihood_head.safetensors"


def running_min_logprobs(logprobs: torch.Tensor, response_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(lp, run), both (B, L): token log-probs zeroed outside the response, and their running min.

    Example: logprobs [[-5, -1, -3, -0.5]], response_mask [[0, 1, 1, 1]] ->
    lp [[0, -1, -3, -0.5]], run [[0, -1, -3, -3]].
    """
    lp = logprobs * response_mask.to(logprobs.dtype)
    return lp, torch.cummin(lp, dim=1).values


class LikelihoodRewardModel(nn.Module):
    """``scalar`` (a token-classification model, num_labels=1) plus the likelihood terms above.

    Attributes the rest of prmrl reads (``config``, ``device``, ``base_model``,
    ``get_input_embeddings``) come from ``scalar``.
    """

    uses_response_mask = True

    def __init__(self, scalar: PreTrainedModel, lm_norm: nn.Module, lm_head: nn.Linear, backbone_layers: int):
        super().__init__()
        self.scalar, self.lm_norm, self.lm_head = scalar, lm_norm, lm_head
        self.backbone_layers = backbone_layers
        self.mix = nn.Linear(2, 1)
        nn.init.zeros_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)
        self.lm_norm.requires_grad_(False)
        self.lm_head.requires_grad_(False)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["scalar"], name)

    @classmethod
    def from_causal_lm(cls, scalar: PreTrainedModel, causal_lm_path: str | os.PathLike) -> "LikelihoodRewardModel":
        """Wrap ``scalar`` (built from the causal LM at ``causal_lm_path``, maybe with extra
        layers) with that LM's final norm and output embedding, copied as they are."""
        lm = AutoModelForCausalLM.from_pretrained(str(causal_lm_path), dtype=scalar.dtype)
        norm = getattr(lm.base_model, "norm", None)
        if norm is None:
            raise ValueError(f"{causal_lm_path}: no final norm to read the LM's likelihoods through")
        n = lm.config.num_hidden_layers
        return cls(scalar, copy.deepcopy(norm), copy.deepcopy(lm.get_output_embeddings()), n)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, response_mask: torch.Tensor | None = None, **kw):
        if response_mask is None:
            raise ValueError("LikelihoodRewardModel needs response_mask (1 on response tokens)")
        out = self.scalar(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          output_hidden_states=True, **kw)
        h = out.hidden_states[self.backbone_layers]                       # (B, L, H) below extra layers
        logp = self.lm_head(self.lm_norm(h)).float().log_softmax(-1)      # (B, L, V)
        tok = torch.zeros(input_ids.shape, dtype=logp.dtype, device=logp.device)
        tok[:, 1:] = logp[:, :-1].gather(-1, input_ids[:, 1:, None])[..., 0]
        lp, run = running_min_logprobs(tok, response_mask)
        extra = self.mix(torch.stack([run, lp], dim=-1))                 # (B, L, 1)
        out.logits = out.logits + extra.to(out.logits.dtype)
        out.hidden_states = None
        return out

    def save_pretrained(self, path: str | os.PathLike) -> None:
        from safetensors.torch import save_file

        setattr(self.scalar.config, CONFIG_KEY, {"backbone_layers": self.backbone_layers})
        self.scalar.save_pretrained(path)
        tensors = {f"lm_norm.{k}": v for k, v in self.lm_norm.state_dict().items()}
        tensors |= {f"lm_head.{k}": v for k, v in self.lm_head.state_dict().items()}
        tensors |= {f"mix.{k}": v for k, v in self.mix.state_dict().items()}
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(Path(path) / WEIGHTS))

    @classmethod
    def load(cls, scalar: PreTrainedModel, path: str | os.PathLike) -> "LikelihoodRewardModel":
        """Restore a saved model: ``scalar`` loaded from ``path``, the rest from its weights file."""
        from safetensors.torch import load_file

        file = Path(path) / WEIGHTS
        if not file.exists():
            raise FileNotFoundError(f"{path}: config.json names {CONFIG_KEY} but {WEIGHTS} is missing")
        state = load_file(str(file))
        vocab, hidden = state["lm_head.weight"].shape
        head = nn.Linear(hidden, vocab, bias="lm_head.bias" in state)
        model = cls(scalar, copy.deepcopy(scalar.base_model.norm), head,
                    getattr(scalar.config, CONFIG_KEY)["backbone_layers"])
        for name in ("lm_norm", "lm_head", "mix"):
            part = {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}
            getattr(model, name).load_state_dict(part)
        return model.to(scalar.dtype)
