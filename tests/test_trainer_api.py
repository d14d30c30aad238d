"""The trainer's Python API: typed pieces, validation with one line naming the key, callbacks
and metric sinks, several trainers in one process, non-finite values stop the run."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import torch

from prmrl import ConfigError, NonFiniteError, PPOConfig, PPOTrainer, RewardConfig, Task
from prmrl.models.factory import build_tiny_policy, save_model
from prmrl.tasks import arith

pytestmark = pytest.mark.slow
SMALL = dict(iterations=2, prompts_per_iteration=2, samples_per_prompt=2, max_new_tokens=12, minibatch_size=4)


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    model, tok = build_tiny_policy(seed=0, hidden=32, layers=2, heads=2, intermediate=64)
    path = tmp_path_factory.mktemp("policy") / "p"
    save_model(model, tok, path)
    return path


def task() -> Task:
    qs = [f"Start with {a}. (a) 2 more." for a in range(6)]
    return Task(name="arith", train_questions=qs, train_golds=[str(a + 2) for a in range(6)],
                test_questions=[], test_golds=[], prompt=arith.prompt,
                grade_batch=lambda rs, gs: [arith.grade(r, g) for r, g in zip(rs, gs)], delimiter="\n")


@pytest.mark.parametrize("section, kwargs, key", [
    ("ppo", {"max_grad_norm": -1.0}, "ppo.max_grad_norm"),
    ("ppo", {"clip_eps": -0.1}, "ppo.clip_eps"),
    ("ppo", {"actor_lr": -1.0}, "ppo.actor_lr"),
    ("ppo", {"kl_estimator": "k9"}, "ppo.kl_estimator"),
    ("reward", {"eta": 7.0}, "reward.eta"),
    ("reward", {"shaping": "clip-delta"}, "reward.shaping"),
])
def test_typed_sections_are_validated_like_a_config_file(policy, section, kwargs, key):
    pieces = {"ppo": PPOConfig(**kwargs)} if section == "ppo" else {"reward": RewardConfig(**kwargs)}
    with pytest.raises(ConfigError) as e:
        PPOTrainer(str(policy), task=task(), **pieces)
    assert str(e.value).startswith(key + ":") and "\n" not in str(e.value)


def test_shaping_without_a_prm_is_refused(policy):
    with pytest.raises(ValueError, match="needs a PRM"):
        PPOTrainer(str(policy), task=task(), reward=RewardConfig(shaping="clip"))


def test_callbacks_see_each_iteration_and_can_add_metrics(policy, tmp_path):
    seen = []

    class Counter:
        def on_fit_start(self, trainer):
            seen.append("start")

        def on_iteration_end(self, trainer, it, metrics):
            metrics["custom/it_squared"] = it * it
            seen.append(it)

    out = PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**SMALL), output_dir=tmp_path / "r",
                     callbacks=[Counter(), lambda tr, it, m: seen.append(("fn", it))]).fit()
    assert seen == ["start", 0, ("fn", 0), 1, ("fn", 1)]
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["custom/it_squared"] for r in rows] == [0, 1]
    assert out["history"][-1]["custom/it_squared"] == 1


def test_report_to_tensorboard_gets_every_iteration(policy, tmp_path, monkeypatch):
    """The sink writes each scalar at its iteration (a recording SummaryWriter stands in when the
    tensorboard package is not installed; with it installed, the real one runs too)."""
    import prmrl.rl.callbacks as cb

    calls = []

    class Recorder:
        def __init__(self, log_dir, purge_step=None):
            calls.append(("init", log_dir, purge_step))

        def add_scalar(self, k, v, step):
            calls.append((k, v, step))

        def flush(self):
            pass

        def close(self):
            calls.append("close")

    try:
        import tensorboard  # noqa: F401
    except ImportError:
        import types
        fake = types.ModuleType("torch.utils.tensorboard")
        fake.SummaryWriter = Recorder
        monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
        import importlib.machinery
        pkg = types.ModuleType("tensorboard")        # what the trainer's package check finds
        pkg.__spec__ = importlib.machinery.ModuleSpec("tensorboard", None)
        monkeypatch.setitem(sys.modules, "tensorboard", pkg)
    else:
        monkeypatch.setattr("torch.utils.tensorboard.SummaryWriter", Recorder)
    PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**SMALL), output_dir=tmp_path / "r",
               report_to=["tensorboard"]).fit()
    assert calls[0] == ("init", str(tmp_path / "r" / "tensorboard"), None)
    steps = sorted({c[2] for c in calls if isinstance(c, tuple) and c[0] == "rollout/success"})
    assert steps == [0, 1] and calls[-1] == "close"
    with pytest.raises(ValueError, match="not one of"):
        cb.make_sinks(["tensorbored"], tmp_path, 0)


def test_report_to_without_its_package_fails_before_the_run_writes(policy, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "wandb" else real(n, *a))
    with pytest.raises(ImportError, match="'wandb' needs the wandb package"):
        PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**SMALL), output_dir=tmp_path / "r",
                   report_to=["wandb"])
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="precision"):
        PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**SMALL), precision="fp8")
    with pytest.raises(ValueError, match="save_every"):
        PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**SMALL), save_every=-1)


def test_two_trainers_of_different_precision_live_in_one_process(policy):
    a = PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**SMALL), precision="bfloat16")
    b = PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**SMALL), precision="float32")
    # no autocast on CPU: both references run the actor's float32 path
    assert a.ref.dtype == torch.float32 and b.ref.dtype == torch.float32
    before = {k: v.clone() for k, v in b.actor.state_dict().items()}
    a.fit()
    b.fit()
    assert any(not torch.equal(before[k], v) for k, v in b.actor.state_dict().items())
    # the reference never moves
    assert all(torch.equal(before[k], v) for k, v in a.ref.state_dict().items())


def test_a_delimiter_absent_from_the_first_rollouts_is_a_warning(policy, caplog):
    with caplog.at_level(logging.WARNING, logger="prmrl"):
        PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**SMALL), splitter="@@@").fit()
    assert any("'@@@' occurs in none of the 4 responses" in r.message for r in caplog.records)


def test_a_nan_loss_stops_with_one_line(policy):
    tr = PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**{**SMALL, "iterations": 4, "critic_lr": 1e8}))
    with pytest.raises(NonFiniteError, match=r"^iteration \d: (losses|grad_norm)/\w+ is (nan|inf); stopped"):
        tr.fit()


def test_cli_critic_lr_1e8_exits_3_with_one_line_and_a_checkpoint(policy, tmp_path):
    r = subprocess.run([sys.executable, "-m", "prmrl.cli", "train", f"model.policy={policy}",
                        "ppo.critic_lr=1e8", "ppo.iterations=6", "ppo.prompts_per_iteration=8",
                        "ppo.max_new_tokens=24", "eval.every=0", "run.progress=false", "run.save_every=1",
                        f"run.out_dir={tmp_path / 'run'}", "task.n_train=200", "task.n_test=20",
                        "run.threads=1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and ("is nan" in lines[0] or "is inf" in lines[0]), r.stderr
    it = int(lines[0].split("iteration ")[1].split(":")[0])
    assert it >= 1, lines          # the first critic step is finite; its result blows up the next
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == f"iter-{it:06d}"


@pytest.mark.parametrize("advantage, credit, kl_mode, agg", [
    ("grpo", "return_to_go", "loss", "token_mean"),
    ("rloo", "min_form", "reward", "seq_mean_token_sum"),
    ("reinforce_pp", "process_supervision", "reward", "constant"),
])
def test_critic_free_estimators_learn_without_a_critic(tmp_path, advantage, credit, kl_mode, agg):
    """No critic is built; a reward for starting with a digit is learned (the policy moves)."""
    model, tok = build_tiny_policy(seed=1, hidden=32, layers=2, heads=2, intermediate=64)
    tr = PPOTrainer(model, tokenizer=tok, prompts=["Say:"] * 8, success=lambda p, c, **_: [
        float(x[:1].isdigit()) for x in c],
        prm=lambda p, steps, **_: [[0.5] * len(s) for s in steps],
        reward=RewardConfig(shaping="clip", prm="callable", prm_alpha=0.1),
        ppo=PPOConfig(iterations=10, prompts_per_iteration=8, samples_per_prompt=8, max_new_tokens=2,
                      minibatch_size=64, ppo_epochs=2, actor_lr=5e-3, kl_beta=0.0, advantage=advantage,
                      credit=credit, kl_mode=kl_mode, loss_agg=agg))
    assert tr.critic is None and tr.critic_opt is None
    torch.manual_seed(0)
    rates = [m["rollout/success"] for m in tr.fit()["history"]]
    assert sum(rates[-2:]) / 2 > sum(rates[:2]) / 2 + 0.15, rates
    assert "losses/value" not in tr.fit(iterations=11)["last"]


def test_critic_free_run_resumes_from_its_checkpoint(policy, tmp_path):
    ppo = PPOConfig(**{**SMALL, "iterations": 3}, advantage="grpo")
    a = PPOTrainer(str(policy), task=task(), ppo=ppo, output_dir=tmp_path / "a", save_every=1)
    a.fit()
    b = PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**{**SMALL, "iterations": 2}, advantage="grpo"),
                   output_dir=tmp_path / "b", save_every=1)
    b.fit()
    b2 = PPOTrainer(str(policy), task=task(), ppo=ppo, output_dir=tmp_path / "b")
    b2.fit(resume=True)
    for k, v in a.actor.state_dict().items():
        assert torch.equal(v, b2.actor.state_dict()[k]), k
    with pytest.raises(ValueError, match="without a critic"):
        PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**SMALL), output_dir=tmp_path / "b").load_state(
            tmp_path / "b" / "checkpoints" / "iter-000003")


def test_resume_with_other_settings_is_refused_and_iterations_may_grow(policy, tmp_path):
    run = tmp_path / "r"
    PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**SMALL), output_dir=run, save_every=1).fit()
    changed = PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**{**SMALL, "actor_lr": 1e-3}),
                         output_dir=run)
    with pytest.raises(ValueError, match=r"ppo.actor_lr: 0.0001 -> 0.001"):
        changed.fit(resume=True)
    longer = PPOTrainer(str(policy), task=task(), ppo=PPOConfig(**{**SMALL, "iterations": 3}),
                        output_dir=run, save_every=1)
    assert longer.fit(resume=True)["last"]["iteration"] == 2


@pytest.mark.parametrize("advantage, by, whole_groups", [("grpo", "auto", True), ("gae", "auto", True),
                                                        ("gae", "answer", False)])
def test_micro_batches_hold_whole_groups(policy, monkeypatch, advantage, by, whole_groups):
    """ppo.minibatch_by=auto: a prompt's answers stay in one micro-batch (so its prompt is
    computed once), for every estimator; "answer" shuffles them one by one."""
    from prmrl.rl.batch import RolloutBatch

    seen = []
    real = RolloutBatch.minibatch
    monkeypatch.setattr(RolloutBatch, "minibatch", lambda self, idx: seen.append(idx.tolist()) or real(self, idx))
    ppo = PPOConfig(**{**SMALL, "iterations": 3, "prompts_per_iteration": 4, "samples_per_prompt": 4,
                       "minibatch_size": 8, "micro_batch_size": 4}, advantage=advantage, minibatch_by=by)
    torch.manual_seed(0)
    PPOTrainer(str(policy), task=task(), ppo=ppo).fit()
    assert seen and all(len(rows) == 4 for rows in seen)
    groups = [sorted({r // 4 for r in rows}) for rows in seen]
    assert all(len(g) == 1 for g in groups) == whole_groups, seen
