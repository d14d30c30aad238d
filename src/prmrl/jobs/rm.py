"""The reward-model jobs behind `prmrl label`, `prmrl train-rm` and `prmrl bon`.

Everything is cached under ``cfg.run.cache_dir`` and keyed by a hash of what changes it, so later
commands (and PPO with ``reward.prm`` / ``reward.orm``) reuse it:

    labels/{label_key}.jsonl      one StepLabelRecord per sampled answer (meta: response, success,
                                  oracle and auto step labels when available)
    labels/{label_key}.json       labelling figures (timings, completions/s, label quality)
    rm/orm-{orm_key}/             ORM checkpoint (scalar-head model + tokenizer)
    rm/prm-{prm_key}/             PRM checkpoint, native format

The base policy (``model.policy``, default the cached SFT policy) samples the answers, and is
the default completer (``rm.completer``) and reward-model backbone (``rm.init``). A model given
by path is keyed by its path: after overwriting weights at the same path, pass ``force=True``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

from prmrl.config import Config
from prmrl.jobs.sft import run_sft, sft_key
from prmrl.runs import MetricsLog, start_run, write_json

LABEL_FORMAT_VERSION = 1   # bump when the labelling code changes what it writes
RM_TRAIN_VERSION = 2       # bump when the training loop changes what it trains (2: length-grouped batches)
PROMPT_TEMPLATE = "{question}\n"   # reward-model input = arith.prompt(question) + steps


# ---- keys and paths -----------------------------------------------------------------------------

def _hash(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def _model_id(cfg: Config, path: str | None) -> str:
    """A model given by path is named by it; the default is the SFT policy, named by its key."""
    if path is not None:
        return str(path)
    return cfg.model.policy if cfg.model.policy is not None else f"sft:{sft_key(cfg)}"


def _sample_settings(cfg: Config) -> dict:
    r = cfg.rm
    return {"task": asdict(cfg.task), "policy": _model_id(cfg, None), "n_problems": r.n_problems,
            "samples_per_problem": r.samples_per_problem, "temperature": r.temperature,
            "max_new_tokens": r.max_new_tokens, "seed": cfg.run.seed, "version": LABEL_FORMAT_VERSION}


def label_key(cfg: Config) -> str:
    r = cfg.rm
    label = {"label_source": r.label_source}
    if r.label_source == "auto":
        label |= {"completer": _model_id(cfg, r.completer), "m": r.completions_per_step,
                  "soft": r.soft_labels, "completer_temperature": r.completer_temperature}
    return _hash({**_sample_settings(cfg), **label})


def labels_path(cfg: Config) -> Path:
    return Path(cfg.run.cache_dir) / "labels" / f"{label_key(cfg)}.jsonl"


def _train_settings(cfg: Config) -> dict:
    r = cfg.rm
    return {"init": _model_id(cfg, r.init), "epochs": r.epochs, "batch_size": r.batch_size,
            "lr": r.lr, "seed": cfg.run.seed, "template": PROMPT_TEMPLATE,
            "extra_layers": r.extra_layers, "freeze_backbone": r.freeze_backbone,
            "dense": r.dense_labels, "likelihood": r.likelihood_features, "version": RM_TRAIN_VERSION}


def rm_key(cfg: Config, kind: str) -> str:
    # The ORM sees only answers and their success: label settings do not change it.
    data = _sample_settings(cfg) if kind == "orm" else {"labels": label_key(cfg)}
    return _hash({"kind": kind, **data, **_train_settings(cfg)})


def orm_path(cfg: Config) -> Path:
    """Where the ORM of this config is cached (it exists once `train_rm_job(cfg, "orm")` ran)."""
    return Path(cfg.run.cache_dir) / "rm" / f"orm-{rm_key(cfg, 'orm')}"


def prm_path(cfg: Config) -> Path:
    """Where the (native-format) PRM of this config is cached."""
    return Path(cfg.run.cache_dir) / "rm" / f"prm-{rm_key(cfg, 'prm')}"


def _base_policy(cfg: Config) -> str:
    return cfg.model.policy if cfg.model.policy is not None else str(run_sft(cfg))


def _bar(total: int | None, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, dynamic_ncols=True, leave=False)


# ---- label ----------------------------------------------------------------------------------------

def label_job(cfg: Config, force: bool = False) -> dict:
    """Sample ``rm.samples_per_problem`` answers for each of the first ``rm.n_problems`` training
    problems and label them; reuses the cached labels unless missing or ``force``.
    Returns the labelling figures plus ``path`` (the JSONL) and ``reused``."""
    from prmrl.models.factory import load_policy, load_tokenizer
    from prmrl.rm.label import (auto_step_labels, label_agreement, oracle_step_labels, sample_answers,
                                to_step_records)
    from prmrl.rm.records import write_records
    from prmrl.tasks import make_task

    path = labels_path(cfg)
    stats_path = path.with_suffix(".json")
    if path.exists() and stats_path.exists() and not force:
        return {**json.loads(stats_path.read_text()), "path": str(path), "reused": True}

    r = cfg.rm
    policy_path = _base_policy(cfg)
    tok = load_tokenizer(policy_path)
    task = make_task(cfg.task, tok)
    n = min(r.n_problems, len(task.train_questions))
    questions, golds = task.train_questions[:n], task.train_golds[:n]
    has_oracle = task.train_problems is not None
    if r.label_source == "oracle" and not has_oracle:
        raise ValueError(f"rm.label_source: 'oracle' needs the arith step checker; task "
                         f"'{cfg.task.name}' has none (use 'auto')")

    t0 = time.perf_counter()
    bar = _bar(n * r.samples_per_problem, "label: sample", cfg.run.progress)
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
        bar = _bar(None, "label: completions", cfg.run.progress)   # total known after dedup
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
    write_json(stats_path, {"label_key": label_key(cfg), "settings": {
        "policy": policy_path, "label_source": r.label_source,
        "completions_per_step": r.completions_per_step, "soft_labels": r.soft_labels,
        "completer_temperature": r.completer_temperature}, **stats})
    return {**json.loads(stats_path.read_text()), "path": str(path), "reused": False}


# ---- train-rm -------------------------------------------------------------------------------------

def train_rm_job(cfg: Config, kind: str, force: bool = False) -> Path:
    """Train (or reuse) the ORM (BCE on answer success) or the native-format PRM (BCE on the step
    labels of ``rm.label_source``); writes ``{run.out_dir}/train-{kind}`` and returns the cached
    model's path."""
    from prmrl.models.factory import freeze_backbone, load_scalar_model, load_tokenizer, save_model
    from prmrl.rm.formats import NativeFormat
    from prmrl.rm.label import outcome_records
    from prmrl.rm.records import read_records
    from prmrl.rm.train import train_reward_model

    if kind not in ("orm", "prm"):
        raise ValueError(f"kind must be 'orm' or 'prm', got '{kind}'")
    path = orm_path(cfg) if kind == "orm" else prm_path(cfg)
    if (path / "config.json").exists() and not force:
        return path
    labels = label_job(cfg)
    records, _ = read_records(labels["path"])
    r = cfg.rm
    init = r.init or _base_policy(cfg)
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
    bar = _bar(epochs * math.ceil(len(examples) / r.batch_size), f"train {kind}", cfg.run.progress)

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


