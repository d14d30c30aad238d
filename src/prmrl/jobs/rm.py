"""The reward-model jobs behind `prmrl label` and `prmrl train-rm` (Best-of-N, `prmrl bon`, is in
:mod:`prmrl.jobs.bon`).

Everything is cached under ``cfg.run.cache_dir`` and keyed by a hash of what changes it, so later
commands (and PPO with ``reward.prm`` / ``reward.orm``) reuse it:

    labels/{label_key}.jsonl      one StepLabelRecord per sampled answer (meta: response, success,
                                  oracle and auto step labels when available)
    labels/{label_key}.json       labelling figures (timings, completions/s, label quality)
    rm/orm-{orm_key}/             ORM checkpoint (scalar-head model + tokenizer)
    rm/prm-{prm_key}/             PRM checkpoint, native format

The caller names the base policy by its path (the CLI passes ``model.policy``, else the cached SFT
policy); it samples the answers and is the default completer (``rm.completer``) and
reward-model backbone (``rm.init``). These jobs train nothing else.

A model is keyed by its path, except a cached SFT policy (a folder right under
``{run.cache_dir}/sft/``), which is keyed by its folder name, so its labels and reward models
are found again whichever way the path is spelt. After overwriting weights at the same path,
pass ``force=True``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

from prmrl.config import Config
from prmrl.runs import MetricsLog, start_run, write_json
from prmrl.tasks.arith import PROMPT_TEMPLATE   # reward-model input = the question line + steps

LABEL_FORMAT_VERSION = 1   # bump when the labelling code changes what it writes
RM_TRAIN_VERSION = 2       # bump when the training loop changes what it trains (2: length-grouped batches)


# ---- keys and paths -----------------------------------------------------------------------------

def _hash(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def model_id(cfg: Config, path: str | Path) -> str:
    """What names a model in the cache keys: ``sft:<key>`` for a cached SFT policy (a folder
    ``{task}-{key}`` right under ``{run.cache_dir}/sft/``; ``sft:<folder name>`` when the name does
    not start with the task's), else the path as given."""
    p = Path(path)
    if p.resolve().parent == (Path(cfg.run.cache_dir) / "sft").resolve():
        prefix = f"{cfg.task.name}-"
        return "sft:" + (p.name[len(prefix):] if p.name.startswith(prefix) else p.name)
    return str(path)


def _sample_settings(cfg: Config, policy: str | Path) -> dict:
    r = cfg.rm
    return {"task": asdict(cfg.task), "policy": model_id(cfg, policy), "n_problems": r.n_problems,
            "samples_per_problem": r.samples_per_problem, "temperature": r.temperature,
            "max_new_tokens": r.max_new_tokens, "seed": cfg.run.seed, "version": LABEL_FORMAT_VERSION}


def label_key(cfg: Config, policy: str | Path) -> str:
    r = cfg.rm
    label = {"label_source": r.label_source}
    if r.label_source == "auto":
        label |= {"completer": model_id(cfg, r.completer or policy), "m": r.completions_per_step,
                  "soft": r.soft_labels, "completer_temperature": r.completer_temperature}
    return _hash({**_sample_settings(cfg, policy), **label})


def labels_path(cfg: Config, policy: str | Path) -> Path:
    """Where the labels of ``policy``'s answers are cached (they exist once `label_job` ran)."""
    return Path(cfg.run.cache_dir) / "labels" / f"{label_key(cfg, policy)}.jsonl"


def _train_settings(cfg: Config, policy: str | Path) -> dict:
    r = cfg.rm
    return {"init": model_id(cfg, r.init or policy), "epochs": r.epochs, "batch_size": r.batch_size,
            "lr": r.lr, "seed": cfg.run.seed, "template": PROMPT_TEMPLATE,
            "extra_layers": r.extra_layers, "freeze_backbone": r.freeze_backbone,
            "dense": r.dense_labels, "likelihood": r.likelihood_features, "version": RM_TRAIN_VERSION}


def rm_key(cfg: Config, kind: str, policy: str | Path) -> str:
    # The ORM sees only answers and their success: label settings do not change it.
    data = _sample_settings(cfg, policy) if kind == "orm" else {"labels": label_key(cfg, policy)}
    return _hash({"kind": kind, **data, **_train_settings(cfg, policy)})


def orm_path(cfg: Config, policy: str | Path) -> Path:
    """Where the ORM trained on ``policy``'s answers is cached (it exists once
    `train_rm_job(cfg, "orm", policy)` ran)."""
    return Path(cfg.run.cache_dir) / "rm" / f"orm-{rm_key(cfg, 'orm', policy)}"


def prm_path(cfg: Config, policy: str | Path) -> Path:
    """Where the (native-format) PRM trained on ``policy``'s answers is cached."""
    return Path(cfg.run.cache_dir) / "rm" / f"prm-{rm_key(cfg, 'prm', policy)}"


def progress_bar(total: int | None, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, dynamic_ncols=True, leave=False)


# ---- label ----------------------------------------------------------------------------------------

def label_job(cfg: Config, policy: str | Path, force: bool = False) -> dict:
    """Sample ``rm.samples_per_problem`` answers from ``policy`` (a model folder) for each of the
    first ``rm.n_problems`` training problems and label them; reuses the cached labels unless
    missing or ``force``. Returns the labelling figures plus ``path`` (the JSONL) and ``reused``."""
    from prmrl.models.factory import load_policy, load_tokenizer
    from prmrl.rm.label import (auto_step_labels, label_agreement, oracle_step_labels, sample_answers,
                                to_step_records)
    from prmrl.rm.records import write_records
    from prmrl.tasks import make_task

    path = labels_path(cfg, policy)
    stats_path = path.with_suffix(".json")
    if path.exists() and stats_path.exists() and not force:
        return {**json.loads(stats_path.read_text()), "path": str(path), "reused": True}

    r = cfg.rm
    policy_path = str(policy)
    tok = load_tokenizer(policy_path)
    task = make_task(cfg.task, tok)
    n = min(r.n_problems, len(task.train_questions))
    questions, golds = task.train_questions[:n], task.train_golds[:n]
    has_oracle = task.train_problems is not None
    if r.label_source == "oracle" and not has_oracle:
        raise ValueError(f"rm.label_source: 'oracle' needs the arith step checker; task "
                         f"'{cfg.task.name}' has none (use 'auto')")

    t0 = time.perf_counter()
    bar = progress_bar(n * r.samples_per_problem, "label: sample", cfg.run.progress)
    answers, n_bad = sample_answers(
        load_policy(policy_path), tok, questions, golds, prompt_fn=task.prompt,
        grade_batch=task.grade_batch, delimiter=task.delimiter, n_samples=r.samples_per_problem,
        temperature=r.temperature, max_new_tokens=r.max_new_tokens, batch_size=512,
        seed=cfg.run.seed * 1_000_003 + 1, progress=bar.update)
    bar.close()
    stats: dict = {"n_problems": n, "n_answers": len(answers),
                   "success_rate": sum(a.success for a in answers) / max(1, len(answers)),
                   "n_steps": sum(len(a.steps) for a in answers), "ungradable_answers": n_bad,
                   "sample_seconds": round(time.perf_counter() - t0, 2)}

    sets: dict[str, list[list[float]]] = {}
    if has_oracle:
        sets["oracle"] = oracle_step_labels(task.train_problems, answers)
    if r.label_source == "auto":
        completer_path = r.completer or policy_path
        ctok = load_tokenizer(completer_path)
        completer = load_policy(completer_path)
        bar = progress_bar(None, "label: completions", cfg.run.progress)   # total known after dedup
        auto = auto_step_labels(
            completer, ctok, answers, questions, golds, prompt_fn=task.prompt,
            grade_batch=task.grade_batch, delimiter=task.delimiter,
            completions_per_step=r.completions_per_step, soft=r.soft_labels,
            temperature=r.completer_temperature, max_new_tokens=r.max_new_tokens, batch_size=512,
            seed=cfg.run.seed * 1_000_003 + 2, progress=bar.update)
        bar.close()
        sets["auto"] = auto.labels
        stats |= {"n_prefixes": auto.n_prefixes, "n_unique_prefixes": auto.n_unique,
                  "n_completions": auto.n_completions, "completion_seconds": round(auto.seconds, 2),
                  "completions_per_second": round(auto.completions_per_second, 1),
                  "ungradable_completions": auto.n_ungradable}
        if has_oracle:
            stats |= label_agreement(auto.labels, sets["oracle"])
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    labels = sets[r.label_source]
    records = to_step_records(answers, questions, labels, source=r.label_source, extra=sets)
    write_records(path, records)
    write_json(stats_path, {"label_key": label_key(cfg, policy), "settings": {
        "policy": policy_path, "label_source": r.label_source,
        "completions_per_step": r.completions_per_step, "soft_labels": r.soft_labels,
        "completer_temperature": r.completer_temperature}, **stats})
    return {**json.loads(stats_path.read_text()), "path": str(path), "reused": False}


# ---- train-rm -------------------------------------------------------------------------------------

def train_rm_job(cfg: Config, kind: str, policy: str | Path, force: bool = False) -> Path:
    """Train (or reuse) the ORM (BCE on answer success) or the native-format PRM (BCE on the step
    labels of ``rm.label_source``) on the labelled answers of ``policy`` (labelled first if not
    cached; ``policy`` is also the backbone unless ``rm.init`` names one); writes
    ``{run.out_dir}/train-{kind}`` and returns the cached model's path."""
    from prmrl.models.factory import freeze_backbone, load_scalar_model, load_tokenizer, save_model
    from prmrl.rm.formats import NativeFormat
    from prmrl.rm.label import outcome_records
    from prmrl.rm.records import read_records
    from prmrl.rm.train import train_reward_model

    if kind not in ("orm", "prm"):
        raise ValueError(f"kind must be 'orm' or 'prm', got '{kind}'")
    path = orm_path(cfg, policy) if kind == "orm" else prm_path(cfg, policy)
    if (path / "config.json").exists() and not force:
        return path
    labels = label_job(cfg, policy)
    records, _ = read_records(labels["path"])
    r = cfg.rm
    init = str(r.init or policy)
    tok = load_tokenizer(init)
    model = load_scalar_model(init, extra_layers=r.extra_layers)
    if r.freeze_backbone:
        freeze_backbone(model, r.extra_layers)
    if r.likelihood_features:
        from prmrl.models.likelihood import LikelihoodRewardModel

        model = LikelihoodRewardModel.from_causal_lm(model, init)
    examples = outcome_records(records) if kind == "orm" else records
    examples, epochs = _epochs(examples, r.epochs, cfg.run.seed)

    run = start_run(Path(cfg.run.out_dir) / f"train-{kind}", cfg)
    log = MetricsLog(run / "metrics.jsonl")
    bar = progress_bar(epochs * math.ceil(len(examples) / r.batch_size), f"train {kind}", cfg.run.progress)

    def log_fn(row: dict) -> None:
        log.write(row)
        bar.update(1)
        bar.set_postfix(bce=f"{row['losses/bce']:.4f}")

    t0 = time.perf_counter()
    result = train_reward_model(model, tok, examples, kind=kind, epochs=epochs, lr=r.lr,
                                batch_size=r.batch_size, seed=cfg.run.seed,
                                fmt=NativeFormat(tok, PROMPT_TEMPLATE, cfg.task.step_delimiter),
                                prompt_template=PROMPT_TEMPLATE, dense=r.dense_labels, log_fn=log_fn)
    bar.close()
    log.close()
    save_model(model, tok, path)
    write_json(run / "train.json", {**result, "kind": kind, "model": str(path), "init": str(init),
                                    "labels": labels["path"], "n_examples": len(examples),
                                    "seconds": round(time.perf_counter() - t0, 2)})
    return path


def _epochs(examples: list, epochs: float, seed: int) -> tuple[list, int]:
    """``train_reward_model`` runs whole epochs; a fractional count becomes one pass over
    ``round(epochs * n)`` examples (whole copies plus a seeded subset)."""
    if float(epochs).is_integer():
        return list(examples), int(epochs)
    import random

    whole, frac = int(epochs), epochs - int(epochs)
    extra = random.Random(seed).sample(range(len(examples)), round(frac * len(examples)))
    return list(examples) * whole + [examples[i] for i in extra], 1
