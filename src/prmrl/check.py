"""`prmrl check-config`: is a config ready to run? Checked without loading any weights.

    report = check_config("configs/full/qwen2.5-math-1.5b-qwen-prm-clip-delta.yaml")
    for level, message in report.findings: ...        # level: "error" | "warning" | "ok"

What is checked, in order:

- fields: the config loads (unknown keys and invalid values fail with the key named);
- data: the dataset files of real math tasks exist and parse; counts of loaded and skipped rows
  (with ``task.limit_*``). Every row is read as the loader reads it: a malformed row, a line that
  is not UTF-8 or one over ``prmrl.tasks.math_data.MAX_ROW_BYTES`` is an error naming the file and
  line;
- models: for a local folder, config.json, weight files and a loadable tokenizer are there; for a
  hub name, only the local Hugging Face cache is consulted (``local_files_only``): a name not
  found there is a *warning* ("not reachable offline"), since a machine with internet downloads
  it. Where a config is readable: the policy is a causal LM whose vocabulary holds its tokenizer,
  and each reward model fits its format (native: a 1-label token head; math_shepherd: a causal
  LM; qwen_prm: a 2-label token head or the model's own remote-code head); the PRM format is
  built on the PRM's tokenizer and encodes a two-step answer, which finds tag tokens that do not
  tokenise as expected.
- memory: a per-GPU estimate (``prmrl.memory``) from the models' config.json (local folder, Hugging
  Face cache, or ../shared/tokenizers/configs for a hub name), the parallel layout and the batch
  settings; printed as a table, and a warning when its peak is above ``run.gpu_memory_gb``.

Paths are read relative to the working directory, as ``prmrl train`` reads them.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from prmrl.config import Config, ConfigError, load_config

Level = Literal["error", "warning", "ok"]

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
# A two-step answer every format must encode with one score position per step.
PROBE_QUESTION = "What is 1 + 1?"
PROBE_STEPS = ["We add 1 and 1 to get 2.", "The answer is $\\boxed{2}$."]


class Finding(NamedTuple):
    level: Level
    message: str


@dataclass
class CheckReport:
    source: str
    findings: list[Finding] = field(default_factory=list)
    config: Config | None = None          # None when the fields did not load
    memory: object | None = None          # a prmrl.memory.Plan, when the models' shapes were found

    def add(self, level: Level, message: str) -> None:
        self.findings.append(Finding(level, message))

    @property
    def errors(self) -> list[str]:
        return [f.message for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[str]:
        return [f.message for f in self.findings if f.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def lines(self) -> list[str]:
        return [f"{f.level}: {f.message}" for f in self.findings]


def check_config(path: str | None, overrides: list[str] = ()) -> CheckReport:
    """Validate the config at ``path`` (None: the defaults) with ``section.key=value`` overrides;
    see the module doc."""
    report = CheckReport(str(path) if path is not None else "defaults")
    try:
        cfg = load_config(path, list(overrides))
    except ConfigError as e:
        report.add("error", str(e))
        return report
    report.config = cfg
    report.add("ok", f"fields: {report.source} loads (task {cfg.task.name}, shaping {cfg.reward.shaping})")
    _check_data(cfg, report)
    _check_models(cfg, report)
    _check_memory(cfg, report)
    return report


def main_check(argv: list[str] | None = None) -> int:
    """``prmrl check-config CONFIG [section.key=value ...]``: one line per finding and a summary;
    returns 1 if there is an error, else 0."""
    import argparse

    from prmrl.models.factory import quiet_transformers

    parser = argparse.ArgumentParser(prog="prmrl check-config", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="YAML config file")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value")
    args = parser.parse_args(argv)
    quiet_transformers()
    report = check_config(args.config, args.overrides)
    for line in report.lines():
        print(line)
    if report.memory is not None:
        for line in report.memory.lines(gpu_memory_gb(report.config)):
            print(line)
    print(f"{args.config}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    return 0 if report.ok else 1


# ---- data -------------------------------------------------------------------------------------

def _check_data(cfg: Config, report: CheckReport) -> None:
    from prmrl.tasks.math_data import TASKS, TaskSpec, load_problems, resolve_path

    t = cfg.task
    if t.name == "arith":
        report.add("ok", f"data: arith problems are generated (n_train {t.n_train}, n_test {t.n_test})")
        return
    if t.name == "jsonl":       # as prmrl.tasks.make_task / Task.from_jsonl read it
        spec = TaskSpec(name=Path(t.train_path).stem, version="jsonl", files={},
                        question_field=t.question_field,
                        answer_field=t.answer_field, answer_extractor="as_is")
        splits = [("train", spec, t.train_path, t.limit_train)]
        if t.test_path:
            splits.append(("test", spec, t.test_path, t.limit_test))
    else:
        train_name = "math" if t.name == "math500" else t.name     # as prmrl.tasks.make_task
        spec_delim = TASKS[t.name].step_delimiter
        if t.step_delimiter != spec_delim:
            report.add("warning", f"task.step_delimiter: {t.step_delimiter!r} differs from {spec_delim!r}, "
                                  f"the step delimiter of {t.name} answers (one step per paragraph)")
        splits = [("train", TASKS[train_name], t.train_path, t.limit_train),
                  ("test", TASKS[t.name], t.test_path, t.limit_test)]
    for role, spec, path, limit in splits:
        name, key = spec.name, f"task.{role}_path"
        try:
            file = resolve_path(spec, role, path)
        except (OSError, ValueError) as e:
            report.add("error", f"data: {key}: {e}")
            continue
        if file is None:
            where = f"{spec.files[role]} under ../shared/data or $PRMRL_DATA_DIR"
            if spec.hf_name:
                report.add("warning", f"data: no local {where}: {name} [{role}] will be loaded from "
                                      f"hf:{spec.hf_name} (needs the `datasets` package and the network)")
            else:
                report.add("error", f"data: no local {where} and {name} has no hub name: set {key}")
            continue
        try:
            problems, load = load_problems(spec, role, path=file, skip_bad=True, limit=limit)
        except (OSError, ValueError) as e:
            report.add("error", f"data: {file}: {e}")
            continue
        bad = {k: v for k, v in load.skipped.items() if k != "empty answer"}
        if bad:
            first = next(x for x in load.examples if not x.endswith("empty answer"))
            report.add("error", f"data: {file}: {sum(bad.values())} malformed row(s), first {first}; "
                                f"training stops at the first one")
        elif not problems:
            report.add("error", f"data: {file}: no problems")
        else:
            why = ", ".join(f"{k}: {v}" for k, v in sorted(load.skipped.items())) or "none"
            cut = f", limited by task.limit_{role}={limit}" if limit is not None else ""
            report.add("ok", f"data: {role}: {load.loaded} {name} problems from {file} "
                             f"({load.num_skipped} skipped: {why}{cut})")


# ---- models -----------------------------------------------------------------------------------

@dataclass
class _Model:
    """What could be read of a model without its weights."""

    name: str
    config: object                        # a transformers PretrainedConfig
    tokenizer: object | None = None       # None when the role does not need one or it failed

    @property
    def architectures(self) -> list[str]:
        return list(getattr(self.config, "architectures", None) or [])

    def has(self, suffix: str) -> bool:
        return any(a.endswith(suffix) for a in self.architectures)


def _check_models(cfg: Config, report: CheckReport) -> None:
    policy = _check_policy(cfg, report)
    policy_tok = policy.tokenizer if policy is not None else None
    if cfg.model.critic is not None:
        critic = _inspect("model.critic", cfg.model.critic, report, need_tokenizer=False)
        if critic is not None:
            _expect_scalar_head("model.critic", critic, report, trained=False)
            _check_vocab("model.critic", critic, policy_tok, report)
    if cfg.reward.prm is not None:
        _check_prm(cfg, report)
    if cfg.reward.orm is not None:
        orm = _inspect("reward.orm", cfg.reward.orm, report)
        if orm is not None:
            _expect_scalar_head("reward.orm", orm, report, trained=True)
            _check_vocab("reward.orm", orm, orm.tokenizer, report)


def _check_policy(cfg: Config, report: CheckReport) -> _Model | None:
    if cfg.model.policy is None:
        if cfg.task.name == "arith":
            report.add("ok", "model.policy: unset: the SFT policy that `prmrl sft` builds and caches")
        else:
            report.add("error", f"model.policy: unset, and task '{cfg.task.name}' has no SFT corpus: "
                                f"give a policy path or Hugging Face name")
        return None
    m = _inspect("model.policy", cfg.model.policy, report)
    if m is None:
        return None
    if not m.has("ForCausalLM"):
        report.add("error", f"model.policy: '{m.name}' is {m.architectures or 'no known architecture'}, "
                            f"not a causal LM (...ForCausalLM)")
    if m.tokenizer is not None:
        _check_vocab("model.policy", m, m.tokenizer, report)
        if cfg.task.name != "arith" and not getattr(m.tokenizer, "chat_template", None):
            report.add("warning", f"model.policy: the tokenizer of '{m.name}' has no chat template: "
                                  f"prompts use the plain template of prmrl.prompts")
    max_pos = getattr(m.config, "max_position_embeddings", None)
    for key in ("ppo.max_new_tokens", "eval.max_new_tokens"):
        section, name = key.split(".")
        n = getattr(getattr(cfg, section), name)
        if max_pos is not None and n >= max_pos:
            report.add("error", f"{key}: {n} leaves no room for the prompt in the policy's "
                                f"{max_pos} positions (max_position_embeddings)")
    return m


def _check_prm(cfg: Config, report: CheckReport) -> None:
    from prmrl.rm.formats import make_format

    fmt, key = cfg.reward.prm_format, "reward.prm"
    m = _inspect(key, cfg.reward.prm, report)
    if m is None:
        return
    if fmt == "native":
        _expect_scalar_head(key, m, report, trained=True)
    elif fmt == "math_shepherd":
        if not m.has("ForCausalLM"):
            report.add("error", f"{key}: format math_shepherd needs a causal LM (it reads the '+'/'-' "
                                f"logits at each step tag); '{m.name}' is {m.architectures}")
    else:  # qwen_prm
        labels = getattr(m.config, "num_labels", None)
        remote = "AutoModel" in (getattr(m.config, "auto_map", None) or {})
        if m.has("ForTokenClassification"):
            if labels != 2:
                report.add("error", f"{key}: format qwen_prm needs a 2-label token head; '{m.name}' "
                                    f"has num_labels={labels}")
        elif remote:
            report.add("warning", f"{key}: '{m.name}' has a remote-code head {m.architectures}: "
                                  f"load_prm loads it only with trust_remote_code=True")
        else:
            report.add("error", f"{key}: format qwen_prm needs a 2-label token head (...ForTokenClassification) "
                                f"or the model's remote-code head; '{m.name}' is {m.architectures}")
    if m.tokenizer is None:
        return
    tok = m.tokenizer
    if fmt == "qwen_prm" and len(tok.encode("<extra_0>", add_special_tokens=False)) != 1:
        report.add("warning", f"{key}: the tokenizer of '{m.name}' lacks the '<extra_0>' token; the "
                              f"format adds it, and its embedding row is untrained unless the model "
                              f"was trained with it")
    # As prmrl.jobs.ppo.build_scorers builds it; this also adds qwen_prm's token to `tok`.
    kwargs = {"delimiter": cfg.task.step_delimiter} if fmt == "native" else {}
    try:
        enc = make_format(fmt, tok, **kwargs).encode(PROBE_QUESTION, PROBE_STEPS)
    except (ValueError, KeyError, TypeError) as e:
        report.add("error", f"{key}: format {fmt} does not work with the tokenizer of '{m.name}': {e}")
        return
    report.add("ok", f"{key}: format {fmt} encodes a {len(PROBE_STEPS)}-step answer into "
                     f"{len(enc.input_ids)} tokens, scored at positions {enc.positions}")
    _check_vocab(key, m, tok, report)


def _expect_scalar_head(key: str, m: _Model, report: CheckReport, *, trained: bool) -> None:
    """A reward model must carry a trained 1-label token head; a critic may start from a causal
    LM (prmrl.models.factory.load_scalar_model gives it a fresh head)."""
    labels = getattr(m.config, "num_labels", None)
    if m.has("ForTokenClassification"):
        if labels != 1:
            report.add("error", f"{key}: needs a 1-label token head; '{m.name}' has num_labels={labels}")
    elif m.has("ForCausalLM"):
        if trained:
            report.add("error", f"{key}: '{m.name}' is a causal LM, not a trained reward model: it "
                                f"would get a fresh head and score everything 0.5 (train one with "
                                f"`prmrl train-rm`, or pick the format of a public PRM)")
    else:
        report.add("error", f"{key}: '{m.name}' is {m.architectures}: expected ...ForTokenClassification"
                            + ("" if trained else " or ...ForCausalLM"))


def _check_vocab(key: str, m: _Model, tokenizer, report: CheckReport) -> None:
    n_vocab = getattr(m.config, "vocab_size", None)
    if tokenizer is not None and n_vocab is not None and len(tokenizer) > n_vocab:
        report.add("error", f"{key}: the tokenizer has {len(tokenizer)} tokens but '{m.name}' embeds "
                            f"{n_vocab} (vocab_size)")


def _inspect(key: str, name: str, report: CheckReport, need_tokenizer: bool = True) -> _Model | None:
    """Read a model's config (and tokenizer) from a local folder or the local hub cache."""
    from transformers import AutoConfig, AutoTokenizer

    from prmrl.models.factory import ModelPathError, _check_path

    try:
        _check_path(name)       # the same local-vs-hub rule the loaders apply
    except ModelPathError:
        report.add("error", f"{key}: no model at '{name}': expected a folder with config.json "
                            f"(a local path is never looked up on the hub)")
        return None
    folder = Path(name)
    local = (folder / "config.json").exists()
    try:
        config = AutoConfig.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as e:
        if not local:
            report.add("warning", f"{key}: not reachable offline: {name} (not in the local Hugging "
                                  f"Face cache; it is downloaded on first use)")
        else:
            report.add("error", f"{key}: {folder / 'config.json'} does not load: {_first_line(e)}")
        return None
    where = f"local folder {name}" if local else f"{name} (local Hugging Face cache)"
    if local and not any((folder / f).exists() for f in WEIGHT_FILES) \
            and not any(folder.glob("*.safetensors")):
        report.add("error", f"{key}: no weights in {name} (expected one of {', '.join(WEIGHT_FILES)})")
    m = _Model(name, config)
    if need_tokenizer:
        if local and not any((folder / f).exists() for f in TOKENIZER_FILES):
            report.add("error", f"{key}: no tokenizer in {name} (none of {', '.join(TOKENIZER_FILES)}): "
                                f"prmrl loads a model's tokenizer from its folder, so save it there")
            return m
        try:
            m.tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=True)
        except (OSError, ValueError, TypeError) as e:
            if local:
                report.add("error", f"{key}: the tokenizer of {name} does not load: {_first_line(e)}")
            else:
                report.add("warning", f"{key}: not reachable offline: the tokenizer of {name}")
            return m
    tok = f", tokenizer of {len(m.tokenizer)} tokens" if m.tokenizer is not None else ""
    report.add("ok", f"{key}: {where}: {', '.join(m.architectures) or '?'}{tok}")
    return m


