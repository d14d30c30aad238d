"""Typed configuration: one dataclass per concern, every default here, validated on load.

A config is YAML (sections as below) plus ``section.field=value`` overrides from the command line.
Unknown keys and invalid values fail at load with a message naming the key and what is allowed;
the resolved config is written into every run folder.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and what is allowed."""


@dataclass
class TaskConfig:
    name: Literal["arith", "gsm8k", "math", "math500"] = "arith"
    """which problems: the embedded arithmetic task, or a real math dataset"""
    step_delimiter: str = "\n"
    """text that ends a step in a response (real math models often use a blank line)"""
    # -- arith only --
    min_ops: int = 2
    max_ops: int = 3
    max_start: int = 9
    max_addend: int = 9
    max_factor: int = 3
    max_value: int = 20
    n_train: int = 20000
    n_test: int = 500
    split_seed: int = 1234
    """seed of the problem generator; fixed so every run sees the same splits"""
    slip_rate: float = 0.15
    """SFT corpus: fraction of steps whose result is off (the error carries to the answer)"""
    restate_rate: float = 0.3
    check_rate: float = 0.15
    confusion_rate: float = 0.1
    """SFT corpus: fraction of arithmetic facts (a, op, b) the corpus usually gets wrong, always
    with the same wrong result (a systematic error, not a slip). Random slips alone leave the
    greedy policy near-perfect (greedy picks the likeliest result, the right one: 0.96 on seed
    0) and PPO with nothing to fix in greedy; with confused facts the greedy policy is wrong on
    about a quarter of the problems, and sampling finds the right result often enough for RL to
    learn it (measured: demo greedy +9.8 / +11.4 points on seeds 0 / 1)"""
    confusion_prob: float = 0.6
    """how often the corpus writes a confused fact with its wrong result (> 0.5: the SFT policy's
    likeliest result for that fact is wrong)"""
    # -- real math only --
    train_path: str | None = None
    """JSONL of training problems (default: the dataset's file under ../shared/data)"""
    test_path: str | None = None
    system_prompt: str | None = None
    """None: the default Qwen2.5-Math system prompt"""
    limit_train: int | None = None
    limit_test: int | None = None


@dataclass
class ModelConfig:
    policy: str | None = None
    """path or HF name of the initial policy; None: the SFT policy built by `prmrl sft`"""
    critic: str | None = None
    """initial critic; None: initialised from the policy with a fresh scalar head"""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """precision of frozen models (reference, ORM, PRM) and of autocast on GPU; trained weights
    (actor, critic) are always kept in float32"""
    hidden: int = 128
    layers: int = 2
    """2 layers learn the arithmetic in 400 SFT steps where 4 layers reach ~20% (measured)"""
    heads: int = 4
    intermediate: int = 384


@dataclass
class SFTConfig:
    steps: int = 900
    """optimizer steps (127-149 s on 2 CPU cores for the tiny model, measured). 900 x 32 rows left
    no greedy error of copying the wrong operation on two seeds, where 600 x 64 left 9-13%"""
    batch_size: int = 32
    lr: float = 5e-3
    warmup_steps: int = 30


@dataclass
class RewardConfig:
    success_weight: float = 1.0
    unscorable_reward: float = 0.0
    """reward given to an answer the grader could not judge (such answers are counted)"""
    orm: str | None = None
    """path of an ORM; None: no ORM term"""
    orm_alpha: float = 1.0
    prm: str | None = None
    """path of a PRM; None: no PRM term"""
    prm_format: Literal["native", "math_shepherd", "qwen_prm"] = "native"
    trust_remote_code: bool = False
    """let a PRM checkpoint run its own modelling code (Qwen2.5-Math-PRM ships one)"""
    prm_alpha: float = 1.0
    shaping: Literal["none", "normed", "clip", "delta", "clip_delta", "min_form", "delta_keep"] = "none"
    """how per-step PRM scores become per-step rewards (method.md, 'Per-step reward variants')"""
    eta: float = 0.3
    """Clip threshold: a step scored below it costs (score - eta). Pick it from where the PRM
    puts right steps (``benchmarks/prm_by_step_kind.py`` prints it): the embedded task's PRM
    scores 17% of right steps and 84% of wrong ones below 0.3, 34% and 93% below 0.5. On the
    previous slips-only corpus (2.8% / 45% below 0.3), Clip at 0.5 cost 1.8 greedy points
    against SR in the ablation and at 0.3 none"""


