"""prmrl inside verl (verl 0.9.1, extra ``[verl]``; tests: ``make test-verl``).

What verl gets from prmrl:

* ``PRMRLRewardManager``: a verl reward manager (verl's reward-loop API, ``RewardManagerBase``)
  that turns a verl batch of responses into the ``(B, T)`` token rewards of prmrl's trainer:
  the success reward (and ORM term) on each answer's last token, the PRM's step scores (a local
  PRM, ``reward.prm``, or a PRM server, ``reward.prm_url``) shaped by ``reward.shaping`` and
  placed on each step's last token (``prmrl.rewards.assemble``, the trainer's own functions),
  and prmrl's diagnostics in the extra info. Unscorable answers and steps are counted
  (``prmrl_ungradable``, ``prmrl_unscored_steps``, ``unscorable/*``), never a silent 0.
* ``PRMRLSingleTurnAgentLoop`` (agent loop "prmrl_single_turn"): verl's single-turn agent loop
  whose output carries those token rewards into verl's ``rm_scores``. Why it is needed: in verl
  0.9.1 a reward manager's ``run_single`` returns one ``reward_score`` per answer and verl's
  ``AgentLoopOutput.as_dict`` writes it on the answer's last token (the V1 trainer's only road
  from a reward manager to the rewards it trains on); a list there fails inside verl
  ("can't assign a list to a torch.FloatTensor"). The manager returns the answer's token rewards
  as a list and this agent loop's output places them; the manager refuses a config without it.
* advantage estimators ``prmrl_grpo``, ``prmrl_rloo``, ``prmrl_reinforce_pp``: prmrl's
  critic-free estimators (``prmrl.rl.estimators``) with the ``return_to_go`` credit rule (token
  t's return: the outcome plus the step rewards of the steps ending at or after t, plus verl's
  in-reward KL summed forward). verl 0.9.1 hands an estimator only ``token_level_rewards``,
  ``response_mask``, ``index`` (the prompt uids) and the algorithm config, so the rules that
  need the outcome and each step's end apart (``process_supervision``, ``min_form``) cannot be
  computed from what verl passes and are not registered. GRPO divides by the group std unless
  ``algorithm.norm_adv_by_std_in_grpo=false`` (Dr. GRPO). With ``algorithm.adv_estimator=gae``
  (the paper's PPO) verl's own GAE reads the same dense rewards.

Turning it on (``configs/verl/*.yaml`` set all of it)::

    reward.reward_manager.source=importlib
    reward.reward_manager.module.path=pkg://prmrl.integrations.verl
    reward.reward_manager.name=PRMRLRewardManager
    reward.reward_kwargs.prmrl: {task: {...}, reward: {...}}   prmrl's own task and reward
                                    config sections, checked as a prmrl config file is
    actor_rollout_ref.rollout.agent.agent_loop_config_path=configs/verl/agent_loops.yaml
    actor_rollout_ref.rollout.agent.default_agent_loop=prmrl_single_turn
    algorithm.adv_estimator=gae | prmrl_grpo | prmrl_rloo | prmrl_reinforce_pp

Loading the manager (verl imports this module for it, in the trainer process too) registers the
estimators. The data: ``python -m prmrl.integrations.verl prepare-data --task math500 --out DIR``
writes verl's parquet rows (``prompt`` chat messages, ``reward_model.ground_truth``,
``extra_info.question``: the raw question a PRM reads).

This module imports without verl (the main test suite runs the pure part: ``Settings``,
``build_scorers``, ``token_rewards_for_batch``, ``verl_advantages``); the verl classes are
built on first use (``register()``, or the attribute names above).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from prmrl.config import ConfigError, RewardConfig, TaskConfig, from_dict
from prmrl.diagnostics import hacking_metrics, repeated_step_count
from prmrl.prompts import DEFAULT_SYSTEM_PROMPT, QUESTION_TEMPLATE
from prmrl.rewards import assemble
from prmrl.rewards.scorers import ORMReward, PRMReward, SuccessReward
from prmrl.rl.estimators import ESTIMATORS, critic_free_advantages
from prmrl.rl.trainer import _check_prm_rows, _checked_scores, _nan_tensor
from prmrl.steps import Splitter, steps_for_batch

VERL_VERSION = "0.9.1"
"""the verl this integration is written against and tested with (make test-verl)"""
MANAGER_NAME = "prmrl"
"""the reward manager's name in verl's reward-loop registry (reward.reward_manager.source=register
needs this module imported in the process that checks the config; importlib does not)"""
AGENT_LOOP_NAME = "prmrl_single_turn"
"""the agent loop's name (actor_rollout_ref.rollout.agent.default_agent_loop)"""
ESTIMATOR_NAMES = {f"prmrl_{e}": e for e in ESTIMATORS}
"""verl advantage estimator name -> prmrl estimator (credit rule return_to_go)"""
KWARGS_KEY = "prmrl"
"""where the manager reads prmrl's settings: config.reward.reward_kwargs.prmrl"""