# ---- memory -----------------------------------------------------------------------------------

# Keys the planner reads that an older config.py may not have yet, and their defaults.
MEMORY_DEFAULTS = {"run.parallel": "ddp", "run.gpu_memory_gb": 80.0, "run.offload_frozen": False,
                   "run.num_processes": None, "model.gradient_checkpointing": False,
                   "ppo.micro_batch_size": None}
# Prompt tokens planned for when the policy's tokenizer is not at hand to measure the task's
# longest prompt (a batch is padded to its longest prompt). MATH train in Qwen2.5-Math's chat
# template: median 77, 99th percentile 497, longest 1,682 (70 of 7,498 prompts over 512).
PROMPT_TOKENS = 512


def _setting(cfg: Config, dotted: str):
    section, key = dotted.split(".")
    return getattr(getattr(cfg, section), key, MEMORY_DEFAULTS[dotted])


def gpu_memory_gb(cfg: Config | None) -> float:
    return float(_setting(cfg, "run.gpu_memory_gb")) if cfg is not None else MEMORY_DEFAULTS["run.gpu_memory_gb"]


def shared_config_roots() -> list[Path]:
    """Where full-size config.json files of hub models are looked up last (the development
    machine's ../shared/tokenizers/configs/<model name>/config.json)."""
    repo = Path(__file__).resolve().parents[2]
    return [Path.cwd() / ".." / "shared" / "tokenizers" / "configs",
            repo / ".." / "shared" / "tokenizers" / "configs"]