# ---- bon ------------------------------------------------------------------------------------------

def bon_job(cfg: Config) -> dict:
    """Best-of-N on ``rm.bon_problems`` test problems with the ORM and the PRM (trained or reused),
    against majority voting and greedy decoding, plus the PRM's step-level AUC/accuracy against
    oracle labels on the same sampled test answers. Writes ``bon.json`` and ``bon.png`` into
    ``run.out_dir``, prints the table, and returns what ``bon.json`` holds."""
    from prmrl.evaluation.bon import (AGGREGATIONS, accuracy_at, best_of_n, majority_at_n,
                                      plot_bon, format_bon_table, roc_auc, weighted_vote_at_n)
    from prmrl.models.factory import load_policy, load_tokenizer
    from prmrl.answers import extract_boxed
    from prmrl.rm.label import oracle_step_labels, sample_answers
    from prmrl.rewards.reward_models import load_orm, load_prm
    from prmrl.tasks import make_task

    t_start = time.perf_counter()
    times: dict[str, float] = {}
    labels = label_job(cfg)
    times["label"] = time.perf_counter() - t_start
    t = time.perf_counter()
    orm_dir = train_rm_job(cfg, "orm")
    times["train_orm"] = time.perf_counter() - t
    t = time.perf_counter()
    prm_dir = train_rm_job(cfg, "prm")
    times["train_prm"] = time.perf_counter() - t

    r = cfg.rm
    out = start_run(cfg.run.out_dir, cfg)
    policy_path = _base_policy(cfg)
    tok = load_tokenizer(policy_path)
    policy = load_policy(policy_path)
    task = make_task(cfg.task, tok)
    n = min(r.bon_problems, len(task.test_questions))
    k = max(r.bon_n)
    questions, golds = task.test_questions[:n], task.test_golds[:n]
    common = dict(prompt_fn=task.prompt, grade_batch=task.grade_batch, delimiter=task.delimiter,
                  max_new_tokens=r.max_new_tokens, batch_size=512)

    t = time.perf_counter()
    greedy, _ = sample_answers(policy, tok, questions, golds, n_samples=1, temperature=1.0,
                               greedy=True, seed=0, **common)
    bar = _bar(n * k, "bon: sample", cfg.run.progress)
    answers, n_bad = sample_answers(policy, tok, questions, golds, n_samples=k,
                                    temperature=r.bon_temperature, seed=cfg.run.seed * 1_000_003 + 3,
                                    progress=bar.update, **common)
    bar.close()
    times["sample"] = time.perf_counter() - t

    t = time.perf_counter()
    qs = [questions[a.problem] for a in answers]
    orm = load_orm(orm_dir, PROMPT_TEMPLATE)
    prm = load_prm(prm_dir, "native", prompt_template=PROMPT_TEMPLATE, delimiter=task.delimiter)
    lengths = [len(q) + len(a.response) for q, a in zip(qs, answers)]
    orm_scores = _by_length(lengths, orm.score, qs, [a.response for a in answers])
    step_scores = _by_length(lengths, prm.score, qs, [a.steps for a in answers])
    times["score"] = time.perf_counter() - t

    def per_problem(xs: list) -> list[list]:
        return [xs[i * k:(i + 1) * k] for i in range(n)]

    correct = per_problem([a.success for a in answers])
    finals = per_problem([_answer_key(extract_boxed(a.response)) for a in answers])
    greedy_acc = sum(a.success for a in greedy) / max(1, n)
    ns = sorted(r.bon_n)
    result: dict = {
        "greedy": {str(N): greedy_acc for N in ns},
        "majority": {str(N): majority_at_n(finals, correct, N) for N in ns},
        "orm": {str(N): best_of_n(per_problem(orm_scores), correct, N) for N in ns},
    }
    aggregated = {name: per_problem([fn(s) for s in step_scores]) for name, fn in AGGREGATIONS.items()}
    for name, agg in aggregated.items():
        result[f"prm_{name}"] = {str(N): best_of_n(agg, correct, N) for N in ns}
    # Reward-weighted voting (Math-Shepherd's "self-consistency + reward model"): each answer's
    # samples vote with their ORM score / PRM min score.
    result["orm_vote"] = {str(N): weighted_vote_at_n(finals, per_problem(orm_scores), correct, N) for N in ns}
    result["prm_vote"] = {str(N): weighted_vote_at_n(finals, aggregated["min"], correct, N) for N in ns}
    result["pass"] = {str(N): sum(any(c[:N]) for c in correct) / max(1, n) for N in ns}

    if task.test_problems is not None:
        oracle = oracle_step_labels(task.test_problems, answers)
        pairs = [(s, y) for ss, ys in zip(step_scores, oracle) for s, y in zip(ss, ys) if s is not None]
        xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
        result["prm_step_auc"] = roc_auc(xs, ys)
        result["prm_step_accuracy"] = accuracy_at(xs, ys, 0.5)
        result["n_steps_scored"] = len(pairs)
        result["oracle_step_positive_rate"] = sum(y >= 0.5 for y in ys) / max(1, len(ys))
    else:
        result["prm_step_auc"] = math.nan
    result["auto_label_auc_vs_oracle"] = labels.get("auto_label_auc_vs_oracle", math.nan)
    result["labeller"] = {key: v for key, v in labels.items() if key != "settings"}
    result["completions_per_second"] = labels.get("completions_per_second", math.nan)
    result["sampling_accuracy"] = sum(a.success for a in answers) / max(1, len(answers))
    result["ungradable_answers"] = n_bad
    result["n_problems"] = n
    result["models"] = {"policy": policy_path, "orm": str(orm_dir), "prm": str(prm_dir)}
    times["total"] = time.perf_counter() - t_start
    result["seconds"] = {key: round(v, 2) for key, v in times.items()}
    write_json(out / "bon.json", result)
    plot_bon(result, out / "bon.png")
    print(format_bon_table(result))
    return result


def _by_length(lengths: list[int], score, *columns: list) -> list:
    """``score(*columns, batch_size=256)`` on rows sorted by length (so batches pad little),
    results back in the original order."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    out = score(*[[col[i] for i in order] for col in columns], batch_size=256)
    result: list = [None] * len(order)
    for j, i in enumerate(order):
        result[i] = out[j]
    return result


def _answer_key(boxed: str | None) -> str | None:
    """What majority voting compares: the boxed answer without spaces (None: no answer)."""
    return None if boxed is None else "".join(boxed.split())
