"""The real path, on tiny models: two PPO iterations on 16 GSM8K problems with a randomly
initialised Qwen2-architecture policy and PRM that use the real Qwen2.5-Math tokenizer.

Rewards are near zero (the models are random); the point is that every stage runs on real data,
real formats and real token boundaries: the chat template, the "\\n\\n" step splitter on byte-level
BPE tokens, the math-verify grader in its worker processes, the PRM formats (prmrl's native one
and Qwen2.5-Math-PRM's ``<extra_0>`` one) and the placement of step rewards on policy tokens.

A random policy over 151k tokens would almost never write "\\n\\n", so every answer would be one
step and Clip-Delta would give exactly 0. The policy's output head is therefore set to a fixed
distribution over a few dozen real tokens (digits, words, "\\n\\n", the pieces of "\\boxed{",
"<|im_end|>"): answers have several steps and some end early, so step rewards are non-zero and
land inside the responses.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from prmrl.config import load_config
from prmrl.models.factory import save_model
from prmrl.prompts import DEFAULT_SYSTEM_PROMPT
from prmrl.steps import steps_for_batch

# The real tokenizer and the GSM8K files are read from the sibling ../shared folder: without it
# the module skips, naming what is missing.
TOKENIZER = "tokenizers/qwen2.5-math-instruct"
pytestmark = [pytest.mark.slow, pytest.mark.needs_shared(
    TOKENIZER, "data/gsm8k/train.jsonl", "data/gsm8k/test.jsonl")]

# What the narrowed policy head can say (each must be one token in the Qwen2.5 tokenizer).
VOCAB = ["\n\n", "1", "2", "3", "4", "5", "6", "7", "8", "9", "0", " +", " =", " *", ".",
         " The", " answer", " is", " so", " we", " have", " \\", "boxed", "{", "}", " $", "$",
         " apples",
         "<|im_end|>"]


@pytest.fixture(scope="module")
def tokenizer(shared_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(shared_path(TOKENIZER)))


def tiny_qwen2_config(tok, **extra):
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **extra)


@pytest.fixture(scope="module")
def models(tmp_path_factory, tokenizer, shared_path):
    """Policy, native PRM and qwen_prm-format PRM folders, each with its tokenizer."""
    from transformers import AutoTokenizer, Qwen2ForCausalLM, Qwen2ForTokenClassification

    root = tmp_path_factory.mktemp("real")
    torch.manual_seed(0)
    policy = Qwen2ForCausalLM(tiny_qwen2_config(tokenizer, tie_word_embeddings=False))
    ids = [tokenizer.convert_tokens_to_ids(t) if t.startswith("<|") else
           tokenizer.encode(t, add_special_tokens=False) for t in VOCAB]
    assert all(isinstance(i, int) or len(i) == 1 for i in ids), "a VOCAB entry is not one token"
    ids = [i if isinstance(i, int) else i[0] for i in ids]
    with torch.no_grad():
        # A large constant in hidden dimension 0 of every embedding makes every final hidden
        # state point (almost) the same way, so head column 0 alone sets the next-token
        # logits: 16 for VOCAB (they outweigh the 151k other tokens at 0), more for "\n\n",
        # less for "<|im_end|>". The result: random text of a few steps, sometimes ended early.
        policy.model.embed_tokens.weight[:, 0] = 10.0
        logits = torch.full((len(ids),), 16.0)
        logits[VOCAB.index("\n\n")] += 1.5
        logits[VOCAB.index("<|im_end|>")] -= 1.0
        head = torch.zeros_like(policy.lm_head.weight)
        head[ids, 0] = logits / policy.config.hidden_size ** 0.5   # RMSNorm: |h_0| ~ sqrt(hidden)
        policy.lm_head.weight.copy_(head)
    save_model(policy, tokenizer, root / "policy")

    native = Qwen2ForTokenClassification(tiny_qwen2_config(tokenizer, num_labels=1))
    save_model(native, tokenizer, root / "prm_native")

    # Qwen2.5-Math-PRM: a 2-class token head read at "<extra_0>", an added special token there.
    from tokenizers import AddedToken

    qtok = AutoTokenizer.from_pretrained(str(shared_path(TOKENIZER)))
    qtok.add_tokens([AddedToken("<extra_0>", special=True, normalized=False)], special_tokens=True)
    qprm = Qwen2ForTokenClassification(tiny_qwen2_config(qtok, num_labels=2))
    save_model(qprm, qtok, root / "prm_qwen")
    return root


class Spy:
    """Records what the PRM saw and returned, and each iteration's rollout batch."""

    def __init__(self, monkeypatch):
        from prmrl.rewards.scorers import PRMReward
        from prmrl.rl.trainer import PPOTrainer

        self.prm_calls, self.batches = [], []
        prm_call, iteration = PRMReward.__call__, PPOTrainer.iteration

        def spy_prm(scorer, prompts, steps, **cols):
            # The trainer's convention: templated prompts, then columns such as question=.
            out = prm_call(scorer, prompts, steps, **cols)
            questions = cols.get("question", prompts)
            self.prm_calls.append((list(questions), [list(s) for s in steps], out))
            return out

        def spy_iteration(trainer, questions, golds, it):
            b, metrics = iteration(trainer, questions, golds, it)
            self.batches.append(b)
            return b, metrics

        monkeypatch.setattr(PRMReward, "__call__", spy_prm)
        monkeypatch.setattr(PPOTrainer, "iteration", spy_iteration)


