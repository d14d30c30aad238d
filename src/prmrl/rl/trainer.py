"""PPO on token-level rewards: the trainer that owns its loop.

    trainer = PPOTrainer(policy, ppo=PPOConfig(...), reward=RewardConfig(...), task=task,
                         prm=my_prm, splitter=my_splitter, output_dir="runs/x")
    trainer.fit(resume=True)

One iteration reads as phases (``iteration``):

    generate -> score -> shape -> advantages -> update -> log

Math lives in ``prmrl.rl.core`` (GAE, losses, KL) and ``prmrl.rewards`` (shaping, placement,
assembly); this file moves tensors between models and those functions. Durable state (every
model, optimizer, scheduler and RNG state, the data position, the counters) is written every
``save_every`` iterations by ``prmrl.rl.checkpoint``, so a resumed run continues exactly where
the checkpoint was taken (docs/method.md, "PPO"; README, "Python API").
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from prmrl.config import PPOConfig, RewardConfig, kl_place, micro_batch, minibatch_unit
from prmrl.diagnostics import hacking_metrics
from prmrl.models.factory import frozen_copy
from prmrl.models.forward import response_scalars, token_logprobs
from prmrl.models.sampler import generate
from prmrl.prompts import QUESTION_TEMPLATE
from prmrl.rewards import assemble
from prmrl.rewards.scorers import ORMReward, PRMReward, SuccessReward
from prmrl.rl import core, estimators, sharding
from prmrl.rl.batch import RolloutBatch, by_length, shuffled_rows
from prmrl.rl.sharding import PARALLEL
from prmrl.rl.callbacks import Callback, as_callbacks, check_sinks, make_sinks
from prmrl.rl.checkpoint import (CHECKPOINT_DIR, SHARDED_DIR, TrainingInterrupted, latest_checkpoint, load_checkpoint,
                                 rng_state, save_checkpoint, set_rng_state)
from prmrl.steps import Splitter, steps_for_batch
from prmrl.tasks import Task


class NonFiniteError(FloatingPointError):
    """A loss, reward or gradient norm was NaN or inf: the run stops, its last checkpoint intact."""


def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


class LocalAccelerator:
    """What the trainer needs of ``accelerate.Accelerator`` for one process on one device,
    without its process-wide state (so several trainers, of any precision, live in one
    process). ``accelerate launch`` runs, and GPU runs, use a real Accelerator."""

    num_processes = 1
    process_index = 0
    is_main_process = True

    def __init__(self, device: str | torch.device = "cpu", mixed_precision: str = "no"):
        """mixed_precision: "no", or "bf16" / "fp16": the trainer runs its forwards under
        ``torch.autocast`` to that dtype (on CPU too, e.g. to test the GPU's numeric path)."""
        if mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision: {mixed_precision!r}; one of 'no', 'bf16', 'fp16'")
        self.device = torch.device(device)
        self.mixed_precision = mixed_precision

    def no_sync(self, model):
        return contextlib.nullcontext()

    def prepare(self, *objs):
        return objs if len(objs) != 1 else objs[0]

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def clip_grad_norm_(self, params, max_norm: float) -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(list(params), max_norm)

    def unwrap_model(self, model):
        return model

    def wait_for_everyone(self) -> None:
        pass


def default_accelerator(precision: str = "float32"):
    """A LocalAccelerator on CPU; under ``accelerate launch`` or on a GPU an ``Accelerator``
    (bf16/fp16 autocast on GPU when ``precision`` asks for it)."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    gpu = torch.cuda.is_available()
    if not distributed and not gpu:
        return LocalAccelerator("cpu")
    from accelerate import Accelerator

    from accelerate.utils import DistributedDataParallelKwargs

    mixed = {"bfloat16": "bf16", "float16": "fp16"}.get(precision, "no") if gpu else "no"
    # gradients as views into DDP's buckets: one copy of the gradients, not two
    ddp = DistributedDataParallelKwargs(gradient_as_bucket_view=True)
    return Accelerator(cpu=not gpu, mixed_precision=mixed, kwargs_handlers=[ddp])


class PPOTrainer:
    """PPO with a critic on token-level rewards: success, ORM and PRM terms (``RewardConfig``),
    the KL to a frozen reference, GAE (``PPOConfig``).

    policy: a path (or hub name) or a causal-LM model; trained in float32.
    tokenizer: needed when ``policy`` is a model (loaded from the path otherwise).
    task / prompts + golds: the training problems. A ``Task`` brings its prompt function and
    grader; with bare ``prompts`` (already the policy's input text) give ``success=``.
    success, orm: ``(prompts, completions, **columns) -> list[float | None]``; prm:
    ``(prompts, steps, **columns) -> list[list[float | None]]`` (columns: ``question``,
    ``gold``). A path string loads a trained ORM / PRM (``reward.prm_format``). Default success:
    the task's grader. None from a scorer is counted (``unscorable/*``), never a silent 0.
    splitter: a delimiter string or ``text -> [(start, end), ...]`` character spans of steps
    (default: the task's delimiter).
    critic: a path or a token-classification model (default: the policy with a fresh head).
    output_dir: the run folder (metrics.jsonl, checkpoints/, policy/); None keeps everything in
    memory (``fit`` returns the metrics). save_every: checkpoint every N iterations (0: only at
    the end and on SIGTERM / Ctrl-C). precision: dtype of the frozen reference (and of autocast
    on GPU). report_to: extra metric sinks ("tensorboard", "wandb", "trackio").
    callbacks: objects with ``on_iteration_end(trainer, iteration, metrics)`` (and optionally
    ``on_fit_start`` / ``on_checkpoint`` / ``on_fit_end``), or plain callables of those args.
    accelerator: an ``accelerate.Accelerator`` (default: ``default_accelerator``).
    """

    def __init__(self, policy: Any, *, tokenizer=None, ppo: PPOConfig | None = None,
                 reward: RewardConfig | None = None, task: Task | None = None,
                 prompts: Sequence[str] | None = None, golds: Sequence[str] | None = None,
                 success: Callable | None = None, orm: Callable | str | None = None,
                 prm: Callable | str | None = None, splitter: str | Splitter | None = None,
                 critic: Any = None, output_dir: str | os.PathLike | None = None, seed: int = 0,
                 save_every: int = 5, precision: str = "float32", report_to: Sequence[str] = (),
                 callbacks: Sequence[Callback | Callable] = (), accelerator=None,
                 progress: bool = False, overwrite: bool = False, config: dict | None = None,
                 gradient_checkpointing: bool = False, offload_frozen: bool = False,
                 parallel: str = "ddp"):
        from prmrl.models.factory import (critic_from_policy, load_policy, load_scalar_model, load_tokenizer,
                                          without_dropout)

        self.ppo, self.reward = ppo or PPOConfig(), reward or RewardConfig()
        _check_sections(self.ppo, self.reward)
        _check_run_args(seed, save_every, precision, report_to)
        self.seed, self.save_every, self.precision = seed, save_every, precision
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.report_to, self.progress, self.overwrite = list(report_to), progress, overwrite
        self.callbacks = as_callbacks(callbacks)
        self.config = config
        self.acc = accelerator or default_accelerator(precision)
        self.task = _as_task(task, prompts, golds)
        self.splitter = splitter if splitter is not None else self.task.delimiter

        policy_path = str(policy) if isinstance(policy, (str, os.PathLike)) else None
        if tokenizer is None:
            if policy_path is None:
                raise ValueError("tokenizer: needed when the policy is given as a model")
            tokenizer = load_tokenizer(policy_path)
        self.tok = tokenizer
        # Trained weights in float32 whatever the checkpoint's dtype (bf16 AdamW barely moves
        # them); autocast (mixed precision) does the bf16 compute on GPU.
        actor = load_policy(policy_path, dtype=torch.float32) if policy_path else policy.float()
        if self.ppo.advantage != "gae":
            if critic is not None:
                raise ValueError(f"critic: ppo.advantage={self.ppo.advantage!r} is critic-free; give no critic")
        elif critic is None:
            critic = (load_scalar_model(policy_path, dtype=torch.float32) if policy_path
                      else critic_from_policy(actor))
        elif isinstance(critic, (str, os.PathLike)):
            critic = load_scalar_model(critic, dtype=torch.float32)
        if critic is not None:
            without_dropout(critic)
        self.policy_path = policy_path
        self.scorers = self._scorers(success, orm, prm)

        set_seed_all(seed + self.acc.process_index)
        # The frozen reference runs the actor's numeric path (the same autocast; 16-bit where
        # autocast computes in 16 bits), so the KL is 0 while their weights are equal.
        if gradient_checkpointing:    # recompute each layer in backward; off in generation (eval)
            for m in (actor, critic):
                if m is not None:   # transformers 5's name (gradient_checkpointing_enable is deprecated)
                    m.activation_checkpointing_enable({"use_reentrant": False})
        self.gradient_checkpointing, self.offload_frozen = gradient_checkpointing, offload_frozen
        if parallel not in PARALLEL:
            raise ValueError(f"parallel: {parallel!r}; one of {list(PARALLEL)}")
        self.parallel = parallel
        if parallel == "fsdp2":
            self._init_fsdp2(actor, critic)
        else:
            self._init_ddp(actor, critic)
        self.actor_sched = _schedule(self.actor_opt, self.ppo)
        self.critic_sched = _schedule(self.critic_opt, self.ppo) if self.critic is not None else None
        self.unscorable = {"success": 0, "orm": 0, "prm_steps": 0}
        self.iteration_done = 0           # iterations completed (the next one's index)
        self._epochs: dict[int, list[int]] = {}    # the data order of each pass (a cache)
        self._stop_signal: int | None = None
        self._delimiter_checked = False

    # ---- pieces --------------------------------------------------------------------------------

    def _optimizers(self, actor, critic):
        p = self.ppo
        return (torch.optim.AdamW(actor.parameters(), lr=p.actor_lr, eps=1e-5),
                torch.optim.AdamW(critic.parameters(), lr=p.critic_lr, eps=1e-5) if critic is not None else None)

    def _init_ddp(self, actor, critic) -> None:
        """One process, or DDP through accelerate: every process holds the whole models. The
        frozen reference runs the actor's numeric path (the same autocast; 16-bit where autocast
        computes in 16 bits), so the KL is 0 while their weights are equal."""
        self.ref = frozen_copy(actor, self._compute_dtype()).to(self.acc.device)
        actor_opt, critic_opt = self._optimizers(actor, critic)
        if critic is not None:
            self.actor, self.critic, self.actor_opt, self.critic_opt = self.acc.prepare(
                actor, critic, actor_opt, critic_opt)
        else:                       # critic-free: no critic, no value pass, no value update
            self.actor, self.actor_opt = self.acc.prepare(actor, actor_opt)
            self.critic = self.critic_opt = None
        self._sampler = None

    def _init_fsdp2(self, actor, critic) -> None:
        """FSDP2 (``prmrl.rl.sharding``): actor, critic and reference sharded over the processes;
        a plain copy of the actor in the compute dtype samples (its weights gathered once per
        iteration). The reference is an exact copy sharded with the actor's precision policy: the
        same numeric path."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise ValueError("run.parallel=fsdp2: needs processes started by `accelerate launch` or "
                             "torchrun (no process group)")
        dtype, dev = self._compute_dtype(), self.acc.device
        self._sampler = copy.deepcopy(actor).to(dev, dtype or torch.float32).eval().requires_grad_(False)
        self.ref = sharding.shard(frozen_copy(actor).to(dev), dtype)
        self.actor = sharding.shard(actor.to(dev), dtype)
        self.critic = sharding.shard(critic.to(dev), dtype) if critic is not None else None
        self.actor_opt, self.critic_opt = self._optimizers(self.actor, self.critic)
        self._sampler_fresh = False

    def generation_model(self):
        """The model that samples: the actor itself, or under FSDP2 the plain copy with the
        actor's current weights (gathered here when the actor changed; every process calls it)."""
        if self._sampler is None:
            return self.acc.unwrap_model(self.actor)
        if not self._sampler_fresh:
            sharding.gather_into(self._sampler, self.actor)
            self._sampler_fresh = True
        return self._sampler

    def _scorers(self, success, orm, prm) -> dict[str, Callable | None]:
        r, dtype = self.reward, _dtype(self.precision)
        if success is None:
            if self.task.name == "prompts":       # bare prompts: nothing to grade them with
                raise ValueError("success: prompts without a task have no grader; give success= "
                                 "(a reward callable) or a task (prmrl.Task)")
            success = SuccessReward(grade_batch=self.task.grade_batch)
        orm = orm if orm is not None else r.orm
        if prm is None and r.prm is not None and r.prm_url is not None:
            raise ValueError(f"reward.prm_url: {r.prm_url!r} and reward.prm={r.prm!r} both set; give "
                             f"one: a local PRM or a PRM server")
        prm = prm if prm is not None else r.prm
        if isinstance(orm, (str, os.PathLike)):
            orm = ORMReward(str(orm), dtype=dtype, device=self.acc.device)
        # the text a PRM reads: the run's step delimiter, and the embedded task's question template
        delim = self.splitter if isinstance(self.splitter, str) else self.task.delimiter
        template = QUESTION_TEMPLATE if self.task.name == "arith" else None
        if isinstance(prm, (str, os.PathLike)):
            prm = PRMReward(str(prm), fmt=r.prm_format, prompt_template=template, delimiter=delim,
                            dtype=dtype, trust_remote_code=r.trust_remote_code, device=self.acc.device)
        elif prm is None and r.prm_url is not None:
            from prmrl.rewards.http_prm import HTTPPRMReward

            prm = HTTPPRMReward(r.prm_url, protocol=r.prm_protocol, timeout=r.prm_timeout, fmt=r.prm_format,
                                prompt_template=template, delimiter=delim)
        if r.shaping != "none" and prm is None:
            raise ValueError(f"reward.shaping: '{r.shaping}' needs a PRM (prm=, reward.prm or reward.prm_url)")
        return {"success": success, "orm": orm, "prm": prm}

    def _compute_dtype(self) -> torch.dtype | None:
        """The dtype autocast computes in (None: no autocast)."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.acc.mixed_precision)

    def _autocast(self):
        """The one numeric path of every forward (actor, reference, critic): autocast to the
        mixed-precision dtype, or nothing."""
        dtype = self._compute_dtype()
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.acc.device.type, dtype=dtype)

    def frozen_models(self) -> list:
        """The frozen models this trainer holds: the reference, and the ORM / PRM it loaded."""
        out = [self.ref]
        for name in ("orm", "prm"):
            model = getattr(getattr(self.scorers.get(name), "scorer", None), "model", None)
            if model is not None:
                out.append(model)
        return out

    def _place_frozen(self, device) -> None:
        """With ``offload_frozen``: the frozen models to ``device`` (the accelerator for scoring
        and the reference pass, the host during the update)."""
        if self.offload_frozen:
            for m in self.frozen_models():
                m.to(device)

    def _micro(self) -> int:
        return micro_batch(self.ppo)

    def _share_prompts(self) -> bool:
        """Forward passes compute each distinct prompt once (``forward.response_logits``): with
        minibatches of whole prompts (``ppo.minibatch_by``), and not under gradient checkpointing."""
        return minibatch_unit(self.ppo) == "prompt" and not self.gradient_checkpointing

    # ---- phase 1: generate ----------------------------------------------------------------

    def generate(self, questions: list[str], golds: list[str]) -> RolloutBatch:
        p = self.ppo
        n = p.samples_per_prompt
        policy = self.generation_model().eval()
        prompts = [self.task.prompt(q) for q in questions]
        with self._autocast():
            gen = generate(policy, self.tok, prompts, n=n, max_new_tokens=p.max_new_tokens,
                           temperature=p.temperature, top_p=p.top_p, logprobs=True)
        questions = [q for q in questions for _ in range(n)]       # prompt-major, as generated
        golds = [g for g in golds for _ in range(n)]
        steps = steps_for_batch(self.tok, gen.response_ids.tolist(), self.splitter)
        S = max(1, max(len(s.texts) for s in steps))
        step_end = torch.full((len(steps), S), -1, dtype=torch.long)
        step_mask = torch.zeros((len(steps), S), dtype=torch.bool)
        for b, s in enumerate(steps):
            step_end[b, : len(s.end_tokens)] = torch.tensor(s.end_tokens, dtype=torch.long)
            step_mask[b, : len(s.end_tokens)] = True
        dev = self.acc.device
        return RolloutBatch(
            input_ids=gen.input_ids.to(dev), attention_mask=gen.attention_mask.to(dev),
            response_mask=gen.response_mask.to(dev), truncated=gen.truncated,
            questions=questions, golds=golds, texts=gen.texts,
            step_texts=[s.texts for s in steps], step_end_index=step_end.to(dev),
            step_mask=step_mask.to(dev), old_logprobs=gen.logprobs.to(dev),
            extra={"prompts": [pr for pr in prompts for _ in range(n)]})

    # ---- phase 2: score -------------------------------------------------------------------

    def score(self, b: RolloutBatch) -> None:
        prompts = b.extra.get("prompts") or [self.task.prompt(q) for q in b.questions]
        cols = {"question": b.questions, "gold": b.golds}
        success = _checked_scores(self.scorers["success"](prompts, b.texts, **cols), len(b), "success",
                                 self.iteration_done)
        b.success_scores = _nan_tensor(success, self.acc.device)
        self.unscorable["success"] += sum(s is None for s in success)
        if self.scorers["orm"] is not None:
            orm = _checked_scores(self.scorers["orm"](prompts, b.texts, **cols), len(b), "ORM", self.iteration_done)
            b.orm_scores = _nan_tensor(orm, self.acc.device)
            self.unscorable["orm"] += sum(s is None for s in orm)
        if self.scorers["prm"] is not None:
            prm = self.scorers["prm"](prompts, b.step_texts, **cols)
            _check_prm_rows(prm, b.step_texts)
            _checked_scores([x for r in prm for x in r], sum(len(r) for r in prm), "PRM", self.iteration_done)
            S = b.step_mask.shape[1]
            rows = [[math.nan if x is None else float(x) for x in r] + [math.nan] * (S - len(r)) for r in prm]
            b.prm_scores = torch.tensor(rows, dtype=torch.float32, device=self.acc.device)
            self.unscorable["prm_steps"] += sum(x is None for r in prm for x in r)

    # ---- phase 3: shape (rewards per answer, per step, per token with KL) ------------------

    @torch.no_grad()
    def shape(self, b: RolloutBatch) -> None:
        r, p = self.reward, self.ppo
        T = b.n_response
        actor = self.acc.unwrap_model(self.actor)
        critic = self.acc.unwrap_model(self.critic) if self.critic is not None else None
        # In chunks of a minibatch (a whole batch of (B, T, V) logits does not fit for real
        # models), rows of similar length together and trimmed of shared padding.
        # The sampler's log-probs are the old policy's, computed as the update computes them,
        # unless the update runs under autocast (mixed precision): then the actor recomputes them.
        recompute = b.old_logprobs is None or self.acc.mixed_precision != "no"
        if recompute:
            b.old_logprobs = b.response_mask.new_zeros(len(b), T, dtype=torch.float32)
        b.ref_logprobs, b.old_values = (b.response_mask.new_zeros(len(b), T, dtype=torch.float32)
                                        for _ in range(2))
        # With minibatches of whole prompts, chunks of whole groups too: each prompt is then
        # computed once per chunk (share_prompts). (Answer-shuffled runs keep the plain passes.)
        share = self._share_prompts()
        for idx in b.chunks(self._micro(), p.samples_per_prompt if share else 1):
            ids, am, Tc = b.rows(idx)
            with torch.no_grad(), self._autocast():
                if recompute:
                    b.old_logprobs[idx, :Tc] = token_logprobs(actor, ids, am, Tc, p.temperature, entropy=False,
                                                              share_prompts=share)[0].float()
                b.ref_logprobs[idx, :Tc] = token_logprobs(self.ref, ids, am, Tc, p.temperature, entropy=False,
                                                          share_prompts=share)[0].float()
                if critic is not None:
                    b.old_values[idx, :Tc] = response_scalars(critic, ids, am, Tc, share)
        b.answer_rewards = assemble.answer_rewards(
            b.success_scores, b.orm_scores, success_weight=r.success_weight,
            orm_alpha=r.orm_alpha, unscorable_reward=r.unscorable_reward)
        if b.prm_scores is not None:
            b.step_rewards, scored = assemble.step_rewards(
                b.prm_scores, b.step_mask, method=r.shaping, eta=r.eta, alpha=r.prm_alpha)
        else:
            b.step_rewards, scored = torch.zeros_like(b.step_end_index, dtype=torch.float32), b.step_mask
        b.kl = core.kl_penalty(b.old_logprobs, b.ref_logprobs, p.kl_estimator)
        b.step_scored = scored
        # as a loss term (kl_mode "loss") the KL stays out of the rewards
        b.token_rewards = assemble.token_rewards(
            b.answer_rewards, b.step_rewards, b.step_end_index, scored, b.kl, b.response_mask,
            kl_beta=p.kl_beta if kl_place(p) == "reward" else 0.0)

    # ---- phase 4: advantages --------------------------------------------------------------

    @torch.no_grad()
    def advantages(self, b: RolloutBatch) -> None:
        p = self.ppo
        if p.advantage == "gae":
            adv, b.returns = core.gae(b.token_rewards, b.old_values, b.response_mask, p.gamma, p.lam)
            b.advantages = core.masked_whiten(adv, b.response_mask) if p.whiten_advantages else adv
            return
        # critic-free: the outcome and the placed step rewards go to the estimator separately
        # (process supervision normalises them apart); groups are a prompt's samples
        zeros = torch.zeros_like(b.answer_rewards)
        step_tokens = assemble.token_rewards(zeros, b.step_rewards, b.step_end_index, b.step_scored,
                                             torch.zeros_like(b.kl), b.response_mask, kl_beta=0.0)
        ends = assemble.token_rewards(zeros, b.step_scored.float(), b.step_end_index, b.step_scored,
                                      torch.zeros_like(b.kl), b.response_mask, kl_beta=0.0) > 0
        group = torch.arange(len(b), device=b.kl.device) // p.samples_per_prompt
        kl_tokens = -p.kl_beta * b.kl if kl_place(p) == "reward" else None
        b.advantages = estimators.critic_free_advantages(
            b.answer_rewards, step_tokens, ends, b.response_mask, group, estimator=p.advantage,
            credit=p.credit, kl_tokens=kl_tokens, scale=p.scale_rewards)

    # ---- phase 5: update ------------------------------------------------------------------

    def update(self, b: RolloutBatch, train_actor: bool = True) -> dict[str, float]:
        """``ppo_epochs`` passes over the batch in minibatches of ``minibatch_size`` answers (one
        optimizer step each), each computed in micro-batches of ``micro_batch_size`` whose
        gradients add up to the minibatch's (the losses use the minibatch's normalisers)."""
        p = self.ppo
        self.actor.train()
        if self.critic is not None:
            self.critic.train()
        stats: dict[str, list[float]] = {}
        n = p.samples_per_prompt if minibatch_unit(p) == "prompt" else 1
        for _ in range(p.ppo_epochs):
            order = shuffled_rows(len(b), n).to(self.acc.device)   # the global RNG, checkpointed
            for start in range(0, len(b), p.minibatch_size):
                rows = order[start: start + p.minibatch_size]
                if len(rows) > self._micro():   # micro-batches of similar lengths: less padding
                    rows = by_length(rows, b.response_mask[rows].sum(1), n)
                micros = [b.minibatch(rows[i: i + self._micro()]) for i in range(0, len(rows), self._micro())]
                if train_actor:
                    _add(stats, self._minibatch_step(self.actor, self.actor_opt, micros, self._policy_loss,
                                                     "losses/policy", "grad_norm/actor"))
                if self.critic is not None:
                    _add(stats, self._minibatch_step(self.critic, self.critic_opt, micros, self._value_loss,
                                                     "losses/value", "grad_norm/critic"))
        if train_actor:
            self.actor_sched.step()
        if self.critic is not None:
            self.critic_sched.step()
            self.critic.eval()
        self.actor.eval()
        return {k: sum(v) / len(v) for k, v in stats.items()}

    def _normalisers(self, micros: list[dict]) -> dict[str, tuple[float, float]]:
        """Real tokens and answers of a minibatch: "local" (this process) and "global" (all
        processes: the critic-free losses' normalisers; DDP then averages the gradients)."""
        tokens = sum(float(m["response_mask"].bool().sum()) for m in micros)
        seqs = float(sum(len(m["response_mask"]) for m in micros))
        glob = (tokens, seqs)
        if self.acc.num_processes > 1:
            counts = self.acc.reduce(torch.tensor([tokens, seqs], device=self.acc.device), reduction="sum")
            glob = (float(counts[0]), float(counts[1]))
        return {"local": (tokens, seqs), "global": glob}

    def _minibatch_step(self, model, opt, micros: list[dict], loss_fn, loss_name: str,
                        norm_name: str) -> dict[str, torch.Tensor]:
        """One optimizer step on a minibatch: backward of each micro-batch's share of the
        loss (gradients accumulate; DDP synchronises on the last), then clip and step. Returns
        the minibatch's loss, gradient norm and stats (token means over the minibatch)."""
        opt.zero_grad(set_to_none=True)
        norms = self._normalisers(micros)
        local_tokens = max(1.0, norms["local"][0])
        total, stats = 0.0, {}
        for i, mb in enumerate(micros):
            with self._autocast():
                loss, st = loss_fn(mb, norms)
            _require_finite(loss, loss_name, self.iteration_done)
            sync = i == len(micros) - 1
            with self._gradient_sync(model, sync):
                self.acc.backward(loss)
            total = total + loss.detach()
            w = float(mb["response_mask"].bool().sum()) / local_tokens
            for k, v in st.items():
                stats[k] = stats.get(k, 0.0) + w * v.detach()
        if self._sampler is not None:
            norm = sharding.clip_grad_norm(model, self.ppo.max_grad_norm)
        else:
            norm = self.acc.clip_grad_norm_(model.parameters(), self.ppo.max_grad_norm)
        _require_finite(norm, norm_name, self.iteration_done)   # before the step: weights stay good
        opt.step()
        self._sampler_fresh = False
        norm = norm.detach() if isinstance(norm, torch.Tensor) else torch.tensor(float(norm))
        return {loss_name: total, norm_name: norm, **stats}

    def _gradient_sync(self, model, sync: bool):
        """Gradients synchronised over processes only on a minibatch's last micro-batch."""
        if self._sampler is not None:           # FSDP2
            model.set_requires_gradient_sync(sync)
            return contextlib.nullcontext()
        return contextlib.nullcontext() if sync else self.acc.no_sync(model)

    def _policy_loss(self, mb: dict, norms: dict) -> tuple[torch.Tensor, dict]:
        """PPO's clipped surrogate of one micro-batch, as its share of the minibatch's loss: a
        token mean over the minibatch for GAE (as PPO always had); for the critic-free
        estimators aggregated by ``ppo.loss_agg`` with the minibatch's normalisers over all
        processes, plus the k3 KL term when the KL goes in the loss (``config.kl_place``)."""
        p, mask = self.ppo, mb["response_mask"]
        T = mask.shape[1]
        logprobs, entropy = token_logprobs(self.actor, mb["input_ids"], mb["attention_mask"], T, p.temperature,
                                           share_prompts=self._share_prompts())
        per_token, st = core.policy_loss_tokens(logprobs, mb["old_logprobs"], mb["advantages"], mask, p.clip_eps)
        out = {"losses/clipfrac": st["clipfrac"], "losses/approx_kl": st["approx_kl"],
               "losses/entropy": core.masked_mean(entropy.detach(), mask)}
        if kl_place(p) == "loss":
            kl = estimators.kl_k3(logprobs, mb["ref_logprobs"])
            per_token = per_token + p.kl_beta * kl
            out["losses/kl"] = core.masked_mean(kl.detach(), mask)
        critic_free = p.advantage != "gae"
        n_tokens, n_seqs = norms["global" if critic_free else "local"]
        agg = p.loss_agg if critic_free else "token_mean"
        loss = estimators.aggregate(per_token, mask, agg, n_tokens=n_tokens, n_seqs=n_seqs,
                                    max_len=p.max_new_tokens)
        return (loss * self.acc.num_processes if critic_free else loss), out

    def _value_loss(self, mb: dict, norms: dict) -> tuple[torch.Tensor, dict]:
        """The clipped value loss of one micro-batch, as its share of the minibatch's token mean."""
        mask = mb["response_mask"]
        # V(s_t) for response token t is read at the position before it (the state it was
        # sampled in), the same positions whose logits give the token's log-prob.
        values = response_scalars(self.critic, mb["input_ids"], mb["attention_mask"], mask.shape[1],
                                  self._share_prompts())
        per_token, st = core.value_loss_tokens(values.float(), mb["old_values"], mb["returns"], mask,
                                               self.ppo.value_clip_eps)
        return per_token.sum() / max(norms["local"][0], 1.0), {"losses/value_clipfrac": st["clipfrac"]}

    # ---- one iteration --------------------------------------------------------------------

    def iteration(self, questions: list[str], golds: list[str], it: int) -> tuple[RolloutBatch, dict]:
        """One PPO iteration on these problems; returns the batch and its metrics."""
        t0 = time.time()
        b = self.generate(questions, golds)
        t_gen = time.time() - t0
        self._place_frozen(self.acc.device)
        self.score(b)
        t_score = time.time() - t0 - t_gen
        self.shape(b)
        self._place_frozen("cpu")            # (with offload_frozen) out of the update's memory
        _require_finite(b.token_rewards, "rollout/token_rewards", it)
        self.advantages(b)
        upd = self.update(b, train_actor=it >= self.ppo.critic_warmup_iterations)
        wall = time.time() - t0
        metrics = {**self.rollout_metrics(b), **upd, "charts/iteration_seconds": wall,
                   "charts/generate_seconds": t_gen, "charts/score_seconds": t_score,
                   "charts/completions_per_second": len(b) / wall,
                   "charts/actor_lr": self.actor_opt.param_groups[0]["lr"]}
        return b, _reduce(self.acc, metrics)

    def rollout_metrics(self, b: RolloutBatch) -> dict[str, float]:
        lengths = b.response_mask.sum(1).tolist()
        success = [None if math.isnan(x) else x for x in b.success_scores.tolist()]
        prm = None
        if b.prm_scores is not None:
            prm = [[None if math.isnan(x) else x for x in row[: len(st)]] for row, st in
                   zip(b.prm_scores.tolist(), b.step_texts)]
        diag = hacking_metrics(b.step_texts, lengths, b.truncated.tolist(), success, prm)
        scored = [s for s in success if s is not None]
        m = {f"rollout/{k}": v for k, v in diag.items()}
        m.update({
            "rollout/success": sum(scored) / max(1, len(scored)),
            "rollout/ungradable_rate": 1 - len(scored) / max(1, len(success)),
            "rollout/answer_reward": b.answer_rewards.mean().item(),
            "rollout/step_reward_sum": b.step_rewards.sum(1).mean().item(),
            "rollout/token_reward_sum": b.token_rewards.sum(1).mean().item(),
            "rollout/kl": core.masked_mean(b.kl, b.response_mask).item() * b.response_mask.sum(1).float().mean().item(),
        })
        if b.orm_scores is not None:
            m["rollout/orm_score"] = torch.nanmean(b.orm_scores).item()
        return m

    # ---- the loop -------------------------------------------------------------------------

    def fit(self, resume: bool | str | os.PathLike = False, iterations: int | None = None,
            callbacks: Sequence[Callback | Callable] = ()) -> dict:
        """Train for ``ppo.iterations`` (or ``iterations``) iterations in total.

        resume: True continues from the newest checkpoint in ``output_dir`` (from the first
        iteration when there is none yet), a path from that checkpoint folder. A new run refuses an ``output_dir`` that holds
        a run unless the trainer was made with ``overwrite=True``. SIGTERM or Ctrl-C: the
        iteration in flight finishes, a checkpoint is written, and ``TrainingInterrupted`` is
        raised (a second signal stops at once). A NaN / inf loss, reward or gradient norm raises
        ``NonFiniteError`` naming the iteration and the quantity; no checkpoint is written for
        it. Returns ``{"last": metrics, "history": [...], "policy": path or None}``."""
        total = iterations or self.ppo.iterations
        cbs = self.callbacks + as_callbacks(callbacks)
        history: list[dict] = []
        with _RunFiles(self, resume) as files, _StopOnSignal(self), _Progress(self, total) as bar:
            for cb in cbs:
                cb.on_fit_start(self)
            while self.iteration_done < total:
                it = self.iteration_done
                b, metrics = self.iteration(*self._problems(it), it)     # generate .. update
                self._check_delimiter(b)
                metrics.update({"iteration": it, "charts/num_processes": self.acc.num_processes,
                                **{f"unscorable/{k}": v for k, v in _sum_over_processes(
                                    self.acc, self.unscorable).items()}})
                for cb in cbs:
                    cb.on_iteration_end(self, it, metrics)
                self.iteration_done = it + 1
                files.log(metrics)                                       # log
                history.append(metrics)
                bar.show(metrics)
                done = self.iteration_done == total
                if files.on and (done or self._stop_signal is not None or          # checkpoint
                                 (self.save_every and self.iteration_done % self.save_every == 0)):
                    self.save_checkpoint()
                    for cb in cbs:
                        cb.on_checkpoint(self, self.iteration_done)
                if self._stop_signal is not None and not done:
                    raise TrainingInterrupted(self._stop_signal, self.iteration_done, self.output_dir)
            policy = self.save_policy(self.output_dir / "policy") if files.on else None
        last = history[-1] if history else {}
        for cb in cbs:
            cb.on_fit_end(self, last)
        return {"last": last, "history": history, "policy": policy}

    def _problems(self, it: int) -> tuple[list[str], list[str]]:
        idx = prompt_indices(len(self.task.train_questions), self.seed, it, self.ppo.prompts_per_iteration,
                             self.acc.process_index, self.acc.num_processes, self._epochs)
        return [self.task.train_questions[i] for i in idx], [self.task.train_golds[i] for i in idx]

    def _check_delimiter(self, b: RolloutBatch) -> None:
        """Warn once when the step delimiter occurs in none of the first rollouts' responses:
        every answer is then one step, and Delta / Clip-Delta give 0 (a wrong delimiter)."""
        if self._delimiter_checked or not isinstance(self.splitter, str):
            return
        self._delimiter_checked = True
        if not any(self.splitter in t.strip() for t in b.texts):
            import logging

            logging.getLogger("prmrl").warning(
                "step delimiter %r occurs in none of the %d responses of the first iteration: every "
                "answer is one step (check task.step_delimiter)", self.splitter, len(b.texts))

    # ---- state ----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything a resumed run needs to continue exactly (see ``prmrl.rl.checkpoint``)."""
        critic = self.critic is not None
        model_state, opt_state = self._model_state, self._optimizer_state
        return {"iteration": self.iteration_done, "actor": model_state(self.actor),
                "critic": model_state(self.critic) if critic else None,
                "actor_opt": opt_state(self.actor, self.actor_opt),
                "critic_opt": opt_state(self.critic, self.critic_opt) if critic else None,
                "actor_sched": self.actor_sched.state_dict(),
                "critic_sched": self.critic_sched.state_dict() if critic else None, "rng": rng_state(),
                "data_order": {"seed": self.seed, "processes": self.acc.num_processes}, "unscorable": dict(self.unscorable),
                "delimiter_checked": self._delimiter_checked, "seed": self.seed,
                "process_index": self.acc.process_index}

    def load_state(self, path: str | os.PathLike) -> None:
        st = load_checkpoint(path, self.acc.process_index)
        if st["seed"] != self.seed:
            raise ValueError(f"{path}: checkpoint of seed {st['seed']}, trainer has seed {self.seed}")
        if (st["actor"] == "sharded") != (self._sampler is not None):
            raise ValueError(f"{path}: a checkpoint of a {'FSDP2' if st['actor'] == 'sharded' else 'DDP'} "
                             f"run; this trainer runs {self.parallel}")
        self._load_model_state(self.actor, st["actor"])
        if (st["critic"] is None) != (self.critic is None):
            raise ValueError(f"{path}: checkpoint {'without' if st['critic'] is None else 'with'} a critic; "
                             f"this trainer (ppo.advantage={self.ppo.advantage!r}) "
                             f"{'has' if self.critic is not None else 'has none'}")
        if self.critic is not None:
            self._load_model_state(self.critic, st["critic"])
            self._load_optimizer_state(self.critic, self.critic_opt, st["critic_opt"])
            self.critic_sched.load_state_dict(st["critic_sched"])
        self._load_optimizer_state(self.actor, self.actor_opt, st["actor_opt"])
        if self._sampler is not None:
            sharding.load_sharded(Path(path) / SHARDED_DIR, self._sharded_parts())
        self._sampler_fresh = False
        self.actor_sched.load_state_dict(st["actor_sched"])
        self.unscorable = dict(st["unscorable"])
        self._delimiter_checked = bool(st["delimiter_checked"])
        self.iteration_done = int(st["iteration"])
        set_rng_state(st["rng"])

    # Models and optimizers in a checkpoint: whole in state.pt, or under FSDP2 sharded beside
    # it (``sharding.save_sharded``; state.pt then says "sharded" in their place).
    def _model_state(self, model) -> dict | str:
        return "sharded" if self._sampler is not None else self.acc.unwrap_model(model).state_dict()

    def _optimizer_state(self, model, opt) -> dict | str:
        return "sharded" if self._sampler is not None else opt.state_dict()

    def _load_model_state(self, model, state) -> None:
        if state != "sharded":
            self.acc.unwrap_model(model).load_state_dict(state)

    def _load_optimizer_state(self, model, opt, state) -> None:
        if state != "sharded":
            opt.load_state_dict(state)

    def _sharded_parts(self) -> dict[str, tuple]:
        parts = {"actor": (self.actor,), "actor_opt": (self.actor, self.actor_opt)}
        if self.critic is not None:
            parts.update(critic=(self.critic,), critic_opt=(self.critic, self.critic_opt))
        return parts

    def save_checkpoint(self) -> Path:
        write = None
        if self._sampler is not None:
            def write(folder):
                sharding.save_sharded(folder, self._sharded_parts())
        return save_checkpoint(self.output_dir, self.state_dict(), self.acc, write_sharded=write)

    def _resume_source(self, resume) -> Path | None:
        """The checkpoint to continue from: the newest one (``resume=True``; None when the run
        saved none yet, so it starts from its first iteration: a job that always passes resume
        works on its first start and after a kill before its first checkpoint), or a path."""
        if resume is True:
            ckpt = latest_checkpoint(self.output_dir)
            if ckpt is None:
                import logging

                logging.getLogger("prmrl").warning(
                    "%s: no checkpoint yet; starting from the first iteration",
                    self.output_dir / CHECKPOINT_DIR)
            return ckpt
        if not (Path(resume) / "state.pt").exists():
            raise FileNotFoundError(f"{resume}: not a checkpoint folder (no state.pt)")
        return Path(resume)

    def save_policy(self, path: str | os.PathLike) -> str | None:
        from prmrl.models.factory import save_model

        self.acc.wait_for_everyone()
        if self._sampler is not None:          # FSDP2: the whole weights, into one HF folder
            state = sharding.full_model_state(self.actor)
            if self.acc.is_main_process:
                plain = copy.deepcopy(self._sampler).to("cpu", torch.float32)
                plain.load_state_dict(state)
                save_model(plain, self.tok, path)
        elif self.acc.is_main_process:
            save_model(self.acc.unwrap_model(self.actor), self.tok, path)
        self.acc.wait_for_everyone()
        return str(path)

    def _config_dict(self) -> dict:
        return {"ppo": asdict(self.ppo), "reward": {**asdict(self.reward), "orm": _name(self.scorers["orm"]),
                                                   "prm": _name(self.scorers["prm"])},
                "policy": self.policy_path or type(self.acc.unwrap_model(self.actor)).__name__,
                "task": self.task.name, "seed": self.seed, "save_every": self.save_every,
                "precision": self.precision,
                "splitter": self.splitter if isinstance(self.splitter, str) else _name(self.splitter)}


# ---- helpers ------------------------------------------------------------------------------------

def set_seed_all(seed: int) -> None:
    """Seed python, numpy (when installed) and torch (every device)."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass


def prompt_indices(n: int, seed: int, it: int, per_iteration: int, rank: int, world: int,
                   cache: dict[int, list[int]] | None = None) -> list[int]:
    """The training problems of process ``rank`` (of ``world``) at iteration ``it``: one stream
    of all processes' prompts, each pass over the data in its own seeded order, dealt out in
    turn (prompt k of the stream goes to process k mod world). So the processes draw disjoint
    prompts within a pass, every pass is reshuffled, and the order is a function of the
    iteration alone (a resumed run draws what the uninterrupted one would)."""
    if n == 0:
        raise ValueError("task: no training problems")
    cache = {} if cache is None else cache
    out = []
    for j in range(per_iteration):
        k = (it * per_iteration + j) * world + rank
        epoch, pos = divmod(k, n)
        if epoch not in cache:
            order = list(range(n))
            random.Random(seed * 1000 + epoch).shuffle(order)
            cache.clear()                     # one pass at a time is all an iteration needs
            cache[epoch] = order
        out.append(cache[epoch][pos])
    return out


def _schedule(opt, p: PPOConfig):
    """The learning-rate schedule ``ppo.lr_schedule``, stepped once per iteration."""
    factor = core.LR_SCHEDULES[p.lr_schedule]
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda i: factor(i, p.iterations))


def _check_sections(ppo: PPOConfig, reward: RewardConfig) -> None:
    """The same range and name checks as a config file gets (one line naming the key)."""
    from prmrl.config import check_ppo, validate_section

    validate_section("ppo", ppo)
    validate_section("reward", reward)
    check_ppo(ppo)


def _check_run_args(seed, save_every, precision, report_to) -> None:
    from prmrl.config import PRECISIONS, RANGES, check_choice, check_range

    check_range("seed", seed, RANGES["run.seed"])
    check_range("save_every", save_every, RANGES["run.save_every"])
    check_choice("precision", precision, PRECISIONS)
    check_sinks(list(report_to))


def _as_task(task: Task | None, prompts, golds) -> Task:
    if task is not None:
        if prompts is not None:
            raise ValueError("give a task or prompts, not both")
        return task
    if prompts is None:
        raise ValueError("give a task (prmrl.Task) or prompts (and golds)")
    prompts = list(prompts)
    golds = list(golds) if golds is not None else [""] * len(prompts)
    if len(golds) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(golds)} golds")

    def no_grader(rs, gs):
        raise ValueError("prompts without a task have no grader: give success=")

    return Task(name="prompts", train_questions=prompts, train_golds=golds, test_questions=[],
                test_golds=[], prompt=lambda q: q, grade_batch=no_grader, delimiter="\n")


def _name(obj) -> str | None:
    if obj is None or isinstance(obj, str):
        return obj
    for attr in ("path",):
        if hasattr(obj, attr):
            return str(getattr(obj, attr))
    return getattr(obj, "__qualname__", None) or type(obj).__qualname__


class _RunFiles:
    """The run folder of one ``fit``: locked while it writes, refused when it holds another
    run (unless resumed or overwritten), the checkpoint loaded on resume, the resolved config
    and versions written, metrics appended to ``metrics.jsonl`` and the ``report_to`` sinks.
    Without an ``output_dir`` it does nothing (``on`` is False)."""

    def __init__(self, trainer: "PPOTrainer", resume):
        self.tr, self.resume, self.on = trainer, resume, trainer.output_dir is not None
        self.lock = self.metrics = None
        self.sinks: list = []

    def __enter__(self) -> "_RunFiles":
        from prmrl.runs import (MetricsLog, RunFolderError, RunLock, claim_run_dir, resume_changes,
                                start_run, truncate_metrics)

        tr, run = self.tr, self.tr.output_dir
        if not self.on:
            if self.resume:
                raise ValueError("resume: needs an output_dir holding checkpoints")
            return self
        main = tr.acc.is_main_process
        try:
            if main:
                self.lock = RunLock(run).acquire()
            resuming = bool(self.resume)
            ckpt = tr._resume_source(self.resume) if resuming else None
            changes = resume_changes(run, tr.config or tr._config_dict()) if resuming else []
            if changes:                    # the optimizer state would silently undo some of them
                raise RunFolderError(f"{run}: resume with other settings than the run's "
                                     f"config.yaml ({'; '.join(changes)}); resume with the run's "
                                     f"settings or start a new run")
            if main:
                claim_run_dir(run, resume=resuming, overwrite=tr.overwrite)
            tr.acc.wait_for_everyone()
            if ckpt is not None:
                tr.load_state(ckpt)
            if main:
                start_run(run, tr.config or tr._config_dict(), resume=resuming)
                if resuming:               # the rows of iterations that will be redone go
                    truncate_metrics(run / "metrics.jsonl", tr.iteration_done)
                self.metrics = MetricsLog(run / "metrics.jsonl")
                self.sinks = make_sinks(tr.report_to, run, tr.iteration_done)
        except BaseException:
            self.__exit__()
            raise
        return self

    def log(self, metrics: dict) -> None:
        if self.metrics is not None:
            self.metrics.write(metrics)
        for s in self.sinks:
            s.log(metrics, metrics["iteration"])

    def __exit__(self, *exc) -> None:
        if self.metrics is not None:
            self.metrics.close()
        for s in self.sinks:
            s.close()
        if self.lock is not None:
            self.lock.release()


class _Progress:
    """A tqdm bar on the main process when ``progress`` is on."""

    def __init__(self, trainer: "PPOTrainer", total: int):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=trainer.iteration_done, desc="ppo", dynamic_ncols=True,
                        disable=not (trainer.acc.is_main_process and trainer.progress))

    def show(self, metrics: dict) -> None:
        self.bar.update(1)
        self.bar.set_postfix(reward=f"{metrics['rollout/token_reward_sum']:.3f}",
                             success=f"{metrics['rollout/success']:.3f}")

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()


class _StopOnSignal:
    """SIGTERM / SIGINT set ``trainer._stop_signal`` (the loop checkpoints after the iteration
    in flight and stops); a second one raises KeyboardInterrupt at once. Only in the main thread
    (signal handlers cannot be set elsewhere); previous handlers are restored on exit."""

    def __init__(self, trainer: PPOTrainer):
        self.trainer, self.old = trainer, {}

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.trainer._stop_signal is not None:
            raise KeyboardInterrupt
        self.trainer._stop_signal = signum

    def __exit__(self, *exc):
        for sig, handler in self.old.items():
            signal.signal(sig, handler)


def _require_finite(x, name: str, it: int) -> None:
    t = x if isinstance(x, torch.Tensor) else torch.tensor(float(x))
    if not bool(torch.isfinite(t).all()):
        bad = "nan" if bool(torch.isnan(t).any()) else "inf"
        raise NonFiniteError(f"iteration {it}: {name} is {bad}; stopped before the optimizer step "
                             f"(the last checkpoint is intact)")


def _sum_over_processes(acc, counts: dict[str, int]) -> dict[str, int]:
    """Counts summed over the processes (each process counts what it scored)."""
    if acc.num_processes == 1:
        return dict(counts)
    from accelerate.utils import gather_object

    per_process = gather_object([counts])
    return {k: sum(int(c.get(k, 0)) for c in per_process) for k in counts}


def _reduce(acc, metrics: dict[str, float]) -> dict[str, float]:
    """Mean of each metric over the processes that logged it (a no-op with one process): a
    metric can be undefined in one process's batch (e.g. no step the PRM could score)."""
    if acc.num_processes == 1:
        return metrics
    from accelerate.utils import gather_object

    per_process = gather_object([metrics])
    out = {}
    for k in sorted({k for m in per_process for k in m}):
        vals = [float(m[k]) for m in per_process if k in m]
        out[k] = sum(vals) / len(vals)
    return out


def _checked_scores(scores, n: int, what: str, it: int) -> list:
    """A scorer's list: one entry per answer, each a finite number or None (None is how a scorer
    says "could not score"; a NaN or inf is an error, not a silent unscorable)."""
    scores = list(scores)
    if len(scores) != n:
        raise ValueError(f"{what} scorer returned {len(scores)} scores for {n} answers")
    for x in scores:
        if x is not None and not math.isfinite(float(x)):
            raise NonFiniteError(f"iteration {it}: {what} score is {float(x)}; a scorer returns None "
                                 f"for an answer it cannot score (the last checkpoint is intact)")
    return scores


def _check_prm_rows(prm: list[list[float | None]], step_texts: list[list[str]]) -> None:
    """A PRM scorer returns one entry per step, None only for a suffix of steps it could not
    score (past its context): shaping treats the scored steps as the answer's first steps."""
    if len(prm) != len(step_texts):
        raise ValueError(f"PRM scorer returned {len(prm)} rows for {len(step_texts)} answers")
    for i, (row, steps) in enumerate(zip(prm, step_texts)):
        if not isinstance(row, (list, tuple)):
            raise ValueError(f"PRM scorer returned {type(row).__name__} for answer {i}; a PRM "
                             f"returns one list per answer, one score (or None) per step")
        if len(row) != len(steps):
            raise ValueError(f"PRM scorer returned {len(row)} scores for answer {i} with {len(steps)} steps")
        n = sum(x is not None for x in row)
        if any(x is None for x in row[:n]):
            raise ValueError(f"PRM scorer left step(s) of answer {i} unscored before a scored one: {row}")


def _nan_tensor(values: Sequence[float | None], device) -> torch.Tensor:
    return torch.tensor([math.nan if v is None else float(v) for v in values], dtype=torch.float32,
                        device=device)


def _add(stats: dict[str, list[float]], new: dict[str, torch.Tensor]) -> None:
    for k, v in new.items():
        stats.setdefault(k, []).append(float(v.detach()))