# ---- settings and scorers (no verl) ------------------------------------------------------------

@dataclass
class Settings:
    """What the reward manager needs of a prmrl config: the task (grader, step delimiter) and the
    reward section (success weight, PRM, shaping)."""

    task: TaskConfig
    reward: RewardConfig

    @classmethod
    def from_dict(cls, data: dict | None) -> "Settings":
        """From ``{"task": {...}, "reward": {...}}``: prmrl's own config sections, checked as a
        prmrl config file is (unknown keys, ranges, choices, reward.prm vs reward.prm_url)."""
        data = dict(data or {})
        unknown = sorted(set(data) - {"task", "reward"})
        if unknown:
            raise ConfigError(f"reward.reward_kwargs.{KWARGS_KEY}: unknown section(s) {unknown}; "
                              f"allowed: task, reward (prmrl's config sections)")
        cfg = from_dict({"task": data.get("task") or {}, "reward": data.get("reward") or {}})
        return cls(task=cfg.task, reward=cfg.reward)

    @classmethod
    def from_verl_config(cls, config: Any) -> "Settings":
        """From verl's config: ``reward.reward_kwargs.prmrl`` (a DictConfig or a dict)."""
        reward = config.get("reward") if hasattr(config, "get") else None
        kwargs = (reward.get("reward_kwargs") if reward is not None else None) or {}
        section = kwargs.get(KWARGS_KEY) if hasattr(kwargs, "get") else None
        if section is None:
            raise ConfigError(f"reward.reward_kwargs.{KWARGS_KEY}: missing; prmrl's reward manager reads "
                              f"its task and reward sections there (configs/verl/*.yaml)")
        return cls.from_dict(_plain(section))


def _plain(x: Any) -> Any:
    """An OmegaConf node as plain dicts and lists (interpolations resolved)."""
    try:
        from omegaconf import OmegaConf
    except ImportError:   # pragma: no cover -- verl brings omegaconf
        return x
    if OmegaConf.is_config(x):
        return OmegaConf.to_container(x, resolve=True)
    return x


def task_grader(task: TaskConfig) -> Callable[[list[str], list[str]], list]:
    """``grade_batch(responses, golds)`` of the task, as ``prmrl.tasks.make_task`` picks it:
    arith's boxed-integer check, else the math grader (numeric answers for gsm8k)."""
    if task.name == "arith":
        from prmrl.tasks import arith

        return lambda rs, gs: [arith.grade(r, g) for r, g in zip(rs, gs)]
    from prmrl.grading import MathGrader

    return MathGrader(numeric_answers=task.name == "gsm8k").grade_batch


def build_scorers(settings: Settings, *, success: Callable | None = None, prm: Callable | None = None,
                  orm: Callable | None = None, dtype: torch.dtype = torch.float32) -> dict[str, Callable | None]:
    """The success, ORM and PRM callables for ``settings``, built as ``PPOTrainer`` builds them
    (same classes, same PRM text: the task's delimiter, arith's question template). A callable
    given here is used as is."""
    r, t = settings.reward, settings.task
    if r.prm is not None and r.prm_url is not None:
        raise ConfigError(f"reward.prm_url: {r.prm_url!r} and reward.prm={r.prm!r} both set; give one")
    success = success or SuccessReward(grade_batch=task_grader(t))
    template = QUESTION_TEMPLATE if t.name == "arith" else None
    if orm is None and r.orm is not None:
        orm = ORMReward(str(r.orm), dtype=dtype)
    if prm is None and r.prm is not None:
        prm = PRMReward(str(r.prm), fmt=r.prm_format, prompt_template=template, delimiter=t.step_delimiter,
                        dtype=dtype, trust_remote_code=r.trust_remote_code)
    elif prm is None and r.prm_url is not None:
        from prmrl.rewards.http_prm import HTTPPRMReward

        prm = HTTPPRMReward(r.prm_url, protocol=r.prm_protocol, timeout=r.prm_timeout, fmt=r.prm_format,
                            prompt_template=template, delimiter=t.step_delimiter)
    if r.shaping != "none" and prm is None:
        raise ConfigError(f"reward.shaping: '{r.shaping}' needs a PRM (reward.prm or reward.prm_url)")
    return {"success": success, "orm": orm, "prm": prm}