@pytest.mark.parametrize("fmt", ["native", "qwen_prm"])
def test_two_ppo_iterations_on_gsm8k(tmp_path, models, tokenizer, monkeypatch, fmt):
    from prmrl.jobs.ppo import run_ppo
    from prmrl.tasks import make_task

    torch.set_num_threads(1)
    prm = models / ("prm_native" if fmt == "native" else "prm_qwen")
    run_dir = tmp_path / "run"
    cfg = load_config(None, [
        "task.name=gsm8k", "task.limit_train=16", "task.limit_test=8",
        'task.step_delimiter="\\n\\n"', f"reward.prm={prm}", f"reward.prm_format={fmt}",
        "reward.shaping=clip_delta", "ppo.iterations=2", "ppo.prompts_per_iteration=4",
        "ppo.samples_per_prompt=2", "ppo.max_new_tokens=32", "ppo.minibatch_size=4",
        "ppo.ppo_epochs=1", "eval.every=0", "run.progress=false", f"run.out_dir={run_dir}"])
    assert cfg.task.step_delimiter == "\n\n"

    # The prompts go through the policy's chat template with the Qwen2.5-Math system prompt.
    task = make_task(cfg.task, tokenizer)
    assert len(task.train_questions) == 16 and len(task.test_questions) == 8
    prompt = task.prompt(task.train_questions[0])
    assert prompt.startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n")
    assert prompt.endswith(f"{task.train_questions[0]}<|im_end|>\n<|im_start|>assistant\n")

    spy = Spy(monkeypatch)
    out = run_ppo(cfg, models / "policy", run_dir)

    # Two iterations logged, every metric finite, the grader's and the PRM's counts reported.
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1]
    for r in rows:
        bad = {k: v for k, v in r.items() if isinstance(v, float) and not math.isfinite(v)}
        assert not bad, f"non-finite metrics: {bad}"
        for key in ("unscorable/success", "unscorable/prm_steps", "rollout/success",
                    "rollout/ungradable_rate", "rollout/step_reward_sum"):
            assert key in r
    assert (Path(out["policy"]) / "config.json").exists()

    # The PRM scored exactly the policy's steps: re-split the sampled tokens and compare.
    assert len(spy.prm_calls) == len(spy.batches) == 2
    n_multi_step = 0
    for (questions, steps, scores), b in zip(spy.prm_calls, spy.batches):
        T = b.n_response
        response_ids = [row[mask.bool()].tolist() for row, mask in
                        zip(b.input_ids[:, -T:], b.response_mask)]
        expected = steps_for_batch(tokenizer, response_ids, "\n\n")
        assert steps == [s.texts for s in expected] == b.step_texts
        assert questions == b.questions and len(questions) == 8        # raw questions, no template
        assert set(questions) <= set(task.train_questions)
        assert [len(s) for s in scores] == [len(s) for s in steps]
        assert all(x is None or 0.0 <= x <= 1.0 for s in scores for x in s)
        n_multi_step += sum(len(s) > 1 for s in steps)

        # Step ends map onto the policy tokens that hold each step's last character.
        for k, s in enumerate(expected):
            S = len(s.end_tokens)
            assert b.step_end_index[k, :S].tolist() == s.end_tokens
            assert not b.step_mask[k, S:].any()
            for text, end in zip(s.texts, s.end_tokens):
                piece = tokenizer.decode(response_ids[k][: end + 1], skip_special_tokens=True)
                assert piece.rstrip().endswith(text[-1])

        # Token rewards = answer reward on the last token + step rewards on step ends - KL.
        placed = b.token_rewards + cfg.ppo.kl_beta * b.kl * b.response_mask
        last = b.response_mask.sum(1) - 1
        for k in range(len(b)):
            want = torch.zeros(T)
            want[last[k]] += b.answer_rewards[k]
            for j in torch.nonzero(b.step_mask[k]).flatten().tolist():
                want[b.step_end_index[k, j]] += b.step_rewards[k, j]
            torch.testing.assert_close(placed[k], want, atol=1e-5, rtol=0)
        # Clip-Delta: each answer's step rewards telescope to its clipped first score (<= 0).
        assert (b.step_rewards.sum(1) <= 1e-6).all()
        assert torch.isfinite(b.token_rewards).all() and torch.isfinite(b.advantages).all()
        # The grader judged every answer (1, 0) or said it could not (NaN, counted).
        graded = b.success_scores[~torch.isnan(b.success_scores)]
        assert set(graded.tolist()) <= {0.0, 1.0}
    assert n_multi_step > 0, "no answer had two steps: step placement was not exercised"
