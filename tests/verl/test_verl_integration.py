"""prmrl inside verl, against the real verl 0.9.1 (its own venv: `make verl-setup`, `make test-verl`).

A verl batch (DataProto) built by hand from the responses prmrl's own trainer scores goes through
the reward manager (loaded by verl's own loader from configs/verl/*.yaml) and verl's
compute_advantage with prmrl's estimators: the token rewards equal PPOTrainer's, token for token,
and the advantages equal the trainer's. The per-answer path verl's trainer takes (reward loop
worker -> run_single -> prmrl's agent loop output -> rm_scores) gives the same rewards. The
recipes in configs/verl/ compose against verl's ppo_trainer.yaml with no key verl lacks and pass
verl's own config checks.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

# verl.protocol, not verl: without verl, this folder (tests/verl) imports as a namespace "verl"
pytest.importorskip("verl.protocol", reason="verl is not installed here: `make verl-setup` builds .venv-verl "
                                            "(verl 0.9.1) and `make test-verl` runs these tests in it")
import verl  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf, open_dict  # noqa: E402
from tensordict import TensorDict  # noqa: E402
from transformers import AutoModelForTokenClassification  # noqa: E402

import prmrl.rl.trainer as trainer_mod  # noqa: E402
from prmrl import PPOConfig, PPOTrainer, RewardConfig, Task  # noqa: E402
from prmrl.config import ConfigError  # noqa: E402
from prmrl.integrations import verl as pv  # noqa: E402
from prmrl.jobs.serve_prm import serve_prm  # noqa: E402
from prmrl.models.factory import build_tiny_policy, save_model, tiny_llama_config  # noqa: E402
from prmrl.models.sampler import Generation, encode_prompts  # noqa: E402
from prmrl.models.tokenizer import build_char_tokenizer  # noqa: E402
from prmrl.tasks import arith  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs" / "verl"
RECIPES = sorted(p.name for p in CONFIGS.glob("qwen*.yaml"))

QUESTIONS = ["12+30=?", "7*6=?"]
GOLDS = ["42", "42"]
N = 3          # answers per prompt (a GRPO group)
# prompt-major, N per question; None = no EOS (truncated). Right, wrong, repeated steps, no
# answer, an empty answer, a long one without EOS.
RESPONSES = [
    ("12+30 = 42\nSo 42\n\\boxed{42}", True),
    ("12+30 = 41\nwait\n12+30 = 41\n\\boxed{41}", True),
    ("", True),
    ("7*6 = 42\n7*6 = 42\n7*6 = 42\n\\boxed{42}", True),
    ("I do not know", True),
    ("7*6 = 40\n40+2 = 42\nthe answer is \\boxed{42} and", False),
]
KL_BETA = 0.05
SHAPING = dict(shaping="clip_delta", eta=0.5, prm_alpha=1.0, success_weight=1.0, unscorable_reward=0.0)


# ---- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer()


@pytest.fixture(scope="module")
def policy_path(tmp_path_factory, tok):
    model, tok = build_tiny_policy(seed=0, hidden=32, layers=1, heads=2, intermediate=64)
    path = tmp_path_factory.mktemp("policy") / "policy"
    save_model(model, tok, path)
    return path


@pytest.fixture(scope="module")
def prm_path(tmp_path_factory):
    """A tiny native PRM (scalar head with large weights, so scores vary), as tests/test_http_prm.py."""
    tok = build_char_tokenizer()
    cfg = tiny_llama_config(tok, hidden=32, layers=2, heads=2, intermediate=64)
    cfg.num_labels = 1
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_config(cfg)
    torch.nn.init.normal_(model.score.weight, std=1.0)
    path = tmp_path_factory.mktemp("prm") / "prm"
    save_model(model, tok, path)
    return path


def arith_task() -> Task:
    return Task(name="arith", train_questions=list(QUESTIONS), train_golds=list(GOLDS), test_questions=[],
                test_golds=[], prompt=arith.prompt,
                grade_batch=lambda rs, gs: [arith.grade(r, g) for r, g in zip(rs, gs)], delimiter="\n")


def generation(tok) -> Generation:
    """RESPONSES as the sampler returns them (prompt-major, right-padded, EOS kept)."""
    prompts = [arith.prompt(q) for q in QUESTIONS]
    pids, pmask = encode_prompts(tok, prompts)
    pids, pmask = pids.repeat_interleave(N, 0), pmask.repeat_interleave(N, 0)
    rows = [tok(text, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if eos else [])
            for text, eos in RESPONSES]
    R = max(len(r) for r in rows) + 2
    ids = torch.full((len(rows), R), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), R), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    truncated = torch.tensor([not eos for _, eos in RESPONSES])
    return Generation(pids, pmask, ids, mask, truncated, tok.batch_decode(ids, skip_special_tokens=True),
                      torch.zeros(ids.shape, dtype=torch.float32))


def trainer_batch(policy_path, tok, monkeypatch, **reward):
    """prmrl's own trainer on RESPONSES: generate (its steps), score, shape (the KL is 0: the
    reference equals the policy). Returns the trainer and its RolloutBatch."""
    gen = generation(tok)
    monkeypatch.setattr(trainer_mod, "generate", lambda *a, **k: gen)
    tr = PPOTrainer(str(policy_path), task=arith_task(),
                    ppo=PPOConfig(samples_per_prompt=N, prompts_per_iteration=len(QUESTIONS), minibatch_size=6,
                                  max_new_tokens=gen.response_ids.shape[1], kl_beta=KL_BETA, advantage="grpo"),
                    reward=RewardConfig(**{**SHAPING, **reward}))
    b = tr.generate(list(QUESTIONS), list(GOLDS))
    b.old_logprobs = None                     # the actor's own log-probs, so the KL is 0
    tr.score(b)
    tr.shape(b)
    assert torch.equal(b.kl, torch.zeros_like(b.kl))        # so token_rewards are the pre-KL rewards
    return tr, b


def verl_batch(tok) -> "verl.DataProto":
    """The same responses as a verl DataProto, as verl's rollout hands it to a reward manager."""
    gen = generation(tok)
    B = gen.response_ids.shape[0]
    batch = TensorDict({"prompts": gen.prompt_ids, "responses": gen.response_ids,
                        "attention_mask": gen.attention_mask, "response_mask": gen.response_mask,
                        "input_ids": gen.input_ids}, batch_size=B)
    qs = [q for q in QUESTIONS for _ in range(N)]
    gs = [g for g in GOLDS for _ in range(N)]
    nt = {"reward_model": np.array([{"style": "rule", "ground_truth": g} for g in gs], dtype=object),
          "extra_info": np.array([{"question": q, "index": i} for i, q in enumerate(qs)], dtype=object),
          "data_source": np.array(["prmrl/arith"] * B, dtype=object),
          "uid": np.array([f"uid-{i // N}" for i in range(B)], dtype=object)}
    return verl.DataProto(batch=batch, non_tensor_batch=nt)