# ---- token rewards (no verl) -------------------------------------------------------------------

EXTRA_KEYS = ("acc", "score", "prmrl_ungradable", "prmrl_answer_reward", "prmrl_step_reward_sum",
              "prmrl_steps", "prmrl_scored_steps", "prmrl_unscored_steps", "prmrl_prm_score_sum",
              "prmrl_repeated_steps", "prmrl_response_tokens", "prmrl_truncated")
"""per-answer extra info (one float each; no NaN, so verl's means stay defined): acc 1 right,
0 wrong or ungradable (prmrl_ungradable says which); score the answer's token reward sum;
prmrl_prm_score_sum / prmrl_scored_steps give the mean PRM step score over any set of answers"""


@dataclass
class TokenRewards:
    """prmrl's rewards for B responses, T response tokens, S most steps in a row."""

    token_rewards: Tensor        # (B, T) float32: what verl trains on (before verl's own KL)
    answer_rewards: Tensor       # (B,) success (+ ORM) reward, on the last token
    step_rewards: Tensor         # (B, S) shaped, weighted PRM step rewards
    step_end_index: Tensor       # (B, S) long: each step's last response token
    step_mask: Tensor            # (B, S) bool: real steps
    step_scored: Tensor          # (B, S) bool: steps the PRM scored (a prefix)
    response_mask: Tensor        # (B, T) long
    success: list                # B: 1.0 / 0.0 / None (ungradable)
    prm: list | None             # B lists of step scores (None: unscored), or None without a PRM
    texts: list[str]             # B decoded responses
    step_texts: list[list[str]]  # B lists of step texts
    truncated: list[bool]        # B: ended without EOS
    unscorable: dict[str, int]   # this batch: ungradable answers, unscored ORM answers and PRM steps

    def step_tokens(self) -> Tensor:
        """(B, T): the step rewards alone on their tokens (the critic-free estimators' input)."""
        zeros = torch.zeros_like(self.answer_rewards)
        kl = torch.zeros_like(self.token_rewards)
        return assemble.token_rewards(zeros, self.step_rewards, self.step_end_index, self.step_scored, kl,
                                      self.response_mask, kl_beta=0.0)

    def is_step_end(self) -> Tensor:
        """(B, T) bool: the last token of a scored step."""
        zeros = torch.zeros_like(self.answer_rewards)
        kl = torch.zeros_like(self.token_rewards)
        return assemble.token_rewards(zeros, self.step_scored.float(), self.step_end_index, self.step_scored,
                                      kl, self.response_mask, kl_beta=0.0) > 0

    def extra_info(self) -> dict[str, list[float]]:
        """One list per key of ``EXTRA_KEYS``, one float per answer."""
        out: dict[str, list[float]] = {k: [] for k in EXTRA_KEYS}
        lengths = self.response_mask.sum(1).tolist()
        for i, steps in enumerate(self.step_texts):
            s = self.success[i]
            row = self.prm[i] if self.prm is not None else []
            scored = [float(x) for x in row if x is not None]
            vals = {
                "acc": float(s) if s is not None else 0.0,
                "score": float(self.token_rewards[i].sum()),
                "prmrl_ungradable": float(s is None),
                "prmrl_answer_reward": float(self.answer_rewards[i]),
                "prmrl_step_reward_sum": float(self.step_rewards[i].sum()),
                "prmrl_steps": float(len(steps)),
                "prmrl_scored_steps": float(len(scored)),
                "prmrl_unscored_steps": float(len(row) - len(scored)),
                "prmrl_prm_score_sum": float(sum(scored)),
                "prmrl_repeated_steps": float(repeated_step_count(steps)),
                "prmrl_response_tokens": float(lengths[i]),
                "prmrl_truncated": float(bool(self.truncated[i])),
            }
            for k in EXTRA_KEYS:
                out[k].append(vals[k])
        return out

    def metrics(self) -> dict[str, float]:
        """Batch diagnostics, named as the trainer's (``rollout/*``, ``unscorable/*`` of this
        batch): steps per answer, repeated steps, tokens per step, PRM mean step score, ..."""
        lengths = self.response_mask.sum(1).tolist()
        diag = hacking_metrics(self.step_texts, lengths, list(self.truncated), list(self.success), self.prm)
        graded = [s for s in self.success if s is not None]
        m = {f"rollout/{k}": v for k, v in diag.items()}
        m.update({
            "rollout/success": sum(graded) / max(1, len(graded)),
            "rollout/ungradable_rate": 1 - len(graded) / max(1, len(self.success)),
            "rollout/answer_reward": self.answer_rewards.mean().item() if len(self.success) else 0.0,
            "rollout/step_reward_sum": self.step_rewards.sum(1).mean().item() if len(self.success) else 0.0,
            "rollout/token_reward_sum": self.token_rewards.sum(1).mean().item() if len(self.success) else 0.0,
        })
        m.update({f"unscorable/{k}": float(v) for k, v in self.unscorable.items()})
        return m