@dataclass
class PPOConfig:
    iterations: int = 20
    prompts_per_iteration: int = 64
    samples_per_prompt: int = 4
    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    ppo_epochs: int = 1
    """passes over each rollout batch; 1 with minibatches of 64 makes as many updates as 2 x 128
    at half the compute, and held greedy accuracy better on the embedded task (measured)"""
    minibatch_size: int = 64
    actor_lr: float = 1e-4
    critic_lr: float = 1e-3
    gamma: float = 1.0
    lam: float = 1.0
    """GAE lambda; 1 (Monte-Carlo returns, the critic only a baseline) because the one reward
    sits at the last token and a fresh critic would otherwise bias the early tokens' advantages"""
    clip_eps: float = 0.2
    value_clip_eps: float = 0.2
    kl_beta: float = 0.1
    """per-token KL penalty; 0.1 held greedy accuracy best of 0.05, 0.1, 0.2 (two seeds, measured)"""
    kl_estimator: Literal["k1", "k2", "k3", "abs"] = "k1"
    whiten_advantages: bool = True
    max_grad_norm: float = 1.0
    critic_warmup_iterations: int = 0
    """iterations at the start that update only the critic"""


@dataclass
class EvalConfig:
    n_problems: int = 500
    sampling_samples: int = 4
    """samples per problem at temperature 1 for sampling accuracy and pass@k"""
    pass_k: list[int] = field(default_factory=lambda: [1, 4])
    temperature: float = 1.0
    max_new_tokens: int = 128
    every: int = 10
    """evaluate on a held-out subset every N iterations (0: only at the end)"""
    n_problems_during: int = 200


@dataclass
class RMConfig:
    """Reward-model data, training and Best-of-N evaluation (`prmrl label`, `train-rm`, `bon`)."""

    n_problems: int = 2000
    """label: training problems to sample answers for"""
    samples_per_problem: int = 4
    """label: answers sampled per problem from the policy"""
    label_source: Literal["auto", "oracle"] = "auto"
    """PRM step labels: Math-Shepherd-style completions ("auto") or the arith step checker"""
    completions_per_step: int = 4
    """auto labels: completions sampled from each step prefix (M)"""
    soft_labels: bool = False
    """auto labels: fraction of completions reaching the gold (soft) or any reaching it (hard).
    Hard by default: on the arith task its PRM ranks steps better against the oracle (step AUC
    0.81 vs 0.65, same answers and SFT policy)"""
    completer: str | None = None
    """policy that completes prefixes for auto labels; None: model.policy, else the SFT policy"""
    temperature: float = 1.0
    """label: sampling temperature of the labelled answers"""
    completer_temperature: float = 0.3
    """auto labels: sampling temperature of the completions. Lower is closer to the oracle on
    the arith task (non-final steps, 300 problems x 4 answers, M = 4: agreement 0.885 at T = 1,
    0.923 at 0.7, 0.935 at 0.5, 0.943 at 0.3, 0.933 at 0.1): a sloppy completer fails from
    right prefixes and stumbles onto the gold from wrong ones"""
    max_new_tokens: int = 128
    init: str | None = None
    """backbone the ORM/PRM start from; None: model.policy, else the SFT policy"""
    epochs: float = 2.0
    batch_size: int = 16
    """answers per ORM/PRM training step (batches group answers of similar length)"""
    lr: float = 1e-3
    """ORM/PRM AdamW learning rate. Arith PRM without likelihood features, same labels, step AUC
    on 200 test problems x 16 answers (against the step checker before malformed lines counted
    as wrong): batch 64 at 2e-3 0.82; batch 16 at 2e-3 0.83, at 1e-3 0.85, at 5e-4 0.84"""
    extra_layers: int = 2
    """new decoder layers stacked on the backbone of the ORM/PRM (identity at start)"""
    freeze_backbone: bool = True
    """train only the extra layers, the final norm and the head (needs extra_layers > 0)"""
    likelihood_features: bool = True
    """ORM/PRM also read the backbone LM's own token log-probs (the least likely response token
    so far, and the current one) through a learned mix (``prmrl.models.likelihood``)"""
    dense_labels: bool = False
    """PRM: also label every token of a step whose label only carries its prefix's state
    (``prmrl.rm.train.dense_positions``), not just the step's last token"""
    bon_n: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    bon_temperature: float = 1.0
    """Best-of-N: sampling temperature of the N answers per problem"""
    bon_problems: int = 500