def verl_config(name: str, overrides: list[str] = ()):
    """A recipe composed by hydra as `python -m verl.trainer.main_ppo --config-path configs/verl
    --config-name NAME` composes it."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        return compose(config_name=name.removesuffix(".yaml"), overrides=list(overrides))


def verl_schema():
    """verl's own schema: its ppo_trainer.yaml with every default, in struct mode."""
    cfg_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(cfg_dir), version_base=None):
        cfg = compose(config_name="ppo_trainer")
    OmegaConf.set_struct(cfg, True)
    return cfg


def recipe_config(policy_path, prm_path=None, prm_url=None, recipe="qwen2.5-math-1.5b-clip-delta.yaml"):
    """The recipe, pointed at the tiny policy and the embedded task, as verl's trainer holds it."""
    reward = {"prm_url": prm_url, **({"prm": str(prm_path)} if prm_path else {})}
    cfg = verl_config(recipe, [f"actor_rollout_ref.model.path={policy_path}", f"critic.model.path={policy_path}"])
    with open_dict(cfg):
        cfg.reward.reward_kwargs.prmrl.task = {"name": "arith", "step_delimiter": "\n"}
        cfg.reward.reward_kwargs.prmrl.reward.prm_url = reward["prm_url"]
        cfg.reward.reward_kwargs.prmrl.reward.prm_format = "native"     # the tiny PRM's
        if "prm" in reward:
            cfg.reward.reward_kwargs.prmrl.reward.prm = reward["prm"]
    from verl.experimental.reward_loop.reward_loop import migrate_legacy_reward_impl

    return migrate_legacy_reward_impl(cfg)