def token_rewards_for_batch(tokenizer: Any, response_ids: Sequence[Sequence[int]], response_mask: Tensor, *,
                            questions: Sequence[str], golds: Sequence[str], reward: RewardConfig,
                            success: Callable, prm: Callable | None = None, orm: Callable | None = None,
                            splitter: str | Splitter = "\n", prompts: Sequence[str] | None = None,
                            truncated: Sequence[bool] | None = None, iteration: int = 0) -> TokenRewards:
    """prmrl's token rewards for B responses, computed as ``PPOTrainer`` does (``generate``'s
    steps, ``score``, ``shape`` without the KL, which verl adds itself).

    response_ids: B rows of policy token ids (at least as long as the row's mask); response_mask:
    ``(B, T)``, 1 on each row's real tokens (a prefix; EOS included). questions: the raw
    questions (the PRM reads them); golds: the reference answers; prompts: the policy's input
    texts (default: the questions). success / orm: ``(prompts, completions, **columns) ->
    list[float | None]``; prm: ``(prompts, steps, **columns) -> list[list[float | None]]``;
    ``build_scorers`` makes them from a config. truncated: answers that ended without EOS (for
    the diagnostics). A NaN or inf score is an error; None is counted."""
    mask = torch.as_tensor(response_mask).long()
    if mask.dim() != 2:
        raise ValueError(f"response_mask: expected (B, T), got shape {tuple(mask.shape)}")
    B, T = mask.shape
    lengths = mask.sum(1).tolist()
    if not (len(response_ids) == len(questions) == len(golds) == B):
        raise ValueError(f"{len(response_ids)} responses, {len(questions)} questions, {len(golds)} golds "
                         f"for a mask of {B} rows")
    ids = []
    for i, (row, n) in enumerate(zip(response_ids, lengths)):
        row = [int(x) for x in row]
        if len(row) < n:
            raise ValueError(f"response {i}: {len(row)} ids but its mask has {n} real tokens")
        ids.append(row[:n])
    steps = steps_for_batch(tokenizer, ids, splitter)
    texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
    S = max(1, max((len(s.texts) for s in steps), default=0))
    step_end = torch.full((B, S), -1, dtype=torch.long)
    step_mask = torch.zeros((B, S), dtype=torch.bool)
    for b, s in enumerate(steps):
        step_end[b, : len(s.end_tokens)] = torch.tensor(s.end_tokens, dtype=torch.long)
        step_mask[b, : len(s.end_tokens)] = True
    step_texts = [s.texts for s in steps]
    prompts = list(prompts) if prompts is not None else list(questions)
    cols = {"question": list(questions), "gold": [str(g) for g in golds]}

    succ = _checked_scores(success(prompts, texts, **cols), B, "success", iteration)
    success_t = _nan_tensor(succ, "cpu")
    unscorable = {"success": sum(s is None for s in succ), "orm": 0, "prm_steps": 0}
    orm_t = None
    if orm is not None:
        orm_scores = _checked_scores(orm(prompts, texts, **cols), B, "ORM", iteration)
        orm_t = _nan_tensor(orm_scores, "cpu")
        unscorable["orm"] = sum(s is None for s in orm_scores)
    prm_rows, prm_t = None, None
    if prm is not None:
        prm_rows = [list(r) for r in prm(prompts, step_texts, **cols)]
        _check_prm_rows(prm_rows, step_texts)
        _checked_scores([x for r in prm_rows for x in r], sum(len(r) for r in prm_rows), "PRM", iteration)
        rows = [[math.nan if x is None else float(x) for x in r] + [math.nan] * (S - len(r)) for r in prm_rows]
        prm_t = torch.tensor(rows, dtype=torch.float32)
        unscorable["prm_steps"] = sum(x is None for r in prm_rows for x in r)
        prm_rows = [[None if x is None else float(x) for x in r] for r in prm_rows]

    answer = assemble.answer_rewards(success_t, orm_t, success_weight=reward.success_weight,
                                     orm_alpha=reward.orm_alpha, unscorable_reward=reward.unscorable_reward)
    if prm_t is not None:
        step_r, scored = assemble.step_rewards(prm_t, step_mask, method=reward.shaping, eta=reward.eta,
                                               alpha=reward.prm_alpha)
    else:
        step_r, scored = torch.zeros_like(step_end, dtype=torch.float32), step_mask
    kl = torch.zeros(B, T, dtype=torch.float32)
    tokens = assemble.token_rewards(answer, step_r, step_end, scored, kl, mask, kl_beta=0.0)
    return TokenRewards(
        token_rewards=tokens, answer_rewards=answer, step_rewards=step_r, step_end_index=step_end,
        step_mask=step_mask, step_scored=scored, response_mask=mask, success=succ, prm=prm_rows,
        texts=texts, step_texts=step_texts,
        truncated=list(truncated) if truncated is not None else [False] * B, unscorable=unscorable)