# Ablation arms: name -> reward settings ("ORM" / "PRM" are filled with the cached reward models).
# The names are written here once; `ablation.arms` is checked against them.
ARMS: dict[str, dict] = {
    "SR": {},
    "SR+ORM": {"orm": "ORM"},
    "SR+PRM": {"prm": "PRM", "shaping": "none"},
    "SR+PRM-Clip": {"prm": "PRM", "shaping": "clip"},
    "SR+PRM-Delta": {"prm": "PRM", "shaping": "delta"},
    "SR+PRM-Clip-Delta": {"prm": "PRM", "shaping": "clip_delta"},
}
OPTIONAL_ARMS: dict[str, dict] = {
    "SR+PRM-Normed": {"prm": "PRM", "shaping": "normed"},
    "SR+PRM-MinForm": {"prm": "PRM", "shaping": "min_form"},
    "SR+PRM-Delta-Keep": {"prm": "PRM", "shaping": "delta_keep"},
}
ALL_ARMS = {**ARMS, **OPTIONAL_ARMS}


@dataclass
class AblationConfig:
    """`prmrl reproduce`: the paper's ablation, every arm from the same SFT policy and RMs."""

    seeds: int = 3
    """seeds per arm (run.seed, run.seed + 1, ...)"""
    iterations: int = 20
    """PPO iterations per arm (6 arms x 3 seeds, SFT policy and reward models cached by `prmrl
    bon`: about 30 minutes on 2 CPU cores; building those from scratch adds about 10)"""
    workers: int = 2
    """arms run in parallel, one torch thread each"""
    arms: list[str] = field(default_factory=lambda: list(ARMS))
    """arms to run (names in ``ARMS``); also available: the names in ``OPTIONAL_ARMS``"""


