"""token_logprobs, the production log-prob path of PPO (update and shape phases), against a
full log_softmax on unpadded per-row forwards; and what autograd keeps for its backward."""

from __future__ import annotations

import functools

import pytest
import torch

from prmrl.models.factory import build_tiny_policy
from prmrl.models.forward import token_logprobs
from prmrl.rl import core
from prmrl.rl.core import entropy_from_logits, logprobs_from_logits

PROMPTS = ["Start with 3. (a) 4 more.", "12 (b)", "Start with 12. (a) 2 times. (b) 9 less."]
RESPONSES = ["(a) 3 + 4 = 7.", "x", "(a) 12 * 2 = 24. (b)"]


@pytest.fixture(scope="module")
def setup():
    model, tok = build_tiny_policy(seed=0)
    model.eval()         # no dropout: padded and unpadded forwards must be comparable
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    p, r = [enc(s) for s in PROMPTS], [enc(s) for s in RESPONSES]
    P, T = max(map(len, p)), max(map(len, r))
    pad = tok.pad_token_id
    ids = torch.full((len(p), P + T), pad, dtype=torch.long)
    am = torch.zeros_like(ids)
    for i, (pi, ri) in enumerate(zip(p, r)):
        ids[i, P - len(pi):P] = torch.tensor(pi)      # left-padded prompt
        ids[i, P:P + len(ri)] = torch.tensor(ri)      # right-padded response
        am[i, P - len(pi):P + len(ri)] = 1
    mask = (torch.arange(T)[None] < torch.tensor([len(x) for x in r])[:, None])   # (B, T)
    return model, p, r, ids, am, mask, T


def reference(model, p, r, temperature=1.0):
    """Per row, unpadded: full float32 log_softmax of logits / temperature at the response."""
    lps, ents = [], []
    for pi, ri in zip(p, r):
        ids = torch.tensor([pi + ri])
        logits = model(input_ids=ids).logits[0, len(pi) - 1: -1].float() / temperature
        logp = torch.log_softmax(logits, -1)
        lps.append(logp.gather(-1, torch.tensor(ri)[:, None]).squeeze(-1))
        ents.append(torch.distributions.Categorical(logits=logits.detach()).entropy())
    return lps, ents


def grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    out = {n: q.grad.clone() for n, q in model.named_parameters() if q.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_entropy_and_grads_match_unpadded_full_log_softmax(setup, temperature):
    model, p, r, ids, am, mask, T = setup
    lp, ent = token_logprobs(model, ids, am, T, temperature)
    assert lp.shape == ent.shape == (len(p), T)
    assert lp.dtype == ent.dtype == torch.float32
    assert lp.requires_grad and not ent.requires_grad and ent.grad_fn is None
    ref_lp, ref_ent = reference(model, p, r, temperature)
    for i, (a, b) in enumerate(zip(ref_lp, ref_ent)):
        n = len(a)
        torch.testing.assert_close(lp[i, :n], a, atol=1e-5, rtol=0)
        torch.testing.assert_close(ent[i, :n], b, atol=1e-5, rtol=0)
    # gradients w.r.t. every parameter, through the custom backward
    g = grads(model, torch.where(mask, lp, 0.0).sum())
    g_ref = grads(model, sum(a.sum() for a in reference(model, p, r, temperature)[0]))
    assert g.keys() == g_ref.keys() and len(g) > 0
    for name in g:
        torch.testing.assert_close(g[name], g_ref[name], atol=1e-5, rtol=0, msg=name)


def test_chunked_paths_agree(setup, monkeypatch):
    """Chunks of part of a row and of several rows give the same log-probs, entropy, grads."""
    model, p, r, ids, am, mask, T = setup
    lp, ent = token_logprobs(model, ids, am, T, 0.7)
    g = grads(model, torch.where(mask, lp, 0.0).sum())
    V = model.config.vocab_size
    for rows in (1, 3, 2 * T):      # a chunk: 1 position, 3 positions, 2 whole batch rows
        monkeypatch.setattr(core, "_CHUNK_ELEMS", rows * V)
        lp2, ent2 = token_logprobs(model, ids, am, T, 0.7)
        torch.testing.assert_close(lp2, lp, atol=1e-6, rtol=0)
        torch.testing.assert_close(ent2, ent, atol=1e-6, rtol=0)
        g2 = grads(model, torch.where(mask, lp2, 0.0).sum())
        for name in g:
            torch.testing.assert_close(g2[name], g[name], atol=1e-6, rtol=1e-5)


def test_entropy_can_be_skipped_and_no_grad_works(setup):
    model, p, r, ids, am, mask, T = setup
    lp, ent = token_logprobs(model, ids, am, T, entropy=False)
    assert ent is None and lp.requires_grad
    with torch.no_grad():                       # the shape phase
        lp2, _ = token_logprobs(model, ids, am, T)
    assert not lp2.requires_grad
    torch.testing.assert_close(lp2, lp.detach(), atol=0, rtol=0)
    # an empty response: (B, 0), not the whole row
    lp0, ent0 = token_logprobs(model, ids, am, 0)
    assert lp0.shape == ent0.shape == (len(p), 0)


def test_bf16_model_matches_float32_within_bf16_tolerance(setup):
    model, p, r, ids, am, mask, T = setup
    lp32, ent32 = token_logprobs(model, ids, am, T, 0.7)
    half = build_tiny_policy(seed=0)[0].to(torch.bfloat16).eval()
    lp16, ent16 = token_logprobs(half, ids, am, T, 0.7)
    assert lp16.dtype == ent16.dtype == torch.float32 and lp16.requires_grad
    m = mask
    # bf16 weights and activations: ~3 significant digits through 2 layers
    torch.testing.assert_close(lp16[m], lp32[m].detach(), atol=5e-2, rtol=2e-2)
    torch.testing.assert_close(ent16[m], ent32[m], atol=5e-2, rtol=2e-2)
    g = grads(half, torch.where(m, lp16, 0.0).sum())
    assert all(t.dtype == torch.bfloat16 and torch.isfinite(t).all() for t in g.values())


def test_bf16_logits_computed_in_float32():
    """On the same bf16 logits the selective path equals float32 math on their exact values
    (so it is as precise as upcasting the whole tensor), and so does its gradient."""
    torch.manual_seed(0)
    x16 = (torch.randn(3, 5, 97) * 4).bfloat16().requires_grad_()
    labels = torch.randint(0, 97, (3, 5))
    x32 = x16.detach().float().requires_grad_()
    w = torch.randn(3, 5)
    for tau in (1.0, 0.7):
        lp = logprobs_from_logits(x16, labels, tau)
        ref = torch.log_softmax(x32 / tau, -1).gather(-1, labels[..., None]).squeeze(-1)
        assert lp.dtype == torch.float32
        torch.testing.assert_close(lp, ref, atol=1e-5, rtol=0)
        (g16,) = torch.autograd.grad((lp * w).sum(), x16)
        (g32,) = torch.autograd.grad((ref * w).sum(), x32)
        assert g16.dtype == torch.bfloat16
        torch.testing.assert_close(g16.float(), g32, atol=1e-2, rtol=1e-2)   # bf16 rounding
        torch.testing.assert_close(entropy_from_logits(x16.detach(), tau),
                                   torch.distributions.Categorical(logits=x32.detach() / tau).entropy(),
                                   atol=1e-5, rtol=0)


def saved_for_backward(fn, *args):
    """Run ``fn(*args)`` recording every tensor autograd saves for backward; returns
    (output, saved tensors)."""
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*args)
    return out, saved


def shares_storage(a, b):
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_backward_keeps_no_extra_vocab_sized_tensor(dtype, temperature):
    """What is asserted: among the tensors autograd saves while logprobs_from_logits runs on a
    (B, T, V) leaf, every tensor whose last dim is V is the input logits itself (same storage),
    and everything else it saves adds up to less than B*T*V/8 bytes (the (B, T) logsumexp and
    labels). So backward holds no float32 (B, T, V) log-softmax, no float32 copy of bf16 logits
    and no temperature-scaled copy. It fails if the function saves any new tensor with V in its
    last dim (e.g. a log_softmax output, an upcast or divided copy, or per-row/per-chunk pieces
    of those), which the reference full log_softmax path below does. Memory of tensors that
    live only during the forward (chunk temporaries) is not measured here."""
    B, T, V = 2, 7, 1000
    torch.manual_seed(0)
    logits = torch.randn(B, T, V).to(dtype).requires_grad_()
    labels = torch.randint(0, V, (B, T))

    def is_vocab_sized(t):
        return t.dim() > 0 and t.shape[-1] == V

    out, saved = saved_for_backward(logprobs_from_logits, logits, labels, temperature)
    assert out.requires_grad and saved, "nothing saved: the hooks did not see the backward graph"
    vocab_sized = [t for t in saved if is_vocab_sized(t)]
    assert vocab_sized and all(shares_storage(t, logits) for t in vocab_sized)
    other = sum(t.numel() * t.element_size() for t in saved if not is_vocab_sized(t))
    assert other < B * T * V // 8
    # The check is not vacuous: the old path (upcast, scale, full log_softmax) is flagged.
    old = lambda x, y, tau: torch.log_softmax(x.float() / tau, -1).gather(-1, y[..., None])  # noqa: E731
    _, saved_old = saved_for_backward(old, logits, labels, temperature)
    assert any(is_vocab_sized(t) and not shares_storage(t, logits) for t in saved_old)