def load_manager(cfg, tok):
    """verl's own loader (what its reward loop workers do)."""
    from verl.trainer.ppo.reward import load_reward_manager

    return load_reward_manager(cfg, tok, reward_router_address=None, reward_model_tokenizer=None)


# ---- the reward manager: token rewards equal the trainer's --------------------------------------

def test_reward_manager_token_rewards_equal_prmrls_trainer(policy_path, prm_path, tok, monkeypatch):
    tr, b = trainer_batch(policy_path, tok, monkeypatch, prm=str(prm_path))
    mgr = load_manager(recipe_config(policy_path, prm_path=prm_path), tok)
    assert type(mgr).__name__ == "PRMRLRewardManager"
    out = mgr(verl_batch(tok), return_dict=True)
    rewards = out["reward_tensor"]
    assert rewards.shape == b.token_rewards.shape and rewards.dtype == torch.float32
    assert torch.equal(rewards, b.token_rewards)
    # the step rewards really are dense: more than one non-zero token in some answer
    assert int((rewards != 0).sum(1).max()) > 1
    # diagnostics: per answer (verl's reward_extra_info) and the trainer's batch metrics
    info = out["reward_extra_info"]
    assert set(info) == set(pv.EXTRA_KEYS) and all(len(v) == len(b) for v in info.values())
    assert info["prmrl_steps"] == [float(len(s)) for s in b.step_texts]
    assert info["acc"] == [float(x) for x in torch.nan_to_num(b.success_scores).tolist()]
    assert info["prmrl_truncated"] == [float(t) for t in b.truncated.tolist()]
    ours, theirs = out["prmrl_metrics"], tr.rollout_metrics(b)
    shared = [k for k in theirs if k in ours]
    assert {"rollout/steps_per_answer", "rollout/repeated_step_rate", "rollout/prm_mean_score",
            "rollout/truncation_rate", "rollout/token_reward_sum"} <= set(shared)
    for k in shared:
        assert ours[k] == pytest.approx(theirs[k], abs=1e-6), k
    assert ours["unscorable/success"] == tr.unscorable["success"]
    assert ours["unscorable/prm_steps"] == tr.unscorable["prm_steps"]


def test_prm_over_http_gives_the_same_token_rewards(policy_path, prm_path, tok, monkeypatch):
    _, b = trainer_batch(policy_path, tok, monkeypatch, prm=str(prm_path))
    with serve_prm(str(prm_path), port=0, max_batch=4) as srv:
        mgr = load_manager(recipe_config(policy_path, prm_url=srv.url), tok)
        assert type(mgr.scorers["prm"]).__name__ == "HTTPPRMReward"
        rewards = mgr(verl_batch(tok))
    torch.testing.assert_close(rewards, b.token_rewards, rtol=0, atol=1e-6)


def test_a_prm_server_that_is_down_leaves_steps_unscored_and_counted(policy_path, tok):
    mgr = load_manager(recipe_config(policy_path, prm_url="http://127.0.0.1:9"), tok)
    out = mgr(verl_batch(tok), return_dict=True)
    steps = sum(out["reward_extra_info"]["prmrl_steps"])
    assert steps > 0 and sum(out["reward_extra_info"]["prmrl_unscored_steps"]) == steps
    assert out["prmrl_metrics"]["unscorable/prm_steps"] == steps
    # what is left is the success reward alone, on each answer's last token
    rewards = out["reward_tensor"]
    assert torch.equal((rewards != 0).sum(1) <= 1, torch.ones(len(rewards), dtype=torch.bool))