def find_config_json(name: str) -> Path:
    """A model's config.json: in its local folder, the local Hugging Face cache, or for a hub
    name ../shared/tokenizers/configs/<name after the slash>; LookupError says why not."""
    folder = Path(name)
    if (folder / "config.json").is_file():
        return folder / "config.json"
    if folder.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise LookupError(f"no config.json in '{name}'")
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
        if isinstance(cached, str):
            return Path(cached)
    except (ImportError, ValueError):
        pass
    for root in shared_config_roots():
        p = root / name.split("/")[-1] / "config.json"
        if p.is_file():
            return p
    raise LookupError(f"{name} is a hub name whose config.json is neither in the local Hugging Face "
                      f"cache nor under ../shared/tokenizers/configs")


def world_size_of(cfg: Config, world_size: int | None = None) -> tuple[int, str]:
    """(processes, where the number came from): the argument, ``run.num_processes`` when the
    config has it, $WORLD_SIZE, else 8 for FSDP2 (one node) and 1 for DDP."""
    if world_size:
        return int(world_size), "given"
    if _setting(cfg, "run.num_processes"):
        return int(_setting(cfg, "run.num_processes")), "run.num_processes"
    if os.environ.get("WORLD_SIZE"):
        return int(os.environ["WORLD_SIZE"]), "$WORLD_SIZE"
    return (8, "assumed") if _setting(cfg, "run.parallel") == "fsdp2" else (1, "assumed")