def test_shared_prompts_give_the_same_logprobs_entropies_and_grads(setup):
    """A group's answers share their prompt: with share_prompts each distinct prompt is run
    once and its KV cache indexed out to its rows; log-probs, entropies and gradients are those
    of the plain forward (float rounding), rows in any order."""
    model, p, r, ids, am, mask, T = setup
    order = torch.tensor([0, 2, 0, 1, 2, 0])     # prompts 0 and 2 repeated, rows interleaved
    ids2, am2 = ids[order], am[order]
    m2 = mask[order].float()
    lp, ent = token_logprobs(model, ids2, am2, T)
    lp_s, ent_s = token_logprobs(model, ids2, am2, T, share_prompts=True)
    torch.testing.assert_close(lp_s * m2, lp * m2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent_s * m2, ent * m2, atol=1e-5, rtol=1e-5)
    g, g_s = grads(model, (lp * m2).sum()), grads(model, (lp_s * m2).sum())
    assert g.keys() == g_s.keys()
    for name in g:
        torch.testing.assert_close(g_s[name], g[name], atol=1e-5, rtol=1e-4)


def spy_forward(monkeypatch, model) -> list:
    """The input_ids shape of every call of ``model``'s forward from now on (the list fills)."""
    calls = []
    real = type(model).forward

    @functools.wraps(real)
    def spy(self, *args, **kwargs):
        calls.append(tuple(kwargs["input_ids"].shape))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "forward", spy)
    return calls


def test_shared_prompts_call_the_model_on_distinct_prompts_only(setup, monkeypatch):
    model, p, r, ids, am, mask, T = setup
    calls = spy_forward(monkeypatch, model)
    order = torch.tensor([0, 0, 0, 0, 2, 2, 2, 2])   # two groups of four
    token_logprobs(model, ids[order], am[order], T, share_prompts=True)
    P = ids.shape[1] - T
    assert calls == [(2, P), (8, T)]                  # the prompts once, then the answers
    calls.clear()
    token_logprobs(model, ids, am, T, share_prompts=True)   # no prompt repeated: one plain pass
    assert calls == [(3, P + T)]


def test_shared_prompts_give_the_critics_values_and_grads(setup, monkeypatch):
    """The critic's values (a token classifier's scalar head) read at the states the response
    tokens were sampled in: with share_prompts the distinct prompts run once and the values and
    gradients are those of the plain pass; rows in any order."""
    from prmrl.models.factory import critic_from_policy
    from prmrl.models.forward import response_scalars, token_scalars

    model, p, r, ids, am, mask, T = setup
    critic = critic_from_policy(model).eval()
    torch.manual_seed(0)
    torch.nn.init.normal_(critic.score.weight, std=0.5)      # a zero head would make all values 0
    order = torch.tensor([1, 0, 1, 2, 0, 1])
    ids2, am2, m2 = ids[order], am[order], mask[order].float()
    plain = response_scalars(critic, ids2, am2, T)
    torch.testing.assert_close(plain, token_scalars(critic, ids2, am2)[:, -T - 1: -1])
    calls = spy_forward(monkeypatch, critic)
    shared = response_scalars(critic, ids2, am2, T, share_prompts=True)
    assert calls == [(3, ids.shape[1] - T), (6, T)]
    assert shared.dtype == torch.float32 and shared.shape == (6, T)
    torch.testing.assert_close(shared * m2, plain * m2, atol=1e-5, rtol=1e-5)
    g, g_s = grads(critic, (plain * m2).sum()), grads(critic, (shared * m2).sum())
    assert g.keys() == g_s.keys() and any(v.abs().sum() > 0 for v in g.values())
    for name in g:   # values of order 1 (the random head): float rounding up to ~3e-5
        torch.testing.assert_close(g_s[name], g[name], atol=1e-4, rtol=1e-4)