def verl_layout(prompts: Tensor, responses: Tensor, attention_mask: Tensor) -> tuple[list[list[int]], Tensor]:
    """verl's batch layout -> (each row's prompt ids, the ``(B, T)`` response mask). prompts:
    ``(B, P)`` left-padded; responses: ``(B, T)`` right-padded; attention_mask: ``(B, P + T)``."""
    P = prompts.shape[-1]
    if attention_mask.shape[-1] != P + responses.shape[-1]:
        raise ValueError(f"attention_mask has {attention_mask.shape[-1]} columns; prompts {P} + responses "
                         f"{responses.shape[-1]}")
    prompt_mask = attention_mask[:, :P].bool()
    prompt_ids = [prompts[i][prompt_mask[i]].tolist() for i in range(prompts.shape[0])]
    return prompt_ids, attention_mask[:, P:].long()


def question_of(row: dict, prompt_text: str) -> str:
    """The raw question of one verl row: ``extra_info.question`` (``prepare-data`` writes it),
    else the last user message of ``raw_prompt``, else the prompt text."""
    extra = row.get("extra_info")
    if isinstance(extra, dict) and extra.get("question") is not None:
        return str(extra["question"])
    raw = row.get("raw_prompt")
    if raw is not None:
        users = [m.get("content") for m in list(raw) if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            return users[-1]
    return prompt_text


# ---- estimators (no verl) ----------------------------------------------------------------------

def verl_advantages(token_level_rewards: Tensor, response_mask: Tensor, index: Sequence, *, estimator: str,
                    scale: bool = True) -> tuple[Tensor, Tensor]:
    """A prmrl critic-free estimator (credit ``return_to_go``) on verl's inputs: the ``(B, T)``
    token rewards (outcome, step rewards and verl's in-reward KL together: token t's return is
    their sum from t on, the same return prmrl computes from them apart), the response mask and
    ``index``, the prompt uid of each row (its group). Returns (advantages, returns), both the
    advantages, as verl's GRPO does."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; allowed: {list(ESTIMATORS)}")
    mask = response_mask.bool()
    groups: dict[Any, int] = {}
    group = torch.tensor([groups.setdefault(_key(u), len(groups)) for u in index], dtype=torch.long,
                         device=token_level_rewards.device)
    if len(group) != token_level_rewards.shape[0]:
        raise ValueError(f"index has {len(group)} entries for {token_level_rewards.shape[0]} rows")
    zeros = torch.zeros(token_level_rewards.shape[0], dtype=token_level_rewards.dtype,
                        device=token_level_rewards.device)
    adv = critic_free_advantages(zeros, token_level_rewards, torch.zeros_like(mask), mask, group,
                                 estimator=estimator, credit="return_to_go", scale=scale)
    return adv, adv


def _key(u: Any) -> Any:
    return u.item() if hasattr(u, "item") else u


# ---- the verl classes (built on first use) -----------------------------------------------------

_VERL: dict[str, Any] | None = None
_VERL_LOCK = threading.Lock()
VERL_CLASSES = ("PRMRLRewardManager", "PRMRLSingleTurnAgentLoop", "PRMRLAgentLoopOutput")


def register() -> dict[str, Any]:
    """Build prmrl's verl classes and register them with verl (the reward manager, the agent
    loop, the advantage estimators). Idempotent; needs verl. Returns the classes by name."""
    global _VERL
    with _VERL_LOCK:
        if _VERL is None:
            _VERL = _build_verl_classes()
        return _VERL


def __getattr__(name: str) -> Any:
    if name in VERL_CLASSES:
        return register()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_verl_config(config: Any) -> None:
    """The verl settings prmrl's token rewards need to reach training (module docstring)."""
    problems = []
    trainer = config.get("trainer") or {}
    if not trainer.get("use_v1", True):
        problems.append("trainer.use_v1=true (the legacy trainer keeps one score per answer)")
    agent = config.actor_rollout_ref.rollout.agent
    if agent.get("default_agent_loop") != AGENT_LOOP_NAME:
        problems.append(f"actor_rollout_ref.rollout.agent.default_agent_loop={AGENT_LOOP_NAME} (got "
                        f"{agent.get('default_agent_loop')!r}; its output places token rewards) and "
                        f"agent_loop_config_path=configs/verl/agent_loops.yaml")
    rm = config.reward.get("reward_model") or {}
    if rm.get("enable"):
        problems.append("reward.reward_model.enable=false (verl's reward model bypasses the reward "
                        "manager; serve the PRM with `prmrl serve-prm` and set reward.prm_url)")
    if problems:
        raise ConfigError("prmrl's verl reward manager needs: " + "; ".join(problems))


