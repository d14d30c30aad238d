"""PPO on token-level rewards: the training loop, read as phases.

    generate -> score -> shape -> advantages -> update -> log

Math lives in ``prmrl.rl.core`` (GAE, losses, KL, placement) and ``prmrl.rewards.assemble``
(weights, shaping); this file moves tensors between models and those functions. Runs under
``accelerate``: each process generates its own rollouts, gradients are averaged.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from prmrl.config import Config
from prmrl.diagnostics import hacking_metrics
from prmrl.models.forward import token_logprobs, token_scalars
from prmrl.rewards import assemble
from prmrl.rl import core
from prmrl.rl.batch import RolloutBatch
from prmrl.models.sampler import generate
from prmrl.steps import steps_for_batch


@dataclass
class Scorers:
    """What judges an answer. success is required; orm and prm are optional."""

    success: Callable[[list[str], list[str], list[str]], list[float | None]]
    orm: Callable[[list[str], list[str]], list[float | None]] | None = None
    prm: Callable[[list[str], list[list[str]]], list[list[float | None]]] | None = None


class PPOTrainer:
    def __init__(self, cfg: Config, policy, critic, tokenizer, scorers: Scorers,
                 prompt_fn: Callable[[str], str], accelerator=None):
        from accelerate import Accelerator

        self.cfg, self.tok, self.scorers, self.prompt_fn = cfg, tokenizer, scorers, prompt_fn
        self.acc = accelerator or Accelerator(cpu=not torch.cuda.is_available())
        # The frozen reference may run in a lower precision; trained weights stay float32.
        self.ref = copy.deepcopy(policy).to(_dtype(cfg.model.dtype)).eval().requires_grad_(False)
        actor_opt = torch.optim.AdamW(policy.parameters(), lr=cfg.ppo.actor_lr, eps=1e-5)
        critic_opt = torch.optim.AdamW(critic.parameters(), lr=cfg.ppo.critic_lr, eps=1e-5)
        self.actor, self.critic, self.actor_opt, self.critic_opt = self.acc.prepare(
            policy, critic, actor_opt, critic_opt)
        self.ref.to(self.acc.device)
        self.unscorable = {"success": 0, "orm": 0, "prm_steps": 0}

    # ---- phase 1: generate ----------------------------------------------------------------

    def generate(self, questions: list[str], golds: list[str]) -> RolloutBatch:
        p = self.cfg.ppo
        n = p.samples_per_prompt
        policy = self.acc.unwrap_model(self.actor).eval()
        gen = generate(policy, self.tok, [self.prompt_fn(q) for q in questions], n=n,
                       max_new_tokens=p.max_new_tokens, temperature=p.temperature, top_p=p.top_p,
                       logprobs=True)
        questions = [q for q in questions for _ in range(n)]       # prompt-major, as generated
        golds = [g for g in golds for _ in range(n)]
        steps = steps_for_batch(self.tok, gen.response_ids.tolist(), self.cfg.task.step_delimiter)
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
            step_mask=step_mask.to(dev), old_logprobs=gen.logprobs.to(dev))

    # ---- phase 2: score -------------------------------------------------------------------

    def score(self, b: RolloutBatch) -> None:
        success = self.scorers.success(b.questions, b.texts, b.golds)
        b.success_scores = _nan_tensor(success, self.acc.device)
        self.unscorable["success"] += sum(s is None for s in success)
        if self.scorers.orm is not None:
            orm = self.scorers.orm(b.questions, b.texts)
            b.orm_scores = _nan_tensor(orm, self.acc.device)
            self.unscorable["orm"] += sum(s is None for s in orm)
        if self.scorers.prm is not None:
            prm = self.scorers.prm(b.questions, b.step_texts)
            _check_prm_rows(prm, b.step_texts)
            S = b.step_mask.shape[1]
            rows = [[math.nan if x is None else x for x in r] + [math.nan] * (S - len(r)) for r in prm]
            b.prm_scores = torch.tensor(rows, dtype=torch.float32, device=self.acc.device)
            self.unscorable["prm_steps"] += sum(x is None for r in prm for x in r)

    # ---- phase 3: shape (rewards per answer, per step, per token with KL) ------------------

    @torch.no_grad()
    def shape(self, b: RolloutBatch) -> None:
        r, p = self.cfg.reward, self.cfg.ppo
        T = b.n_response
        actor, critic = self.acc.unwrap_model(self.actor), self.acc.unwrap_model(self.critic)
        # In chunks of a minibatch (a whole batch of (B, T, V) logits does not fit for real
        # models), rows of similar length together and trimmed of shared padding.
        # The sampler's log-probs are the old policy's, computed as the update computes them,
        # unless the update runs under autocast (mixed precision): then the actor recomputes them.
        recompute = b.old_logprobs is None or self.acc.mixed_precision != "no"
        if recompute:
            b.old_logprobs = b.response_mask.new_zeros(len(b), T, dtype=torch.float32)
        b.ref_logprobs, b.old_values = (b.response_mask.new_zeros(len(b), T, dtype=torch.float32)
                                        for _ in range(2))
        for idx in b.chunks(p.minibatch_size):
            ids, am, Tc = b.rows(idx)
            if recompute:
                b.old_logprobs[idx, :Tc] = token_logprobs(actor, ids, am, Tc, p.temperature)[0].float()
            b.ref_logprobs[idx, :Tc] = token_logprobs(self.ref, ids, am, Tc, p.temperature)[0].float()
            b.old_values[idx, :Tc] = self._values(critic, ids, am, Tc)
        b.answer_rewards = assemble.answer_rewards(
            b.success_scores, b.orm_scores, success_weight=r.success_weight,
            orm_alpha=r.orm_alpha, unscorable_reward=r.unscorable_reward)
        if b.prm_scores is not None:
            b.step_rewards, scored = assemble.step_rewards(
                b.prm_scores, b.step_mask, method=r.shaping, eta=r.eta, alpha=r.prm_alpha)
        else:
            b.step_rewards, scored = torch.zeros_like(b.step_end_index, dtype=torch.float32), b.step_mask
        b.kl = core.kl_penalty(b.old_logprobs, b.ref_logprobs, p.kl_estimator)
        b.token_rewards = assemble.token_rewards(
            b.answer_rewards, b.step_rewards, b.step_end_index, scored, b.kl, b.response_mask,
            kl_beta=p.kl_beta)

    # ---- phase 4: advantages --------------------------------------------------------------

    @torch.no_grad()
    def advantages(self, b: RolloutBatch) -> None:
        p = self.cfg.ppo
        adv, b.returns = core.gae(b.token_rewards, b.old_values, b.response_mask, p.gamma, p.lam)
        b.advantages = core.masked_whiten(adv, b.response_mask) if p.whiten_advantages else adv

    # ---- phase 5: update ------------------------------------------------------------------

    def update(self, b: RolloutBatch, train_actor: bool = True) -> dict[str, float]:
        p = self.cfg.ppo
        self.actor.train()
        self.critic.train()
        stats: dict[str, list[float]] = {}
        for _ in range(p.ppo_epochs):
            order = torch.randperm(len(b)).to(self.acc.device)   # seeded by set_seed
            for start in range(0, len(b), p.minibatch_size):
                mb = b.minibatch(order[start: start + p.minibatch_size])
                T = mb["response_mask"].shape[1]
                if train_actor:
                    logprobs, entropy = token_logprobs(self.actor, mb["input_ids"], mb["attention_mask"],
                                                       T, p.temperature)
                    pg_loss, pg_stats = core.policy_loss(logprobs, mb["old_logprobs"], mb["advantages"],
                                                         mb["response_mask"], p.clip_eps)
                    self._step(self.actor, self.actor_opt, pg_loss)
                    _add(stats, {"losses/policy": pg_loss, "losses/entropy":
                                 core.masked_mean(entropy.detach(), mb["response_mask"]),
                                 "losses/clipfrac": pg_stats["clipfrac"], "losses/approx_kl": pg_stats["approx_kl"]})
                values = self._values(self.critic, mb["input_ids"], mb["attention_mask"], T)
                v_loss, v_stats = core.value_loss(values, mb["old_values"], mb["returns"],
                                                  mb["response_mask"], p.value_clip_eps)
                self._step(self.critic, self.critic_opt, v_loss)
                _add(stats, {"losses/value": v_loss, "losses/value_clipfrac": v_stats["clipfrac"]})
        self.actor.eval()
        self.critic.eval()
        return {k: sum(v) / len(v) for k, v in stats.items()}

    def _step(self, model, opt, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        self.acc.backward(loss)
        self.acc.clip_grad_norm_(model.parameters(), self.cfg.ppo.max_grad_norm)
        opt.step()

    @staticmethod
    def _values(critic, input_ids, attention_mask, T: int) -> torch.Tensor:
        # V(s_t) for response token t is read at the position before it (the state it was
        # sampled in), the same positions whose logits give the token's log-prob.
        return token_scalars(critic, input_ids, attention_mask)[:, -T - 1: -1]

    # ---- one iteration --------------------------------------------------------------------

    def iteration(self, questions: list[str], golds: list[str], it: int) -> tuple[RolloutBatch, dict]:
        t0 = time.time()
        b = self.generate(questions, golds)
        t_gen = time.time() - t0
        self.score(b)
        t_score = time.time() - t0 - t_gen
        self.shape(b)
        self.advantages(b)
        upd = self.update(b, train_actor=it >= self.cfg.ppo.critic_warmup_iterations)
        wall = time.time() - t0
        metrics = {**self.rollout_metrics(b), **upd, "charts/iteration_seconds": wall,
                   "charts/generate_seconds": t_gen, "charts/score_seconds": t_score,
                   "charts/completions_per_second": len(b) / wall}
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


def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


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


def _check_prm_rows(prm: list[list[float | None]], step_texts: list[list[str]]) -> None:
    """A PRM scorer returns one entry per step, None only for a suffix of steps it could not
    score (past its context): shaping treats the scored steps as the answer's first steps."""
    for i, (row, steps) in enumerate(zip(prm, step_texts)):
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