@dataclass
class RunConfig:
    seed: int = 0
    out_dir: str = "runs/demo"
    """run folder. The CLI puts each command's run in its own folder when this is left at the
    default: runs/demo for `prmrl demo`, runs/<command> for the others (runs/reproduce, ...)"""
    threads: int = 0
    """torch CPU threads (0: leave torch's default)"""
    progress: bool = True
    cache_dir: str = "cache"
    """where SFT policies and reward models are cached for reuse across runs"""
    save_every: int = 5
    """PPO: write a resumable checkpoint (actor, critic, optimizers, RNG states, data position)
    every N iterations, and at the end; 0: only at the end and on SIGTERM / Ctrl-C"""
    resume: bool = False
    """PPO: continue the run in ``out_dir`` from its last checkpoint"""
    overwrite: bool = False
    """PPO: start afresh in an ``out_dir`` that already holds a run (its files are replaced)"""
    report_to: list[str] = field(default_factory=list)
    """extra metric sinks beside metrics.jsonl: "tensorboard", "wandb", "trackio" (installed
    separately)"""


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    rm: RMConfig = field(default_factory=RMConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def validate(self) -> "Config":
        _positive(self, "sft.steps", "ppo.iterations", "ppo.prompts_per_iteration", "ppo.samples_per_prompt",
                  "ppo.max_new_tokens", "ppo.ppo_epochs", "ppo.minibatch_size", "sft.batch_size",
                  "eval.sampling_samples", "eval.max_new_tokens", "task.n_test", "rm.temperature", "rm.bon_temperature",
                  "rm.completer_temperature", "rm.completions_per_step", "rm.epochs", "rm.lr")
        for key in ("ppo.gamma", "ppo.lam", "task.slip_rate", "task.restate_rate", "task.check_rate",
                    "task.confusion_rate", "task.confusion_prob"):
            v = _get(self, key)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{key}: {v} is not in [0, 1]")
        if not 0.0 < self.ppo.top_p <= 1.0:
            raise ConfigError(f"ppo.top_p: {self.ppo.top_p} is not in (0, 1]")
        if self.ppo.temperature <= 0:
            raise ConfigError(f"ppo.temperature: must be > 0 (got {self.ppo.temperature})")
        if self.task.min_ops < 1 or self.task.max_ops < self.task.min_ops:
            raise ConfigError("task.min_ops/max_ops: need 1 <= min_ops <= max_ops")
        if any(k < 1 or k > self.eval.sampling_samples for k in self.eval.pass_k):
            raise ConfigError(f"eval.pass_k: each k must be in [1, eval.sampling_samples="
                              f"{self.eval.sampling_samples}] (got {self.eval.pass_k})")
        if self.reward.shaping != "none" and self.reward.prm is None:
            raise ConfigError(f"reward.shaping: '{self.reward.shaping}' needs reward.prm "
                              f"(a PRM path); set reward.prm or leave shaping 'none'")
        unknown = [a for a in self.ablation.arms if a not in ALL_ARMS]
        if unknown or not self.ablation.arms:
            raise ConfigError(f"ablation.arms: {unknown or 'empty'} not allowed; choose from {list(ALL_ARMS)}")
        if self.ablation.seeds < 1 or self.ablation.iterations < 1 or self.ablation.workers < 1:
            raise ConfigError("ablation.seeds, ablation.iterations, ablation.workers: must be >= 1")
        if self.rm.freeze_backbone and self.rm.extra_layers < 1:
            raise ConfigError("rm.freeze_backbone: needs rm.extra_layers >= 1 (nothing would train "
                              "but the head); set rm.freeze_backbone=false to train the whole model")
        if not self.task.step_delimiter:
            raise ConfigError("task.step_delimiter: must not be empty")
        return self


def _get(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _positive(cfg: Config, *keys: str) -> None:
    for key in keys:
        if _get(cfg, key) <= 0:
            raise ConfigError(f"{key}: must be > 0 (got {_get(cfg, key)})")


# ---- loading ---------------------------------------------------------------------------------

def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {list(allowed)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):      # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {tp}")


def _build(cls: type, data: dict, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            raise ConfigError(f"unknown key '{path}'; allowed keys here: {sorted(fields)}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value or {}, path)
        else:
            kwargs[key] = _coerce(value, tp, path)
    return cls(**kwargs)


def from_dict(data: dict) -> Config:
    return _build(Config, data, "").validate()


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected section.key=value, e.g. ppo.iterations=10")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def load_config(path: str | Path | None = None, overrides: list[str] = (), base: dict | None = None) -> Config:
    """Defaults <- ``base`` <- YAML file <- overrides, validated."""
    data: dict = _deep_copy(base or {})
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{p}:{where} is not valid YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping of sections at the top level")
        _merge(data, loaded)
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{text}': '{part}' is not a section")
        node[parts[-1]] = value
    try:
        return from_dict(data)
    except ConfigError as e:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{e}") from None


def _merge(into: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def _deep_copy(d: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in d.items()}


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def field_help(cls: type) -> dict[str, str]:
    """Field docstrings (the string literal under a field) for `--help`-style listings."""
    import ast
    import inspect

    src = inspect.getsource(cls)
    body = ast.parse(src).body[0].body
    out = {}
    for a, b in zip(body, body[1:]):
        if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant):
            out[a.target.id] = str(b.value.value)
    return out