def test_verls_per_answer_path_gives_the_same_rm_scores(policy_path, prm_path, tok, monkeypatch):
    """verl's V1 trainer: the agent loop asks a reward loop worker per answer (run_single), and
    the agent loop output's as_dict writes rm_scores. With prmrl's agent loop output those are
    the answer's token rewards; assemble_rm_scores (the colocated path) agrees."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    _, b = trainer_batch(policy_path, tok, monkeypatch, prm=str(prm_path))
    worker = RewardLoopWorker(recipe_config(policy_path, prm_path=prm_path))
    assert type(worker.reward_manager).__name__ == "PRMRLRewardManager"
    data = verl_batch(tok)
    plen = data.batch["prompts"].shape[1]
    scores = []
    for i in range(len(data)):
        n = int(data.batch["attention_mask"][i, plen:].sum())
        p = data.batch["prompts"][i][data.batch["attention_mask"][i, :plen].bool()]
        r = data.batch["responses"][i, :n]
        # the one-answer DataProto verl's AgentLoopWorker._compute_score builds
        row = verl.DataProto(
            batch=TensorDict({"prompts": p[None], "responses": r[None], "input_ids": torch.cat([p, r])[None],
                              "attention_mask": torch.ones(1, len(p) + n, dtype=torch.long)}, batch_size=1),
            non_tensor_batch={k: v[i: i + 1] for k, v in data.non_tensor_batch.items()})
        result = asyncio.run(worker.compute_score(row))
        assert isinstance(result["reward_score"], list) and len(result["reward_score"]) == n
        assert result["reward_extra_info"]["prmrl_steps"] == float(len(b.step_texts[i]))
        out = AgentLoopOutput(prompt_ids=p.tolist(), response_ids=r.tolist(), response_mask=[1] * n,
                              metrics=AgentLoopMetrics())
        out.__class__ = pv.PRMRLAgentLoopOutput
        out.reward_score = result["reward_score"]
        d = out.as_dict()
        # the same tokens rewarded; the values to float noise (one answer's PRM pass against the
        # batch's: another batch shape may round differently, 6e-8 on an AVX-512 host)
        assert torch.equal(d["rm_scores"] != 0, b.token_rewards[i, :n] != 0), i
        torch.testing.assert_close(d["rm_scores"], b.token_rewards[i, :n], rtol=0, atol=1e-6)
        scores.append(result["reward_score"])
    assembled = pv.PRMRLRewardManager.assemble_rm_scores(data, scores)
    assert torch.equal(assembled != 0, b.token_rewards != 0)
    torch.testing.assert_close(assembled, b.token_rewards, rtol=0, atol=1e-6)
    # verl's own output class would fail on these rewards: prmrl's agent loop is what carries them
    plain = AgentLoopOutput(prompt_ids=[1], response_ids=[5, 6], response_mask=[1, 1], metrics=AgentLoopMetrics())
    plain.reward_score = [0.5, 1.0]
    with pytest.raises(TypeError), pytest.warns(UserWarning):
        plain.as_dict()


def test_prmrls_agent_loop_is_what_agent_loops_yaml_names():
    import hydra.utils
    from verl.experimental.agent_loop.agent_loop import _agent_loop_registry
    from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop

    entries = OmegaConf.load(CONFIGS / "agent_loops.yaml")
    assert [e.name for e in entries] == [pv.AGENT_LOOP_NAME]
    cls = hydra.utils.get_class(entries[0]._target_)
    assert cls is pv.PRMRLSingleTurnAgentLoop and issubclass(cls, SingleTurnAgentLoop)
    assert _agent_loop_registry[pv.AGENT_LOOP_NAME]["_target_"] == entries[0]._target_


# ---- the estimators: verl's compute_advantage with prmrl's estimators equals the trainer's ------

@pytest.mark.parametrize("estimator,scale", [("grpo", True), ("grpo", False), ("rloo", True),
                                             ("reinforce_pp", True)])
def test_registered_estimators_equal_the_trainers_advantages(policy_path, prm_path, tok, monkeypatch,
                                                             estimator, scale):
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.ray_trainer import compute_advantage

    tr, b = trainer_batch(policy_path, tok, monkeypatch, prm=str(prm_path))
    mgr = load_manager(recipe_config(policy_path, prm_path=prm_path), tok)     # registers the estimators
    data = verl_batch(tok)
    rewards = mgr(data)
    # a KL that is not 0, in the reward: verl's token_level_rewards = scores - beta * kl
    torch.manual_seed(1)
    kl = torch.rand_like(b.kl) * b.response_mask
    data.batch["token_level_scores"] = rewards
    data.batch["token_level_rewards"] = rewards - KL_BETA * kl
    out = compute_advantage(data, adv_estimator=f"prmrl_{estimator}", num_repeat=N,
                            config=AlgoConfig(adv_estimator=f"prmrl_{estimator}", norm_adv_by_std_in_grpo=scale))
    # the KL in the rewards on both sides (verl's use_kl_in_reward; the trainer's kl_mode
    # "reward", which the config refuses for grpo with the std but the estimator math allows)
    tr.ppo = dataclasses.replace(tr.ppo, advantage=estimator, credit="return_to_go", scale_rewards=scale,
                                 kl_mode="reward")
    b.kl = kl
    tr.advantages(b)
    torch.testing.assert_close(out.batch["advantages"], b.advantages, rtol=1e-5, atol=1e-5)
    assert float(b.advantages.abs().sum()) > 0


def test_verls_gae_on_prmrls_rewards_equals_the_trainers(policy_path, prm_path, tok, monkeypatch):
    """The recipes' estimator (the paper's PPO): verl's GAE on the manager's dense rewards, the
    trainer's GAE on its own (same values, lam 0.95, whitened)."""
    from verl.trainer.ppo.core_algos import compute_gae_advantage_return

    tr, b = trainer_batch(policy_path, tok, monkeypatch, prm=str(prm_path))
    rewards = load_manager(recipe_config(policy_path, prm_path=prm_path), tok)(verl_batch(tok))
    torch.manual_seed(2)
    values = torch.randn_like(b.kl) * b.response_mask
    adv, ret = compute_gae_advantage_return(rewards, values, b.response_mask, gamma=1.0, lam=0.95)
    tr.ppo = dataclasses.replace(tr.ppo, advantage="gae", gamma=1.0, lam=0.95, whiten_advantages=True)
    b.old_values = values
    tr.advantages(b)
    m = b.response_mask.bool()
    torch.testing.assert_close(ret[m], b.returns[m], rtol=1e-5, atol=1e-5)
    # Whitening: verl divides by the unbiased std (n - 1), prmrl by the population std (n): a
    # factor sqrt(n / (n - 1)) over the batch's n response tokens (1e-5 relative at 10^5 tokens).
    n = float(m.sum())
    torch.testing.assert_close(adv[m] * (n / (n - 1)) ** 0.5, b.advantages[m], rtol=1e-5, atol=1e-5)


