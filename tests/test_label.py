"""Reward-model data: sampling, Math-Shepherd auto labels (dedup, final step = success, floats),
oracle labels, and a job-level smoke test (label -> train ORM/PRM -> Best-of-N) on a tiny model."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from prmrl.config import load_config
from prmrl.models.factory import save_model, tiny_llama_config
from prmrl.models.tokenizer import build_char_tokenizer
from prmrl.rm.label import (SampledAnswer, auto_step_labels, label_agreement, oracle_step_labels,
                            outcome_records, sample_answers, sample_texts, to_step_records)
from prmrl.steps import split_steps
from prmrl.tasks import arith

DELIM = "\n"


@pytest.fixture(scope="module")
def problems():
    train, _ = arith.generate_splits(arith.ArithConfig(n_train=20, n_test=5, min_ops=3, max_ops=3))
    return train[:4]


@pytest.fixture(scope="module")
def tiny():
    """A random tiny policy with large weights: its greedy answers vary with the prompt and
    sometimes end early (EOS), so comparisons between samplers bite."""
    tok = build_char_tokenizer()
    config = tiny_llama_config(tok, hidden=32, layers=1, heads=2, intermediate=64)
    config.initializer_range = 0.5
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval(), tok


def grade_batch(responses, golds):
    return [arith.grade(r, g) for r, g in zip(responses, golds)]


def answer(problem_idx: int, sample: int, text: str, gold: str) -> SampledAnswer:
    spans = split_steps(text, DELIM)
    return SampledAnswer(problem=problem_idx, sample=sample, response=text,
                         steps=[text[s.start:s.end] for s in spans], step_ends=[s.end for s in spans],
                         success=bool(arith.grade(text, gold)), truncated=False)


def slipped(p: arith.Problem, at: int) -> str:
    """The reference solution with step ``at`` off by one, the error carried to the answer."""
    values, lines = [p.start], []
    for k, (op, b) in enumerate(p.ops):
        result = arith.OPS[op](values[-1], b) + (1 if k == at else 0)
        lines.append(arith.step_line(k, p.phrases[k], values[-1], op, b, result))
        values.append(result)
    return "\n".join(lines + [f"\\boxed{{{values[-1]}}}"])


@pytest.fixture(scope="module")
def handmade(problems):
    """Per problem: the reference solution twice (every prefix shared) and one slipping at step 1
    (sharing only its first prefix): 3 non-final prefixes each, 5 distinct."""
    out = []
    for i, p in enumerate(problems):
        out += [answer(i, 0, p.solution, p.answer), answer(i, 1, p.solution, p.answer),
                answer(i, 2, slipped(p, 1), p.answer)]
    return out


def test_auto_labels_shape_range_final_step_and_dedup(tiny, problems, handmade):
    model, tok = tiny
    m = 3
    auto = auto_step_labels(model, tok, handmade, [p.question for p in problems],
                            [p.answer for p in problems], prompt_fn=arith.prompt, grade_batch=grade_batch,
                            delimiter=DELIM, completions_per_step=m, soft=True, max_new_tokens=8,
                            batch_size=16, seed=0)
    assert len(auto.labels) == len(handmade)
    for a, labels in zip(handmade, auto.labels):
        assert len(labels) == len(a.steps) == 4
        assert all(isinstance(x, float) and 0.0 <= x <= 1.0 for x in labels)
        assert all(round(x * m) == pytest.approx(x * m) for x in labels)   # soft: multiples of 1/M
        assert labels[-1] == float(a.success)
    assert auto.n_prefixes == 3 * len(handmade)
    assert auto.n_unique == 5 * len(problems) < auto.n_prefixes
    assert auto.n_completions == auto.n_unique * m
    assert auto.completions_per_second > 0


def test_hard_labels_are_zero_or_one(tiny, problems, handmade):
    model, tok = tiny
    auto = auto_step_labels(model, tok, handmade, [p.question for p in problems],
                            [p.answer for p in problems], prompt_fn=arith.prompt, grade_batch=grade_batch,
                            delimiter=DELIM, completions_per_step=2, soft=False, max_new_tokens=4,
                            batch_size=64, seed=0)
    assert {x for labels in auto.labels for x in labels} <= {0.0, 1.0}


def test_a_completer_that_finishes_the_true_chain_gives_oracle_labels(problems, handmade, monkeypatch):
    """With completions that always finish the reference solution, a soft label is 1 exactly on
    prefixes still on the true chain (a completion is graded as prefix + completion)."""
    import prmrl.rm.label as label_mod

    def finish(prompt: str) -> str:
        p = next(p for p in problems if prompt.startswith(arith.prompt(p.question)))
        done = prompt[len(arith.prompt(p.question)):]
        return p.solution[len(done):] if p.solution.startswith(done) else "\\boxed{-1}"

    def fake_sample_texts(model, tok, prompts, n, **kw):
        return [finish(p) for p in prompts for _ in range(n)], [False] * (len(prompts) * n)

    monkeypatch.setattr(label_mod, "sample_texts", fake_sample_texts)
    auto = auto_step_labels(None, build_char_tokenizer(), handmade, [p.question for p in problems],
                            [p.answer for p in problems], prompt_fn=arith.prompt,
                            grade_batch=grade_batch, delimiter=DELIM, completions_per_step=2)
    oracle = oracle_step_labels(problems, handmade)
    assert auto.labels == oracle
    agree = label_agreement(auto.labels, oracle)
    assert agree["auto_label_auc_vs_oracle"] == 1.0 and agree["auto_label_agreement"] == 1.0


def test_oracle_labels_equal_check_steps(problems, handmade):
    oracle = oracle_step_labels(problems, handmade)
    for a, labels in zip(handmade, oracle):
        assert labels == [v.label for v in arith.check_steps(problems[a.problem], a.steps)]
    assert oracle[0] == [1.0, 1.0, 1.0, 1.0]
    assert oracle[2] == [1.0, 0.0, 0.0, 0.0]                 # slipped at step 1: wrong from there


def test_records_one_per_answer_and_outcome_labels(problems, handmade):
    oracle = oracle_step_labels(problems, handmade)
    recs = to_step_records(handmade, [p.question for p in problems], oracle, "oracle", {"oracle": oracle})
    assert len(recs) == len(handmade)
    assert all(len(r.labels) == len(r.steps) for r in recs)
    outs = outcome_records(recs)
    assert [o.label for o in outs] == [float(a.success) for a in handmade]
    assert outs[2].label == 0.0 and outs[0].label == 1.0


def test_sample_answers_order_and_steps(tiny, problems):
    model, tok = tiny
    answers, n_bad = sample_answers(model, tok, [p.question for p in problems], [p.answer for p in problems],
                                    prompt_fn=arith.prompt, grade_batch=grade_batch, delimiter=DELIM,
                                    n_samples=3, temperature=1.0, max_new_tokens=12, batch_size=5, seed=0)
    assert n_bad == 0
    assert [(a.problem, a.sample) for a in answers] == [(i, j) for i in range(4) for j in range(3)]
    for a in answers:
        assert len(a.steps) == len(a.step_ends)
        assert all(a.response[:e].endswith(s) for s, e in zip(a.steps, a.step_ends))


# ---- the jobs ---------------------------------------------------------------------------------

def stepping_policy():
    """A random tiny policy whose head leans to "\\n" (about one character in six), so its
    answers have several steps and the completion path of the labeller runs."""
    tok = build_char_tokenizer()
    config = tiny_llama_config(tok, hidden=32, layers=1, heads=2, intermediate=64)
    config.tie_word_embeddings = False      # else the newline row also moves its input embedding
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    prompts = [arith.prompt(f"Start with {i}. Add 3.") for i in range(8)]
    with torch.no_grad():
        h = model(**tok(prompts, return_tensors="pt", padding=True),
                  output_hidden_states=True).hidden_states[-1].mean((0, 1))
        model.lm_head.weight[tok.convert_tokens_to_ids("\n")] = 3.5 * h / h.norm() ** 2
    return model, tok


def test_jobs_smoke(tmp_path, capsys):
    from prmrl.evaluation.bon import format_bon_table
    from prmrl.jobs.bon import bon_job
    from prmrl.jobs.rm import label_job, labels_path, orm_path, prm_path, train_rm_job
    from prmrl.rm.records import read_records

    model, tok = stepping_policy()
    policy = str(tmp_path / "policy")
    save_model(model, tok, policy)
    cfg = load_config(None, [
        "task.n_train=40", "task.n_test=10",
        "rm.n_problems=6", "rm.samples_per_problem=2", "rm.completions_per_step=2",
        "rm.max_new_tokens=12", "rm.epochs=1", "rm.batch_size=4", "rm.bon_n=[1,2,4]",
        "rm.bon_problems=4", f"run.cache_dir={tmp_path / 'cache'}", f"run.out_dir={tmp_path / 'run'}",
        "run.progress=false"])

    stats = label_job(cfg, policy)
    assert not stats["reused"] and stats["n_answers"] == 12
    assert stats["settings"]["policy"] == policy
    assert 0 < stats["n_unique_prefixes"] <= stats["n_prefixes"]
    recs, _ = read_records(labels_path(cfg, policy))
    assert len(recs) == 12
    for r in recs:
        assert len(r.labels) == len(r.steps) == len(r.meta["oracle"]) == len(r.meta["auto"])
        assert all(isinstance(x, float) and 0 <= x <= 1 for x in r.labels)
        if r.steps:
            assert r.labels[-1] == float(r.meta["success"])
    assert label_job(cfg, policy)["reused"]

    result = bon_job(cfg, policy)
    assert capsys.readouterr().out == ""                 # printing is the caller's
    for key in ("greedy", "majority", "orm", "prm_min", "prm_last", "prm_prod", "prm_mean",
                "orm_vote", "prm_vote", "pass"):
        assert list(result[key]) == ["1", "2", "4"]
        assert all(0.0 <= v <= 1.0 for v in result[key].values())
    assert len(set(result["greedy"].values())) == 1
    assert isinstance(result["prm_step_auc"], float)
    assert result["n_problems"] == 4 and result["models"]["policy"] == policy
    assert result["models"]["orm"] == str(orm_path(cfg, policy))
    assert result["models"]["prm"] == str(prm_path(cfg, policy))
    saved = json.loads((tmp_path / "run" / "bon.json").read_text())
    assert saved["orm"] == result["orm"]
    assert (tmp_path / "run" / "bon.png").stat().st_size > 0
    assert format_bon_table(result).splitlines()[0].split() == ["method", "N=1", "N=2", "N=4"]
    for kind, path in (("orm", orm_path(cfg, policy)), ("prm", prm_path(cfg, policy))):
        assert (path / "config.json").exists()
        rows = (tmp_path / "run" / f"train-{kind}" / "metrics.jsonl").read_text().splitlines()
        assert len(rows) == math.ceil(12 / 4) and "losses/bce" in json.loads(rows[0])
        assert (tmp_path / "run" / f"train-{kind}" / "config.yaml").exists()
        assert json.loads((tmp_path / "run" / f"train-{kind}" / "train.json").read_text())["init"] == policy
        # cached: a second call returns the same model without training again
        mtime = (path / "config.json").stat().st_mtime
        assert train_rm_job(cfg, kind, policy) == path and (path / "config.json").stat().st_mtime == mtime
    # the PRM is keyed by its labels, the ORM is not
    soft, hard = (load_config(None, [f"rm.soft_labels={v}", f"run.cache_dir={tmp_path / 'cache'}"])
                  for v in ("true", "false"))
    assert prm_path(hard, policy) != prm_path(soft, policy) and orm_path(hard, policy) == orm_path(soft, policy)
    # another policy, other labels and reward models
    other = str(tmp_path / "other")
    assert labels_path(cfg, other) != labels_path(cfg, policy)
    assert orm_path(cfg, other) != orm_path(cfg, policy) and prm_path(cfg, other) != prm_path(cfg, policy)


def test_cache_keys_name_a_cached_sft_policy_by_its_folder(tmp_path, monkeypatch):
    """The cached SFT policy keeps the id the keys always gave it (``sft:<sft key>``), however its
    path is spelt; another folder under ``{cache}/sft`` is named by its folder name; any other
    model by its path. ``rm.completer`` / ``rm.init`` unset mean the policy itself."""
    from prmrl.jobs.rm import label_key, model_id, orm_path, prm_path
    from prmrl.jobs.sft import sft_key, sft_policy_path

    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["run.cache_dir=cache"])
    sft = sft_policy_path(cfg)
    assert model_id(cfg, sft) == model_id(cfg, str(sft)) == f"sft:{sft_key(cfg)}"
    assert model_id(cfg, tmp_path / sft) == model_id(cfg, f"./{sft}/") == f"sft:{sft_key(cfg)}"
    assert model_id(cfg, "cache/sft/mine") == "sft:mine"
    assert model_id(cfg, "elsewhere/arith-abc") == "elsewhere/arith-abc"
    assert model_id(cfg, "cache/sft/mine/sub") == "cache/sft/mine/sub"
    # the keys follow the id, not the spelling
    assert label_key(cfg, sft) == label_key(cfg, tmp_path / sft)
    assert prm_path(cfg, sft) == prm_path(cfg, tmp_path / sft)
    # an unset completer / init is the policy: naming it explicitly keys the same
    same = load_config(None, ["run.cache_dir=cache", f"rm.completer={sft}", f"rm.init={sft}"])
    assert label_key(same, sft) == label_key(cfg, sft)
    assert prm_path(same, sft) == prm_path(cfg, sft) and orm_path(same, sft) == orm_path(cfg, sft)
    other = load_config(None, ["run.cache_dir=cache", "rm.init=elsewhere/base"])
    assert orm_path(other, sft) != orm_path(cfg, sft)


def test_rm_jobs_take_the_policy_and_train_no_sft():
    import prmrl.jobs.rm as rm

    assert "run_sft" not in vars(rm) and "sft_key" not in vars(rm)


def test_sample_texts_matches_hf_generate_and_keeps_budgets(tiny):
    """Greedy text equals Hugging Face ``model.generate``'s (shared prefill, dropped rows and left
    padding change nothing); each text keeps its budget; a zero budget gives "" (truncated);
    samples of one prompt follow it in prompt-major order."""
    model, tok = tiny
    prompts = [arith.prompt(f"Start with {i}. Add {i % 4 + 1}." + " Times 2." * (i % 3)) for i in range(7)]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=20, do_sample=False, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    ref = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    ref_truncated = [tok.eos_token_id not in row.tolist() for row in out[:, enc["input_ids"].shape[1]:]]
    texts, truncated = sample_texts(model, tok, prompts, n=2, budgets=20, greedy=True, batch_size=4)
    assert len(set(ref)) > 3 and not all(ref_truncated)
    assert texts == [t for t in ref for _ in range(2)]
    assert truncated == [t for t in ref_truncated for _ in range(2)]

    budgets = [0, 1, 5, 9, 12, 12, 3]
    texts, truncated = sample_texts(model, tok, prompts, n=3, budgets=budgets, batch_size=5, seed=1)
    assert len(texts) == 21
    assert texts[0] == texts[1] == texts[2] == "" and truncated[:3] == [True] * 3
    for k, (t, tr) in enumerate(zip(texts, truncated)):
        assert len(tok(t, add_special_tokens=False)["input_ids"]) <= budgets[k // 3]
    assert any(len(set(texts[3 * i:3 * i + 3])) > 1 for i in range(7))   # samples are not copies
