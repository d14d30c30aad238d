"""The repetition probe (`prmrl probe`): does a learned step reward pay for saying a right step
again? k copies of a correct step go before the final line of held-out answers, and the PRM's
step scores, shaped by each method of ``prmrl.rewards.shaping.SHAPING_METHODS``, are summed
against k.
"""

from __future__ import annotations

from pathlib import Path
from statistics import mean

from prmrl.config import Config
from prmrl.runs import start_run, write_json
from prmrl.tasks.arith import PROMPT_TEMPLATE


def probe_returns(base: list[tuple[str, list[str]]], prm, *, eta: float, max_copies: int = 10) -> dict:
    """The probe's arithmetic: for k = 0..max_copies, each answer in ``base`` (question, steps)
    with k copies of its second-to-last step inserted before its last, scored by ``prm``
    (questions, step lists) -> per-step scores or None; the mean learned-reward return of each
    refinement. An answer the PRM cannot score in full at some k (a step past its context) is
    left out at every k, and counted, so each k averages the same answers."""
    from prmrl.rewards.shaping import SHAPING_METHODS, shape_step_rewards

    methods = [m for m in SHAPING_METHODS if m != "normed"] + ["normed"]
    scores_by_k = []
    for k in range(max_copies + 1):
        variants = [(q, st[:-1] + [st[-2]] * k + st[-1:]) for q, st in base]
        scores_by_k.append(prm([q for q, _ in variants], [st for _, st in variants]))
    keep = [i for i in range(len(base)) if all(None not in rows[i] for rows in scores_by_k)]
    if not keep:
        raise ValueError("probe: the PRM could not score any answer at every k")
    returns = {m: [mean(sum(shape_step_rewards(rows[i], m, eta=eta)) for i in keep) for rows in scores_by_k]
               for m in methods}
    return {"k": list(range(max_copies + 1)), "returns": returns,
            "mean_step_score": [mean(mean(rows[i]) for i in keep) for rows in scores_by_k],
            "n_answers": len(keep), "n_unscorable_answers": len(base) - len(keep), "eta": eta}


def repetition_probe(cfg: Config, max_copies: int = 10, n_answers: int = 200) -> dict:
    """Append k copies of a correct step before the final line of the SFT policy's greedy held-out
    answers, score them with the PRM trained on that policy's labelled answers (trained or
    reused), and report each refinement's learned-reward return against k. Writes
    ``probe.json`` and ``probe.png`` into ``run.out_dir``."""
    from prmrl.evaluation.plots import plot_lines
    from prmrl.jobs.rm import train_rm_job
    from prmrl.jobs.sft import run_sft
    from prmrl.models.factory import load_policy, load_tokenizer
    from prmrl.models.sampler import generate
    from prmrl.rewards.scorers import PRMReward
    from prmrl.steps import steps_for_batch
    from prmrl.tasks import make_task

    out = Path(cfg.run.out_dir)
    start_run(out, cfg)
    task = make_task(cfg.task)
    sft = str(run_sft(cfg))
    prm_path = train_rm_job(cfg, "prm", sft)
    tok = load_tokenizer(sft)
    qs, golds = task.test_questions[:n_answers], task.test_golds[:n_answers]
    gen = generate(load_policy(sft), tok, [task.prompt(q) for q in qs],
                   max_new_tokens=cfg.eval.max_new_tokens, greedy=True)
    verdicts = task.grade_batch(gen.texts, golds)
    steps = steps_for_batch(tok, gen.response_ids.tolist(), task.delimiter)
    # Keep right answers with a computation step to repeat (one that is not the final line).
    base = [(q, s.texts) for q, s, v in zip(qs, steps, verdicts) if v is True and len(s.texts) >= 2]
    if not base:
        raise ValueError(f"probe: none of the policy's {len(qs)} greedy held-out answers is right "
                         f"with a step before its final line; nothing to repeat ({sft})")
    prm = PRMReward(str(prm_path), prompt_template=PROMPT_TEMPLATE, delimiter=task.delimiter)
    report = probe_returns(base, prm, eta=cfg.reward.eta, max_copies=max_copies)
    report["prm"] = str(prm_path)
    write_json(out / "probe.json", report)
    plot_lines({m: (report["k"], v) for m, v in report["returns"].items()},
               "learned-reward return vs repeated steps", "copies of a correct step (k)",
               "sum of per-step rewards", out / "probe.png")
    return report
