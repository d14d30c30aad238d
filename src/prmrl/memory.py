"""GPU memory per process of a PPO run, from the models' shapes and the run's settings: arithmetic,
not a measurement (no torch here; inputs are numbers, dicts and config.json files).

    policy = ModelShape.from_config_json(".../Qwen2.5-Math-1.5B-Instruct/config.json")
    p = plan(policy, critic=policy.scalar(), frozen={"PRM": prm}, setup=Setup(micro_batch=4, ...))
    p.peak_gb, p.peak_phase, p.lines()

Bytes, reported in GB = 1e9 B (an "80 GB" GPU holds 80 GiB = 85.9e9 B: the ~7% between is left to
allocator fragmentation). Sources: prmrl's code (``rl/trainer.py``, ``rl/sharding.py``,
``rl/core.py``, ``models/forward.py``, ``models/sampler.py``, ``models/factory.py``,
``rewards/``), the torch / transformers internals named below, and saved tensors measured on a
tiny Qwen2 (tests/test_memory.py repeats those measurements).

Resident (every phase):

- actor and critic: float32 weights (4 B/param), float32 gradients (4 B/param; they stay between
  steps, ``zero_grad(set_to_none=True)`` runs at the start of one) and AdamW's m and v (8 B/param).
  DDP: gradients are views into its buckets (``gradient_as_bucket_view=True``, as
  ``rl.trainer.default_accelerator`` asks; else one more 4 B/param). FSDP2 (``rl.sharding``):
  all three divided by the world size, plus the sampler, a plain copy of the actor in the compute
  dtype (2 B/param) that the gathered weights are copied into once per iteration.
- a CUDA allowance (context, NCCL and cuBLAS workspaces): a fixed guess, ``Setup.cuda_context_gb``.

Frozen (every phase but the update and the evaluation after it with ``run.offload_frozen``, which
moves them to the host before the update and back before scoring):

- the reference: DDP, ``models.factory.frozen_copy`` under mixed precision: ``nn.Linear`` weights
  in 16 bits, embeddings, norms and a tied head float32; FSDP2: an exact float32 copy sharded
  like the actor (4 B/param / world size). ORM and PRM: ``model.dtype`` bytes/param, whole on every
  GPU (scorers are not sharded).

Phases (added to the above; the peak is the largest sum):

- generate: the sampler's KV cache (``models.sampler.sample_tokens``: one ``DynamicCache`` over at
  most ``sampler_batch`` = 512 rows, ``512 // n`` prompts x their n samples): ``layers x kv_heads
  x head_dim x rows x (prompt + max_new_tokens)`` x (key + value bytes), plus one layer while
  ``torch.cat`` grows it. Under autocast over float32 weights (DDP) keys are float32 and values
  bf16 (RoPE multiplies the bf16 keys by float32 cos/sin: the embedding output is float32;
  measured): 6 B per key/value pair, not 4; FSDP2's bf16 sampler stores 4. Or, when larger, the
  prefill: the prompts' KV with one layer's inference temporaries over all prompt tokens, or the
  KV repeated for the n samples beside the original. Plus the step's logits (rows x V x 12 B).
- evaluate: the same for the in-training greedy evaluation (n = 1; ``eval.n_problems_during``
  split over the processes, ``eval.max_new_tokens``).
- score: the largest frozen scorer's forward over ``score_batch`` = 64 answers (``PRMReward``,
  ``ORMReward``) of prompt + max_new_tokens tokens (the scorer's own format and tokenizer may make
  them somewhat longer): one layer's inference temporaries over all tokens and the (B, L, C)
  output (C = the vocabulary for a causal-LM PRM: Math-Shepherd); a likelihood-feature PRM
  (``models.likelihood``) also holds every layer's hidden states and (B, L, V) bf16 logits,
  their float32 copy and float32 log-softmax (10 B per element).
- shape: the no-grad passes of actor, reference and critic in chunks of ``micro_batch`` rows:
  inference temporaries, the (B, T, V) 16-bit logits of the response plus one float32 chunk
  (``core._CHUNK_ELEMS`` = 2^24 elements, 64 MiB), and the weights as they compute.
- update: one micro-batch forward + backward of the actor (or the critic, if larger):
  activations saved for backward (below); the logits and their gradient, two (B, T+1, V) 16-bit
  tensors alive at once in backward (``core._SelectiveLogSoftmax`` keeps only the logits and a
  (B, T) logsumexp and returns a gradient of the logits' size, which slicing's backward copies once
  more after the first is freed) plus two float32 chunks; and the weights as they compute.

Weights as they compute. DDP with mixed precision: autocast's cached 16-bit copies of every
``nn.Linear`` weight of the running model (a tied LM head included; the cache lives until the
autocast region exits and backward keeps the copies the forward saved): 2 B/param, for actor and
critic together in the shape phase (one autocast region). FSDP2 (``MixedPrecisionPolicy(param_dtype
=bf16, reduce_dtype=float32)``, each decoder layer a unit and the root holding embeddings, final
norm and head): the gathered 16-bit root and two decoder layers (the running one and the
prefetched); in the update also the head's unsharded 16-bit gradient (held from the start of
backward to the root's reduce-scatter) and one layer's gradient in 16 bits and float32; and with
``micro_batch < minibatch`` (no gradient sync before the last micro-batch) every parameter's
unsharded gradient accumulated in float32, 4 B/param (torch's
``FSDPParam.to_accumulated_grad_if_needed``).

Activations saved for backward, per decoder layer and token, for a Qwen2 / Llama / Mistral block
(RMSNorm, SDPA with a padding mask, so transformers repeats GQA's K and V to all heads, SwiGLU);
q = heads x head_dim, h = hidden, I = intermediate, L = the row's length; measured on a tiny Qwen2
(transformers 5) and matching the saved-tensor list of each op:

- autocast to bf16 over float32 weights (DDP): ``26h + 8q + 8I + 4 heads + 8 + 2L`` bytes (two
  RMSNorms' float32 input and normalised copy 16h, the bf16 casts of the q/k/v inputs 6h and of
  the MLP inputs 4h, SDPA's q, k, v, out 8q and float32 logsumexp 4 heads, SwiGLU's four 2I
  tensors, the padding mask as a (B, 1, L, L) 16-bit bias 2L, two rsqrt 8);
- bf16 parameters (FSDP2): ``16h + 8q + 8I + 4 heads + 8 + 2L``;
- float32 throughout (no mixed precision): ``24h + 16q + 16I + 4 heads + 8 + 4L``.

With gradient checkpointing (``activation_checkpointing_enable``, non-reentrant, per decoder
layer) only each layer's input is kept (4h per token on a float32 residual stream, 2h on bf16;
measured). Backward needs one more layer's worth of temporaries, two with checkpointing (the
recomputed layer and its gradients). Outside the layers: the final norm over all tokens and the
head's input over the kept ones.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

GB = 1e9
CHUNK_BYTES = (1 << 24) * 4          # one float32 chunk of prmrl.rl.core's chunked log-softmax
PARALLEL = ("ddp", "fsdp2")


# ---- model shapes ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder-only transformer (Qwen2, Llama, Mistral layout) and its head.

    head: "lm" (a causal LM: a V x h output projection, shared with the embedding when
    ``tied``), "token" (a token classifier: h x num_labels + bias, prmrl's critic / ORM / native
    PRM), "qwen_prm" (Qwen2.5-Math-PRM's head: Linear(h, h), ReLU, Linear(h, num_labels)).
    extra_params: parameters outside that layout (a likelihood reward model's copy of the LM's
    final norm and output embedding); likelihood: that model computes (B, L, V) log-probs.
    """

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    head_dim: int = 0                 # 0: hidden // heads
    tied: bool = False
    head: str = "lm"
    num_labels: int = 1
    qkv_bias: bool = False
    extra_params: int = 0
    likelihood: bool = False
    name: str = ""

    def __post_init__(self):
        if self.head not in ("lm", "token", "qwen_prm"):
            raise ValueError(f"head: {self.head!r}; one of 'lm', 'token', 'qwen_prm'")
        if not self.head_dim:
            object.__setattr__(self, "head_dim", self.hidden // self.heads)

    @classmethod
    def from_dict(cls, d: Mapping, name: str = "") -> "ModelShape":
        """From the fields of a Hugging Face config.json (Qwen2 / Llama / Mistral names)."""
        archs = list(d.get("architectures") or [])
        if any(a.endswith("ProcessRewardModel") for a in archs):
            head, labels = "qwen_prm", int(d.get("num_labels", 2))
        elif any(a.endswith(("ForTokenClassification", "ForSequenceClassification")) for a in archs):
            head, labels = "token", int(d.get("num_labels", len(d.get("id2label") or {}) or 1))
        else:
            head, labels = "lm", 1
        h, heads = int(d["hidden_size"]), int(d["num_attention_heads"])
        lik = d.get("prmrl_likelihood")
        vocab = int(d["vocab_size"])
        return cls(
            hidden=h, layers=int(d["num_hidden_layers"]), heads=heads,
            kv_heads=int(d.get("num_key_value_heads") or heads),
            intermediate=int(d["intermediate_size"]), vocab=vocab,
            head_dim=int(d.get("head_dim") or h // heads),
            # HF's Qwen2, Llama and Mistral configs default to untied
            tied=bool(d.get("tie_word_embeddings", False)), head=head, num_labels=labels,
            # Qwen2 has q/k/v biases; Llama and Mistral none unless attention_bias
            qkv_bias=d.get("model_type") == "qwen2" or bool(d.get("attention_bias", False)),
            extra_params=(vocab * h + h) if lik else 0, likelihood=bool(lik), name=name)

    @classmethod
    def from_config_json(cls, path: str | Path) -> "ModelShape":
        """From a model's config.json (a file, or the folder holding it)."""
        p = Path(path)
        if p.is_dir():
            p = p / "config.json"
        return cls.from_dict(json.loads(p.read_text()), name=str(path))

    # -- parameter counts --

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def proj_params_per_layer(self) -> int:
        """The ``nn.Linear`` parameters of one decoder layer: q, k, v (with biases for Qwen2),
        o, and the MLP's gate, up, down."""
        h, q, kv = self.hidden, self.q_dim, self.kv_dim
        bias = (q + 2 * kv) if self.qkv_bias else 0
        return h * q + 2 * h * kv + bias + q * h + 3 * h * self.intermediate

    @property
    def layer_params(self) -> int:
        """One decoder layer: its projections and its two RMSNorm weights."""
        return self.proj_params_per_layer + 2 * self.hidden

    @property
    def embed_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def head_linear_params(self) -> int:
        """The head's ``nn.Linear`` parameters (the LM head counts even when tied: autocast
        casts it for its matmul)."""
        h, c = self.hidden, self.num_labels
        if self.head == "lm":
            return self.vocab * h
        if self.head == "token":
            return h * c + c
        return h * h + h + h * c + c          # qwen_prm

    @property
    def head_params(self) -> int:
        """Parameters the head adds to the count (0 for a tied LM head)."""
        return 0 if (self.head == "lm" and self.tied) else self.head_linear_params

    @property
    def linear_params(self) -> int:
        """Parameters of every ``nn.Linear`` (what autocast casts to 16 bits)."""
        return self.layers * self.proj_params_per_layer + self.head_linear_params

    @property
    def params(self) -> int:
        """Embedding + layers + final norm + head (+ extra)."""
        return (self.embed_params + self.layers * self.layer_params + self.hidden
                + self.head_params + self.extra_params)

    # -- derived models --

    def scalar(self, num_labels: int = 1) -> "ModelShape":
        """The same backbone with a token head (prmrl's critic, ORM or native PRM built from this
        model by ``prmrl.models.factory.load_scalar_model``)."""
        return replace(self, head="token", num_labels=num_labels, tied=False, extra_params=0,
                       likelihood=False, name=f"{self.name} (scalar head)")

    def deepened(self, extra_layers: int, likelihood: bool = False) -> "ModelShape":
        """``extra_layers`` more decoder layers (``load_scalar_model(extra_layers=...)``), and with
        ``likelihood`` the LM's final norm and output embedding copied (prmrl.models.likelihood)."""
        return replace(self, layers=self.layers + extra_layers, likelihood=likelihood,
                       extra_params=(self.vocab * self.hidden + self.hidden) if likelihood else 0)


# ---- per-token formulas ---------------------------------------------------------------------

COMPUTE = ("autocast", "bf16", "fp32")   # fp32 weights under bf16 autocast | bf16 params | fp32


def layer_activation_bytes(m: ModelShape, seq_len: int, compute: str) -> int:
    """Bytes saved for backward by one decoder layer per token (module doc; measured)."""
    h, q, inter, nh = m.hidden, m.q_dim, m.intermediate, m.heads
    if compute == "autocast":
        return 26 * h + 8 * q + 8 * inter + 4 * nh + 8 + 2 * seq_len
    if compute == "bf16":
        return 16 * h + 8 * q + 8 * inter + 4 * nh + 8 + 2 * seq_len
    if compute == "fp32":
        return 24 * h + 16 * q + 16 * inter + 4 * nh + 8 + 4 * seq_len
    raise ValueError(f"compute: {compute!r}; one of {COMPUTE}")


def residual_bytes(compute: str) -> int:
    """Bytes per element of the residual stream (float32 under autocast over float32 weights:
    the embedding and RMSNorm outputs are float32)."""
    return 2 if compute == "bf16" else 4


def compute_bytes(compute: str) -> int:
    return 4 if compute == "fp32" else 2


def inference_bytes_per_token(m: ModelShape, seq_len: int, compute: str) -> int:
    """Live temporaries of one layer's no-grad forward per token, at its MLP: the residual and
    its normed copy, the 16-bit cast of it (autocast), gate, up and act (3 I), and the layer's
    padding-mask bias (L)."""
    rb, cb = residual_bytes(compute), compute_bytes(compute)
    cast = 2 * m.hidden if compute == "autocast" else 0
    return 2 * rb * m.hidden + cast + 3 * cb * m.intermediate + cb * seq_len


def kv_bytes_per_token(m: ModelShape, compute: str) -> int:
    """KV cache bytes per token over all layers: keys float32 under autocast over float32
    weights (RoPE in float32, measured), values in the compute dtype."""
    key = 4 if compute in ("autocast", "fp32") else 2
    value = compute_bytes(compute)
    return m.layers * m.kv_dim * (key + value)


# ---- the plan -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Setup:
    """The run's settings the plan reads (per process).

    mixed_precision: ``model.dtype`` is 16-bit (autocast on the GPU); frozen_bytes: bytes per
    parameter of the frozen ORM / PRM (``model.dtype``). rollout_rows: prompts_per_iteration x
    samples_per_prompt. eval_rows: problems of the in-training greedy evaluation, over all
    processes (0: none)."""

    parallel: str = "ddp"
    world_size: int = 1
    mixed_precision: bool = True
    frozen_bytes: int = 2
    prompt_tokens: int = 512
    eval_prompt_tokens: int = 0       # 0: prompt_tokens
    max_new_tokens: int = 1024
    rollout_rows: int = 256
    samples_per_prompt: int = 8
    micro_batch: int = 1
    minibatch: int = 0                # 0: micro_batch (no gradient accumulation)
    gradient_checkpointing: bool = False
    offload_frozen: bool = False
    eval_rows: int = 0
    eval_max_new_tokens: int = 0
    score_batch: int = 64
    sampler_batch: int = 512
    ddp_bucket_view: bool = True
    cuda_context_gb: float = 2.0

    def __post_init__(self):
        if self.parallel not in PARALLEL:
            raise ValueError(f"parallel: {self.parallel!r}; one of {PARALLEL}")
        if self.world_size < 1 or self.micro_batch < 1:
            raise ValueError("world_size and micro_batch must be >= 1")

    @property
    def compute(self) -> str:
        """How the trained models compute: bf16 parameters (FSDP2's MixedPrecisionPolicy),
        autocast over float32 weights (DDP), or float32."""
        if not self.mixed_precision:
            return "fp32"
        return "bf16" if self.parallel == "fsdp2" else "autocast"

    @property
    def shards(self) -> int:
        return self.world_size if self.parallel == "fsdp2" else 1


@dataclass
class Plan:
    """Bytes per GPU: ``resident`` (every phase), ``frozen`` (every phase but the update with
    offload), and each phase's transient parts."""

    setup: Setup
    resident: dict[str, float]
    frozen: dict[str, float]
    phases: dict[str, dict[str, float]]
    notes: list[str] = field(default_factory=list)
    params: dict[str, int] = field(default_factory=dict)    # model -> parameter count

    def phase_bytes(self, phase: str) -> float:
        frozen = 0.0 if self.frozen_offloaded(phase) else sum(self.frozen.values())
        return sum(self.resident.values()) + frozen + sum(self.phases[phase].values())

    def frozen_offloaded(self, phase: str) -> bool:
        """With ``offload_frozen`` the trainer moves the frozen models to the host before the
        update and back before scoring: they are away in the update and the evaluation after it
        (and in later iterations' generation, but the first samples with them on the GPU)."""
        return self.setup.offload_frozen and phase in ("update", "evaluate")

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=self.phase_bytes)

    @property
    def peak_gb(self) -> float:
        return self.phase_bytes(self.peak_phase) / GB

    def gb(self, phase: str) -> float:
        return self.phase_bytes(phase) / GB

    def layout(self) -> str:
        s = self.setup
        where = f"{s.parallel} over {s.world_size} GPU{'s' if s.world_size > 1 else ''}"
        mini = f" of minibatch {s.minibatch}" if s.minibatch > s.micro_batch else ""
        out = (f"{where}, micro-batch {s.micro_batch}{mini}, gradient checkpointing "
               f"{'on' if s.gradient_checkpointing else 'off'}, frozen models "
               f"{'on the host in update and evaluation' if s.offload_frozen else 'on the GPU'}, "
               f"{s.rollout_rows} rollout rows of <= {s.prompt_tokens} + {s.max_new_tokens} tokens")
        if s.eval_rows:
            out += (f", {-(-s.eval_rows // s.world_size)} evaluation rows of <= "
                    f"{s.eval_prompt_tokens or s.prompt_tokens} + {s.eval_max_new_tokens or s.max_new_tokens}")
        return out + " per GPU"

    def lines(self, limit_gb: float | None = None) -> list[str]:
        """The table: resident parts, frozen parts, then each phase's total and its parts."""
        def parts(d: dict[str, float]) -> str:      # parts under 0.05 GB left out
            return ", ".join(f"{k} {v / GB:.1f}" for k, v in d.items() if v >= 0.05 * GB) or "-"

        res = sum(self.resident.values()) / GB
        fro = sum(self.frozen.values()) / GB
        out = ["memory per GPU, estimated in GB (1e9 B):",
               *textwrap.wrap(self.layout(), 92, initial_indent="  layout   ", subsequent_indent=" " * 11),
               "  params   " + ", ".join(f"{k} {v / 1e9:.2f}e9" for k, v in self.params.items()),
               f"  resident {res:6.1f}  {parts(self.resident)}",
               f"  frozen   {fro:6.1f}  {parts(self.frozen) if self.frozen else '-'}"
               + ("  (on the host in update and evaluate)" if self.setup.offload_frozen and self.frozen else "")]
        for name, d in self.phases.items():
            mark = "  <- peak" if name == self.peak_phase else ""
            out.append(f"  {name:<8} {self.gb(name):6.1f}  = resident + "
                       f"{'' if self.frozen_offloaded(name) or not self.frozen else 'frozen + '}"
                       f"{parts(d)}{mark}")
        cap = f" of {limit_gb:g} GB" if limit_gb is not None else ""
        out.append(f"  peak     {self.peak_gb:6.1f}{cap} ({self.peak_phase})")
        out += [f"  note: {n}" for n in self.notes]
        return out


def _working_set(m: ModelShape, s: Setup, phase: str) -> dict[str, float]:
    """What a trained model needs beyond its resident state while it computes in ``phase``
    ("shape" or "update"; module doc, "Weights as they compute")."""
    if s.parallel == "fsdp2":
        cb = compute_bytes(s.compute)
        root = m.embed_params + m.head_params + m.hidden        # a tied head is the embedding
        parts = {"FSDP2 gathered": cb * (root + 2 * m.layer_params)}
        if phase == "update":
            parts["FSDP2 unsharded grads"] = cb * m.head_linear_params + (cb + 4) * m.layer_params
            if s.minibatch > s.micro_batch:
                parts["FSDP2 accumulated grads"] = 4.0 * m.params
        return parts
    if s.mixed_precision:
        return {"autocast weight copies": 2.0 * m.linear_params}
    return {}


def _reference_bytes(m: ModelShape, s: Setup) -> float:
    """DDP: ``frozen_copy`` (Linear weights 16-bit under mixed precision, embeddings, norms and a
    tied head float32); FSDP2: an exact float32 copy, sharded."""
    if s.parallel == "fsdp2":
        return 4.0 * m.params / s.shards
    if not s.mixed_precision:
        return 4.0 * m.params
    linear = m.layers * m.proj_params_per_layer + (0 if m.tied else m.head_linear_params)
    return 2.0 * linear + 4.0 * (m.params - linear)


def _generation(m: ModelShape, s: Setup, rows: int, n: int, prompt: int, new_tokens: int) -> dict[str, float]:
    """The sampler at its largest: the KV cache at the last step, or the prefill if larger."""
    c = s.compute
    if rows <= 0:
        return {}
    per_batch = max(1, s.sampler_batch // n)            # prompts per sampler batch
    rows = min(rows, per_batch * n)
    prompts = max(1, rows // n)
    L = prompt + new_tokens
    kv_tok = kv_bytes_per_token(m, c)
    decode = {"KV cache": rows * L * kv_tok * (1 + 1 / m.layers), "step logits": rows * m.vocab * 12.0}
    # prefill: the prompts' forward (their KV and one layer's temporaries), then the cache
    # repeated for the n samples while the unrepeated one still exists
    ptok = prompts * prompt
    prefill = max(ptok * (kv_tok + inference_bytes_per_token(m, prompt, c)), ptok * kv_tok * (1 + n))
    if prefill > sum(decode.values()):
        return {"prefill": prefill}
    return decode


def plan(actor: ModelShape, *, critic: ModelShape | None = None, reference: bool = True,
         frozen: Mapping[str, ModelShape] | None = None, setup: Setup = Setup()) -> Plan:
    """Memory per GPU of PPO with ``actor`` (and ``critic``; None: critic-free), the frozen
    reference (a copy of the actor) and the frozen scorers in ``frozen`` (name -> shape)."""
    s, c = setup, setup.compute
    frozen = dict(frozen or {})
    trained = actor.params + (critic.params if critic is not None else 0)
    resident = {
        "weights fp32": 4.0 * trained / s.shards,
        "grads fp32": 4.0 * trained / s.shards,
        "AdamW fp32": 8.0 * trained / s.shards,
    }
    if s.parallel == "ddp" and s.world_size > 1 and not s.ddp_bucket_view:
        resident["DDP buckets"] = 4.0 * trained
    if s.parallel == "fsdp2":
        resident["sampler copy"] = float(compute_bytes(c)) * actor.params
    resident["CUDA allowance"] = s.cuda_context_gb * GB
    frozen_parts = {}
    if reference:
        frozen_parts["reference"] = _reference_bytes(actor, s)
    for name, m in frozen.items():
        frozen_parts[name] = float(s.frozen_bytes) * m.params

    P, R = s.prompt_tokens, s.max_new_tokens
    L = P + R
    phases: dict[str, dict[str, float]] = {}

    # generate / evaluate: the actor (DDP, autocast over its float32 weights) or the FSDP2
    # sampler copy (already counted) samples; evaluation problems are split over the processes
    copies = _working_set(actor, s, "generate") if s.parallel == "ddp" else {}
    phases["generate"] = {**_generation(actor, s, s.rollout_rows, s.samples_per_prompt, P, R), **copies}
    if s.eval_rows:
        rows = -(-s.eval_rows // s.world_size)
        phases["evaluate"] = {**_generation(actor, s, rows, 1, s.eval_prompt_tokens or P,
                                            s.eval_max_new_tokens or R), **copies}

    # score: the frozen scorers one after the other, score_batch answers at a time
    if frozen:
        best: dict[str, float] = {}
        for name, m in frozen.items():
            fc = "bf16" if s.frozen_bytes == 2 else "fp32"
            tokens = min(s.score_batch, max(1, s.rollout_rows)) * L
            part = {f"{name} forward": tokens * inference_bytes_per_token(m, L, fc),
                    f"{name} logits": tokens * (m.vocab if m.head == "lm" else m.num_labels) * compute_bytes(fc)}
            if m.likelihood:
                part[f"{name} likelihood log-probs"] = tokens * m.vocab * 10.0
                part[f"{name} hidden states"] = tokens * (m.layers + 1) * m.hidden * 2.0
            if sum(part.values()) > sum(best.values()):
                best = part
        phases["score"] = best

    # shape: no-grad passes of actor, reference and critic in micro-batches, under one autocast
    mb = s.micro_batch
    logits_b = compute_bytes(c)
    weights = _working_set(actor, s, "shape")
    if critic is not None:
        other = _working_set(critic, s, "shape")
        weights = {k: (v + other[k] if s.parallel == "ddp" else max(v, other[k])) for k, v in weights.items()}
    phases["shape"] = {"forward": mb * L * inference_bytes_per_token(actor, L, c),
                       "logits": mb * (R + 1) * actor.vocab * logits_b + CHUNK_BYTES, **weights}

    # update: one micro-batch forward + backward of the actor (or the critic, if larger)
    def update_parts(m: ModelShape, lm: bool) -> dict[str, float]:
        per_layer = layer_activation_bytes(m, L, c)
        if s.gradient_checkpointing:
            body = m.layers * residual_bytes(c) * m.hidden + 2 * per_layer
        else:
            body = (m.layers + 1) * per_layer
        outside = L * (2 * residual_bytes(c) * m.hidden + 12) + (R + 1) * 2 * m.hidden
        parts = {"activations": mb * (L * body + outside)}
        if lm:
            parts["logits + grad"] = 2 * mb * (R + 1) * m.vocab * logits_b + 2 * CHUNK_BYTES
        return {**parts, **_working_set(m, s, "update")}

    upd = update_parts(actor, lm=True)
    if critic is not None:
        crit = update_parts(critic, lm=False)
        if sum(crit.values()) > sum(upd.values()):
            upd = {f"critic {k}": v for k, v in crit.items()}
    phases["update"] = upd

    notes = []
    if not s.gradient_checkpointing:
        alt = plan(actor, critic=critic, reference=reference, frozen=frozen,
                   setup=replace(s, gradient_checkpointing=True))
        notes.append(f"with gradient checkpointing the update would be {alt.gb('update'):.1f} GB")
    params = {"policy": actor.params, **({"critic": critic.params} if critic is not None else {}),
              **{name: m.params for name, m in frozen.items()}}
    return Plan(s, resident, frozen_parts, phases, notes, params)