def longest_prompt_tokens(cfg: Config, tokenizer) -> tuple[int, int]:
    """Tokens of the longest prompt, as the trainer renders it, among the training problems (with
    ``task.limit_train``) and among the held-out ones evaluated during training (the first
    ``eval.n_problems_during``)."""
    from prmrl.tasks import make_task

    task = make_task(cfg.task, tokenizer)

    def longest(questions) -> int:
        prompts = [task.prompt(q) for q in questions]
        ids = tokenizer(prompts, add_special_tokens=False)["input_ids"] if prompts else []
        return max((len(x) for x in ids), default=0)

    return longest(task.train_questions), longest(task.test_questions[:cfg.eval.n_problems_during])


def _prompt_tokens(cfg: Config) -> tuple[int, int, str]:
    """The longest prompts under the policy's tokenizer when it loads offline, else PROMPT_TOKENS."""
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(cfg.model.policy, local_files_only=True)
        return (*longest_prompt_tokens(cfg, tok), "the task's longest prompts")
    except Exception:     # no tokenizer or data at hand offline: an assumption, said as such
        return PROMPT_TOKENS, PROMPT_TOKENS, "assumed: the policy's tokenizer or the task's data is not at hand offline"


def memory_plan(cfg: Config, *, world_size: int | None = None,
                prompt_tokens: tuple[int, int] | None = None, shapes: dict | None = None, **layout):
    """The ``prmrl.memory.Plan`` of a PPO config. ``shapes``: role -> ModelShape for models
    whose config.json is not at hand (roles "policy", "critic", "PRM", "ORM"); ``layout``:
    ``prmrl.memory.Setup`` fields overriding what the config says (e.g. parallel="fsdp2" before
    config.py knows ``run.parallel``). ``prompt_tokens``: the longest (training, evaluated)
    prompts; None: measured with the policy's tokenizer when it loads offline, else
    ``PROMPT_TOKENS``. LookupError: a model's shape is
    unknown (says which)."""
    from dataclasses import replace

    from prmrl.memory import ModelShape, Setup, plan

    shapes = dict(shapes or {})

    def shape(role: str, key: str, name: str | None) -> ModelShape:
        if role in shapes:
            return shapes[role]
        if name is None:
            raise LookupError(f"{key} is unset: the SFT policy `prmrl sft` builds")
        try:
            return ModelShape.from_config_json(find_config_json(name))
        except (KeyError, ValueError, OSError) as e:
            raise LookupError(f"{key}: {name}: config.json unreadable ({_first_line(e)})") from None
        except LookupError as e:
            raise LookupError(f"{key}: {e}") from None

    def scalar(m: ModelShape) -> ModelShape:
        return m if m.head != "lm" else m.scalar()

    m, r, p = cfg.model, cfg.reward, cfg.ppo
    policy = shape("policy", "model.policy", m.policy)
    critic = None
    if p.advantage == "gae":
        critic = scalar(shape("critic", "model.critic", m.critic)) if (m.critic or "critic" in shapes) \
            else policy.scalar()
    frozen = {}
    if r.prm is not None and r.prm_url is None:
        prm = shape("PRM", "reward.prm", r.prm)
        frozen["PRM"] = scalar(prm) if r.prm_format == "native" else prm
    if r.orm is not None:
        frozen["ORM"] = scalar(shape("ORM", "reward.orm", r.orm))
    n, _ = world_size_of(cfg, world_size)
    why = "given"
    if prompt_tokens is None:
        *prompt_tokens, why = _prompt_tokens(cfg)
    train_prompt, eval_prompt = prompt_tokens
    setup = Setup(
        parallel=_setting(cfg, "run.parallel"), world_size=n,
        mixed_precision=m.dtype != "float32", frozen_bytes=4 if m.dtype == "float32" else 2,
        prompt_tokens=train_prompt, eval_prompt_tokens=eval_prompt, max_new_tokens=p.max_new_tokens,
        rollout_rows=p.prompts_per_iteration * p.samples_per_prompt,
        samples_per_prompt=p.samples_per_prompt,
        micro_batch=min(_setting(cfg, "ppo.micro_batch_size") or p.minibatch_size, p.minibatch_size),
        minibatch=p.minibatch_size,
        gradient_checkpointing=bool(_setting(cfg, "model.gradient_checkpointing")),
        offload_frozen=bool(_setting(cfg, "run.offload_frozen")),
        eval_rows=cfg.eval.n_problems_during if cfg.eval.every else 0,
        eval_max_new_tokens=cfg.eval.max_new_tokens)
    if layout:
        setup = replace(setup, **layout)
    out = plan(policy, critic=critic, frozen=frozen, setup=setup)
    out.notes.insert(0, f"prompts <= {train_prompt} tokens in training, <= {eval_prompt} in evaluation ({why})")
    return out


def _check_memory(cfg: Config, report: CheckReport) -> None:
    try:
        p = memory_plan(cfg)
    except LookupError as e:
        report.add("ok", f"memory: no estimate: {e}")
        return
    report.memory = p
    limit = gpu_memory_gb(cfg)
    n, source = world_size_of(cfg)
    where = f"{p.setup.parallel} over {n} GPU{'s' if n > 1 else ''}" + (f" ({source})" if source != "given" else "")
    if p.peak_gb > limit:
        report.add("warning", f"memory: estimated peak {p.peak_gb:.1f} GB per GPU ({p.peak_phase}, {where}) "
                              f"is above run.gpu_memory_gb={limit:g}: see the table; lower ppo.micro_batch_size, "
                              f"set model.gradient_checkpointing or run.offload_frozen, or shard (run.parallel)")
    else:
        report.add("ok", f"memory: estimated peak {p.peak_gb:.1f} GB per GPU ({p.peak_phase}, {where}), "
                         f"within run.gpu_memory_gb={limit:g}")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


if __name__ == "__main__":
    sys.exit(main_check())