def _build_verl_classes() -> dict[str, Any]:
    hint = f"prmrl.integrations.verl needs verl=={VERL_VERSION} (pip install 'prmrl[verl]'; make verl-setup)"
    try:
        import verl
        import verl.protocol  # noqa: F401 -- a real verl, not a folder named verl on sys.path
    except ImportError as e:
        raise ImportError(hint) from e
    if getattr(verl, "__version__", None) != VERL_VERSION:
        warnings.warn(f"prmrl.integrations.verl is written against verl {VERL_VERSION}; this is verl "
                      f"{getattr(verl, '__version__', '?')} (its agent loop and reward-loop APIs may differ)",
                      stacklevel=2)
    from verl.experimental.agent_loop.agent_loop import AgentLoopOutput
    from verl.experimental.agent_loop.agent_loop import register as register_agent_loop
    from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop
    from verl.experimental.reward_loop.reward_manager import register as register_manager
    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
    from verl.trainer.ppo.core_algos import register_adv_est

    class PRMRLRewardManager(RewardManagerBase):
        """prmrl's token rewards as a verl reward manager (module docstring).

        verl builds it as ``cls(config=, tokenizer=, compute_score=, reward_router_address=,
        reward_model_tokenizer=)`` and reads ``config.reward.reward_kwargs.prmrl``; ``settings``
        (a ``Settings`` or its dict) and scorer callables (``success=``, ``prm=``, ``orm=``)
        replace them for direct use. ``__call__(data, return_dict)`` scores a whole batch: the
        ``(B, T)`` reward tensor and, with ``return_dict``, ``reward_extra_info`` (``EXTRA_KEYS``,
        one value per answer) and ``prmrl_metrics`` (the batch diagnostics). ``run_single`` is
        what verl's reward loop calls per answer."""

        __qualname__ = "PRMRLRewardManager"

        def __init__(self, config=None, tokenizer=None, compute_score=None, reward_router_address=None,
                     reward_model_tokenizer=None, *, settings: Settings | dict | None = None,
                     success: Callable | None = None, prm: Callable | None = None, orm: Callable | None = None,
                     check_config: bool = True):
            super().__init__(config, tokenizer, compute_score)
            if tokenizer is None:
                raise ValueError("tokenizer: the policy's tokenizer is needed to split and place steps")
            if settings is None:
                settings = Settings.from_verl_config(config)
            elif isinstance(settings, dict):
                settings = Settings.from_dict(settings)
            if config is not None and check_config:
                check_verl_config(config)
            self.settings = settings
            self.scorers = build_scorers(settings, success=success, prm=prm, orm=orm)
            self.unscorable = {"success": 0, "orm": 0, "prm_steps": 0}
            self.calls = 0
            self._count_lock = threading.Lock()

        def score(self, data) -> TokenRewards:
            """prmrl's rewards for a verl DataProto (batch: prompts, responses, attention_mask;
            non-tensor: reward_model.ground_truth, extra_info.question or raw_prompt)."""
            b, nt = data.batch, data.non_tensor_batch
            prompt_ids, mask = verl_layout(b["prompts"], b["responses"], b["attention_mask"])
            B = mask.shape[0]
            prompts = [self.tokenizer.decode(p, skip_special_tokens=False) for p in prompt_ids]
            rows = [{k: v[i] for k, v in nt.items()} for i in range(B)]
            missing = [i for i, r in enumerate(rows)
                       if not isinstance(r.get("reward_model"), dict) or "ground_truth" not in r["reward_model"]]
            if missing:
                raise ValueError(f"rows {missing[:5]}: no reward_model.ground_truth (the gold answer) in the "
                                 f"batch's non-tensor data (prepare-data writes it)")
            golds = [str(r["reward_model"]["ground_truth"]) for r in rows]
            questions = [question_of(r, p) for r, p in zip(rows, prompts)]
            ids = b["responses"].tolist()
            lengths = mask.sum(1).tolist()
            eos = self.tokenizer.eos_token_id
            truncated = [n > 0 and eos is not None and ids[i][n - 1] != eos for i, n in enumerate(lengths)]
            with self._count_lock:
                self.calls += 1
                call = self.calls
            out = token_rewards_for_batch(
                self.tokenizer, ids, mask, questions=questions, golds=golds, reward=self.settings.reward,
                success=self.scorers["success"], prm=self.scorers["prm"], orm=self.scorers["orm"],
                splitter=self.settings.task.step_delimiter, prompts=prompts, truncated=truncated,
                iteration=call)
            with self._count_lock:
                for k, v in out.unscorable.items():
                    self.unscorable[k] += v
            return out

        def __call__(self, data, return_dict: bool = False):
            out = self.score(data)
            if not return_dict:
                return out.token_rewards
            metrics = out.metrics()
            metrics.update({f"unscorable_total/{k}": float(v) for k, v in self.unscorable.items()})
            return {"reward_tensor": out.token_rewards, "reward_extra_info": out.extra_info(),
                    "prmrl_metrics": metrics}

        async def run_single(self, data) -> dict:
            data = data[-1:]      # a multi-output agent loop: its last output, as verl's managers
            loop = asyncio.get_running_loop()
            out = await loop.run_in_executor(None, self.score, data)
            n = int(out.response_mask[0].sum())
            info = {k: v[0] for k, v in out.extra_info().items()}
            return {"reward_score": out.token_rewards[0, :n].tolist(), "reward_extra_info": info}

        @classmethod
        def assemble_rm_scores(cls, data, scores: list) -> Tensor:
            """``rm_scores`` (B, T) from ``run_single``'s scores: a list is an answer's token
            rewards, from its first response token; a number goes on the last token (verl's)."""
            prompt_length = data.batch["prompts"].size(1)
            lengths = data.batch["attention_mask"][:, prompt_length:].sum(dim=1).tolist()
            out = torch.zeros_like(data.batch["responses"], dtype=torch.float32)
            for i, (s, n) in enumerate(zip(scores, lengths)):
                if isinstance(s, (list, tuple, Tensor)):
                    v = torch.as_tensor(s, dtype=torch.float32)
                    if v.numel() != n:
                        raise ValueError(f"row {i}: {v.numel()} token rewards for {n} response tokens")
                    out[i, :n] = v
                elif n > 0:
                    out[i, n - 1] = float(s)
            return out

    class PRMRLAgentLoopOutput(AgentLoopOutput):
        """verl's agent loop output, whose ``rm_scores`` take a list ``reward_score`` (prmrl's
        token rewards of the answer) token by token; a number goes on the last token as in verl."""

        __qualname__ = "PRMRLAgentLoopOutput"

        def as_dict(self) -> dict[str, Any]:
            dense = self.reward_score
            if not isinstance(dense, (list, tuple)):
                return super().as_dict()
            self.reward_score = None
            try:
                out = super().as_dict()
            finally:
                self.reward_score = dense
            mask = out["response_mask"]
            if len(dense) != len(mask):
                raise ValueError(f"{len(dense)} token rewards for a response of {len(mask)} tokens")
            out["rm_scores"] = torch.tensor([float(x) for x in dense], dtype=torch.float32)
            return out

    class PRMRLSingleTurnAgentLoop(SingleTurnAgentLoop):
        """verl's single-turn agent loop with ``PRMRLAgentLoopOutput`` as its output."""

        __qualname__ = "PRMRLSingleTurnAgentLoop"

        async def run(self, sampling_params: dict[str, Any], **kwargs) -> AgentLoopOutput:
            output = await super().run(sampling_params, **kwargs)
            output.__class__ = PRMRLAgentLoopOutput
            return output

    register_manager(MANAGER_NAME)(PRMRLRewardManager)
    register_agent_loop(AGENT_LOOP_NAME)(PRMRLSingleTurnAgentLoop)
    for name, est in ESTIMATOR_NAMES.items():
        register_adv_est(name)(_verl_estimator(name, est))
    return {"PRMRLRewardManager": PRMRLRewardManager, "PRMRLSingleTurnAgentLoop": PRMRLSingleTurnAgentLoop,
            "PRMRLAgentLoopOutput": PRMRLAgentLoopOutput}