# ---- the recipes against verl's schema -----------------------------------------------------------

def unknown_keys(cfg, schema) -> list[str]:
    """Keys of ``cfg`` that verl's schema lacks: OmegaConf.merge into the struct-mode schema, as a
    command-line override without `+` is checked. ``reward.reward_kwargs`` is verl's open slot for
    a reward manager's own settings (DAPO's manager reads it too); prmrl checks its content."""
    cfg = OmegaConf.to_container(cfg, resolve=False)
    cfg.pop("hydra", None)                 # hydra's own keys: the search path and the defaults list
    cfg.pop("defaults", None)
    bad = [] if cfg.get("reward", {}).pop("reward_kwargs", None) is not None else ["reward.reward_kwargs missing"]
    try:
        OmegaConf.merge(copy.deepcopy(schema), cfg)
    except Exception as e:       # omegaconf.errors.ConfigKeyError names the key
        bad.append(str(e).splitlines()[0])
    return bad


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_composes_against_verls_schema_and_passes_its_checks(recipe, tok, policy_path):
    from verl.experimental.reward_loop.reward_loop import migrate_legacy_reward_impl
    from verl.trainer.ppo.reward import resolve_reward_manager_cls
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    assert len(RECIPES) == 2
    schema = verl_schema()
    raw = OmegaConf.load(CONFIGS / recipe)
    assert unknown_keys(raw, schema) == []
    # verl's model configs load the model's tokenizer and HF config: the tiny policy's stand in
    # for the Qwen checkpoints (no download); every other value is the recipe's
    cfg = verl_config(recipe, [f"actor_rollout_ref.model.path={policy_path}", f"critic.model.path={policy_path}"])
    # what verl's main_ppo checks before it starts Ray, then the trainer's reward migration
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    assert need_critic(cfg) and need_reference_policy(cfg)
    cfg = migrate_legacy_reward_impl(cfg)
    # the sections verl turns into its dataclasses (RewardManagerConfig is not one: in verl 0.9.1
    # its __post_init__ calls a BaseConfig.__post_init__ that does not exist; verl resolves the
    # manager from the DictConfig, as resolve_reward_manager_cls below)
    for node in (cfg.algorithm, cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout, cfg.critic,
                 cfg.actor_rollout_ref.rollout.agent, cfg.actor_rollout_ref.model):
        omega_conf_to_dataclass(node)
    assert resolve_reward_manager_cls(cfg) is pv.PRMRLRewardManager
    pv.check_verl_config(cfg)
    settings = pv.Settings.from_verl_config(cfg)
    assert settings.reward.shaping == "clip_delta" and settings.reward.eta == 0.5
    assert settings.reward.prm_url == "http://PRM_HOST:8000" and settings.reward.prm_format == "qwen_prm"
    assert settings.task.name == "math500" and settings.task.step_delimiter == "\n\n"
    assert cfg.algorithm.adv_estimator == "gae" and cfg.algorithm.use_kl_in_reward
    assert cfg.algorithm.kl_ctrl.kl_coef == KL_BETA and cfg.algorithm.lam == 0.95
    assert cfg.actor_rollout_ref.rollout.name == "vllm" and cfg.actor_rollout_ref.actor.strategy == "fsdp"


@pytest.mark.parametrize("recipe", RECIPES)
def test_launch_scripts_command_line_composes_and_passes_verls_checks(recipe, policy_path, tmp_path):
    """scripts/verl_launch.sh on 2 nodes x 8 GPUs (DRY_RUN: it prints verl's command line): the
    overrides compose, the scaled batch sizes pass verl's divisibility checks, the PRM URL lands."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    env = {**os.environ, "ROLE": "head", "DRY_RUN": "1", "NNODES": "2", "GPUS_PER_NODE": "8",
           "PRM_HOST": "10.0.0.9", "RECIPE": recipe.removesuffix(".yaml"), "PYTHON": sys.executable,
           "DATA_DIR": str(tmp_path)}
    out = subprocess.run(["bash", str(REPO / "scripts" / "verl_launch.sh"), "trainer.total_training_steps=3"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    args = out.stdout.splitlines()[1:]
    assert args[:2] == ["-m", "verl.trainer.main_ppo"]
    assert args[args.index("--config-path") + 1] == str(CONFIGS)
    assert args[args.index("--config-name") + 1] == recipe.removesuffix(".yaml")
    overrides = args[args.index("--config-name") + 2:]
    cfg = verl_config(recipe, overrides + [f"actor_rollout_ref.model.path={policy_path}",
                                           f"critic.model.path={policy_path}"])
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    base = OmegaConf.load(CONFIGS / recipe)
    assert cfg.trainer.nnodes == 2 and cfg.trainer.total_training_steps == 3
    assert cfg.data.train_batch_size == 2 * base.data.train_batch_size
    assert cfg.actor_rollout_ref.actor.ppo_mini_batch_size == 2 * base.actor_rollout_ref.actor.ppo_mini_batch_size
    assert cfg.data.train_files == str(tmp_path / "train.parquet")
    assert pv.Settings.from_verl_config(cfg).reward.prm_url == "http://10.0.0.9:8000"
    bad = subprocess.run(["bash", str(REPO / "scripts" / "verl_launch.sh")], env={**env, "GPUS_PER_NODE": "3"},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "multiple of 8" in bad.stderr


def test_schema_check_catches_a_key_verl_lacks():
    schema = verl_schema()
    raw = OmegaConf.load(CONFIGS / RECIPES[0])
    raw.algorithm.adv_estimater = "gae"                  # a typo
    assert unknown_keys(raw, schema) and "adv_estimater" in unknown_keys(raw, schema)[0]


def test_prmrls_section_is_checked_as_a_prmrl_config(policy_path):
    cfg = recipe_config(policy_path, prm_url="http://127.0.0.1:9")
    with open_dict(cfg):
        cfg.reward.reward_kwargs.prmrl.reward.shapping = "clip"
    with pytest.raises(ConfigError, match="shapping"):
        pv.Settings.from_verl_config(cfg)
    cfg = recipe_config(policy_path, prm_url="http://127.0.0.1:9")
    cfg.reward.reward_kwargs.prmrl.reward.eta = "x"
    with pytest.raises(ConfigError, match="eta"):
        pv.Settings.from_verl_config(cfg)


def test_manager_refuses_a_config_whose_rewards_would_not_reach_training(policy_path, tok):
    cfg = recipe_config(policy_path, prm_url="http://127.0.0.1:9")
    cfg.actor_rollout_ref.rollout.agent.default_agent_loop = "single_turn_agent"
    with pytest.raises(ConfigError, match="default_agent_loop=prmrl_single_turn"):
        load_manager(cfg, tok)


def test_prepare_data_rows_read_back(tmp_path):
    import pandas as pd

    from prmrl.config import TaskConfig

    paths = pv.write_verl_dataset(TaskConfig(name="arith", n_train=5, n_test=3), tmp_path)
    df = pd.read_parquet(paths["train"])
    assert len(df) == 5 and set(df.columns) >= {"prompt", "reward_model", "extra_info", "data_source"}
    row = df.iloc[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["extra_info"]["question"] == row["prompt"][1]["content"]
    assert row["reward_model"]["ground_truth"]
    assert len(pd.read_parquet(paths["test"])) == 3


# ---- the real path: Qwen2.5-Math's tokenizer, the math grader, a qwen_prm-format PRM ----------

QWEN = "tokenizers/qwen2.5-math-instruct"
MATH_RESPONSES = [   # (steps joined by blank lines, as Qwen2.5-Math writes; EOS or not)
    ("We add the numbers.\n\n$1 + 1 = 2$.\n\nThe answer is $\\boxed{{{gold}}}$.", True),
    ("We add the numbers.\n\nSo the result is 3.\n\nThe answer is $\\boxed{{3}}$.", True),
    ("Hmm.\n\nHmm.\n\nI cannot tell", True),
    ("Let us think.\n\nFirst, $x = \\frac{{1}}{{2}}$.\n\nThen", False),
]


@pytest.mark.needs_shared(f"{QWEN}/tokenizer.json", "data/math500/test.jsonl")
def test_real_tokenizer_math_grader_and_qwen_prm_format(shared_path, tmp_path, monkeypatch):
    """BPE tokens (".\\n\\n" merged into one token), math-verify grading and the qwen_prm format:
    the manager's token rewards equal the trainer's; prepare-data's rows render through the
    chat template to prmrl's own prompt."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, Qwen2ForTokenClassification

    from prmrl.config import TaskConfig
    from prmrl.grading import MathGrader
    from prmrl.prompts import render_prompt
    from prmrl.tasks.math_data import load_problems

    tok = AutoTokenizer.from_pretrained(str(shared_path(QWEN)))
    torch.manual_seed(0)

    def qwen(**extra):
        return Qwen2Config(vocab_size=len(tok) + 1, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048, **extra)

    save_model(Qwen2ForCausalLM(qwen()), tok, tmp_path / "policy")
    prm_model = Qwen2ForTokenClassification(qwen(num_labels=2))
    torch.nn.init.normal_(prm_model.score.weight, std=1.0)
    save_model(prm_model, tok, tmp_path / "prm")

    problems, _ = load_problems("math500", "test", path=shared_path("data/math500/test.jsonl"), limit=1)
    q, gold = problems[0].question, problems[0].answer
    # prepare-data's rows: verl's dataset gives the messages prmrl renders
    from verl.utils.dataset.rl_dataset import RLHFDataset

    rows = pv.verl_rows([q], [gold], data_source="prmrl/math500", split="test")
    import pandas as pd

    pd.DataFrame(rows).to_parquet(tmp_path / "test.parquet")
    ds = RLHFDataset(str(tmp_path / "test.parquet"), tok,
                     OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 1024,
                                       "filter_overlong_prompts": False, "cache_dir": str(tmp_path / "cache")}))
    raw = list(ds[0]["raw_prompt"])
    assert tok.apply_chat_template(raw, add_generation_prompt=True, tokenize=False) == render_prompt(tok, q)
    assert ds[0]["reward_model"]["ground_truth"] == gold and ds[0]["extra_info"]["question"] == q

    # the same responses through prmrl's trainer and the verl manager
    prompt = render_prompt(tok, q)
    pids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    texts = [(t.format(gold=gold), eos) for t, eos in MATH_RESPONSES]
    ids_rows = [tok(t, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if eos else [])
                for t, eos in texts]
    R = max(map(len, ids_rows))
    ids = torch.full((len(ids_rows), R), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(ids_rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
    B = len(ids_rows)
    gen = Generation(pids.repeat(B, 1), torch.ones(B, pids.shape[1], dtype=torch.long), ids, mask,
                     torch.tensor([not e for _, e in texts]), tok.batch_decode(ids, skip_special_tokens=True),
                     torch.zeros(ids.shape))
    monkeypatch.setattr(trainer_mod, "generate", lambda *a, **k: gen)
    grader = MathGrader(num_workers=1)
    task = Task(name="math500", train_questions=[q], train_golds=[gold], test_questions=[], test_golds=[],
                prompt=lambda x: render_prompt(tok, x), grade_batch=grader.grade_batch, delimiter="\n\n")
    reward = dict(prm=str(tmp_path / "prm"), prm_format="qwen_prm", shaping="clip_delta", eta=0.5)
    tr = PPOTrainer(str(tmp_path / "policy"), task=task, reward=RewardConfig(**reward),
                    ppo=PPOConfig(samples_per_prompt=B, prompts_per_iteration=1, minibatch_size=B,
                                  max_new_tokens=R, advantage="grpo"))
    b = tr.generate([q], [gold])
    b.old_logprobs = None
    tr.score(b)
    tr.shape(b)
    assert b.success_scores.tolist()[:2] == [1.0, 0.0]
    assert any(len(s) >= 3 for s in b.step_texts)

    raw_prompts = np.empty(B, dtype=object)         # one message list per row, as verl's batch holds them
    raw_prompts[:] = [raw] * B
    data = verl.DataProto(
        batch=TensorDict({"prompts": gen.prompt_ids, "responses": ids, "attention_mask": gen.attention_mask},
                         batch_size=B),
        non_tensor_batch={"reward_model": np.array([{"ground_truth": gold}] * B, dtype=object),
                          "raw_prompt": raw_prompts, "uid": np.array(["u"] * B, dtype=object)})
    # the manager's own scorers: the math grader for math500, the qwen_prm PRM from its path
    mgr = pv.PRMRLRewardManager(tokenizer=tok, settings={"task": {"name": "math500", "step_delimiter": "\n\n"},
                                                         "reward": reward})
    out = mgr(data, return_dict=True)
    assert torch.equal(out["reward_tensor"], b.token_rewards)
    assert out["reward_extra_info"]["prmrl_steps"] == [float(len(s)) for s in b.step_texts]
    # the question the PRM read came from raw_prompt (no extra_info here): the raw question
    assert pv.question_of({"raw_prompt": raw}, "") == q
    grader.close()