def _verl_estimator(name: str, estimator: str) -> Callable:
    def estimate(token_level_rewards: Tensor, response_mask: Tensor, index=None, config=None, **_: Any):
        if index is None:
            raise ValueError(f"{name}: verl passed no index (the prompt uids that group a prompt's answers)")
        scale = bool(getattr(config, "norm_adv_by_std_in_grpo", True)) if config is not None else True
        with torch.no_grad():
            return verl_advantages(token_level_rewards, response_mask, index, estimator=estimator, scale=scale)

    estimate.__name__ = estimate.__qualname__ = f"{name}_advantage"
    estimate.__doc__ = (f"prmrl's {estimator} estimator, credit rule return_to_go "
                        f"(prmrl.integrations.verl.verl_advantages)")
    return estimate


# ---- data --------------------------------------------------------------------------------------

def verl_rows(questions: Sequence[str], golds: Sequence[str], *, data_source: str, split: str,
              system_prompt: str | None = DEFAULT_SYSTEM_PROMPT) -> list[dict]:
    """verl's dataset rows (``data.prompt_key: prompt``, ``reward_model``, ``extra_info``) for
    these problems: the chat messages prmrl's ``render_prompt`` renders (system prompt, question),
    the gold answer as ``reward_model.ground_truth`` and the raw question as
    ``extra_info.question`` (what the PRM reads)."""
    rows = []
    for i, (q, g) in enumerate(zip(questions, golds)):
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else [])
        messages.append({"role": "user", "content": q})
        rows.append({"data_source": data_source, "prompt": messages, "ability": "math",
                     "reward_model": {"style": "rule", "ground_truth": str(g)},
                     "extra_info": {"split": split, "index": i, "question": q}})
    return rows


def task_problems(task: TaskConfig) -> tuple[list[str], list[str], list[str], list[str]]:
    """(train questions, train golds, test questions, test golds) of a prmrl task."""
    if task.name in ("arith", "jsonl"):
        from prmrl.tasks import make_task

        t = make_task(task)
        return t.train_questions, t.train_golds, t.test_questions, t.test_golds
    from prmrl.tasks.math_data import load_problems

    train_name = "math" if task.name == "math500" else task.name
    train, _ = load_problems(train_name, "train", path=task.train_path, limit=task.limit_train)
    test, _ = load_problems(task.name, "test", path=task.test_path, limit=task.limit_test)
    return ([p.question for p in train], [p.answer for p in train],
            [p.question for p in test], [p.answer for p in test])


def write_verl_dataset(task: TaskConfig, out_dir: str | os.PathLike) -> dict[str, str]:
    """``train.parquet`` and ``test.parquet`` of verl rows for ``task`` in ``out_dir`` (needs
    pandas and pyarrow, which verl brings). Returns split -> path."""
    import pandas as pd

    trq, trg, teq, teg = task_problems(task)
    system = task.system_prompt if task.system_prompt is not None else DEFAULT_SYSTEM_PROMPT
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, qs, gs in (("train", trq, trg), ("test", teq, teg)):
        path = out / f"{split}.parquet"
        pd.DataFrame(verl_rows(qs, gs, data_source=f"prmrl/{task.name}", split=split,
                               system_prompt=system)).to_parquet(path)
        paths[split] = str(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m prmrl.integrations.verl",
                                description="prmrl inside verl: write verl's parquet data for a prmrl task")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("prepare-data", help="train.parquet / test.parquet for data.train_files / val_files")
    d.add_argument("--task", default="math500", help="prmrl task.name (math500, math, gsm8k, jsonl)")
    d.add_argument("--out", required=True, help="output folder")
    d.add_argument("--train-path", help="task.train_path (a JSONL)")
    d.add_argument("--test-path", help="task.test_path (a JSONL)")
    d.add_argument("--limit-train", type=int)
    d.add_argument("--limit-test", type=int)
    args = p.parse_args(argv)
    task = TaskConfig(name=args.task, train_path=args.train_path, test_path=args.test_path,
                      limit_train=args.limit_train, limit_test=args.limit_test)
    for split, path in write_verl_dataset(task, args.out).items():
        print(f"{split}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
