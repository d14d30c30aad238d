"""PRM input formats: how (question, steps) becomes token ids, and where each step is scored.

A format returns ``PRMInput(input_ids, positions)``: ``positions[k]`` is the index in
``input_ids`` where step k's score is read, and ``step_probs`` turns the model's output at those
positions into probabilities. Every id comes from the tokenizer in use, never from a constant: a
tag tokenised differently than expected would otherwise silently point at the wrong tokens
(docs/method.md, "Pitfalls"), so each format checks the token it lands on.

| name | model | text | read at | probability |
|---|---|---|---|---|
| native | TokenClassification, 1 label | prompt + delimiter.join(steps) | token holding each step's last char | sigmoid |
| math_shepherd | CausalLM | question + " " + "s1 ки\\ns2 ки..." | each tag token | softmax over ["+", "-"] -> P(+) |
| qwen_prm | TokenClassification, 2 labels | chat template, steps each followed by <extra_0> | each <extra_0> | softmax[1] |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from prmrl.prompts import QUESTION_TEMPLATE

if TYPE_CHECKING:       # transformers loads in seconds: only the formats' users pay for it
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class PRMInput:
    input_ids: list[int]
    positions: list[int]  # one per step, increasing; index into input_ids


def _encode_with_offsets(tokenizer: PreTrainedTokenizerBase, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    if not tokenizer.is_fast:
        raise ValueError("PRM formats need a fast tokenizer (character offsets of each token)")
    enc = tokenizer(text, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def token_at_char(offsets: list[tuple[int, int]], char: int) -> int:
    """Index of the token that holds character ``char``: the last non-empty token starting at or
    before it. A token merging the char with what follows (".\\n\\n") is that token; of the byte
    pieces of one character (same offsets) it is the last, which completes the character."""
    best = -1
    for i, (start, end) in enumerate(offsets):
        if end > start and start <= char:
            best = i
    if best < 0:
        raise ValueError(f"no token covers character {char}")
    return best


def _step_ends(prefix_len: int, steps: list[str], joiner_len: int) -> list[int]:
    """Character index of the last character of each step in prefix + joiner.join(steps)."""
    ends, pos = [], prefix_len
    for k, s in enumerate(steps):
        if not s:
            raise ValueError(f"step {k} is empty: it has no last character to score")
        pos += len(s)
        ends.append(pos - 1)
        pos += joiner_len
    return ends


class NativeFormat:
    """prmrl's own PRMs: a scalar head read at the token holding each step's last character.

    Reading at a token that merges the step end with the delimiter (".\\n" in a BPE tokenizer)
    means that step's score has also seen the delimiter; training places labels on the same token
    (via this class), so train and score agree. Two step ends inside one token (a
    whitespace-only step merged with its neighbours) share that token and its score.
    """

    name = "native"
    num_labels = 1

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompt_template: str = QUESTION_TEMPLATE,
                 delimiter: str = "\n"):
        self.tokenizer, self.prompt_template, self.delimiter = tokenizer, prompt_template, delimiter

    def text(self, question: str, steps: list[str]) -> str:
        return self.prompt_template.format(question=question) + self.delimiter.join(steps)

    def encode(self, question: str, steps: list[str]) -> PRMInput:
        prompt = self.prompt_template.format(question=question)
        ids, offsets = _encode_with_offsets(self.tokenizer, prompt + self.delimiter.join(steps))
        ends = _step_ends(len(prompt), steps, len(self.delimiter))
        return PRMInput(ids, [token_at_char(offsets, c) for c in ends])

    def prompt_length(self, question: str) -> int:
        """Tokens before the first step: the encoding of the prompt alone."""
        return len(self.tokenizer(self.text(question, []))["input_ids"])

    def step_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(K, 1) head outputs at the step positions -> (K,) probabilities."""
        return torch.sigmoid(logits.float()[:, 0])


class MathShepherdFormat:
    """peiyi9979/math-shepherd-mistral-7b-prm: a causal LM whose next-token logits at each step
    tag give P(+) = softmax(logit["+"], logit["-"])[0], as in that model card's example."""

    name = "math_shepherd"
    num_labels = None  # a causal LM: the full vocabulary

    def __init__(self, tokenizer: PreTrainedTokenizerBase, tag: str = "ки", good: str = "+", bad: str = "-"):
        self.tokenizer, self.tag = tokenizer, tag
        # Encoded together, as the model card does: "+ -" -> the two ids the model was trained on.
        cand = tokenizer.encode(f"{good} {bad}", add_special_tokens=False)
        if len(cand) != 2:
            raise ValueError(f"'{good} {bad}' is {len(cand)} tokens in this tokenizer, expected 2")
        self.good_id, self.bad_id = cand
        tag_ids = tokenizer.encode(f" {tag}", add_special_tokens=False)
        self.tag_id = tag_ids[-1]

    def text(self, question: str, steps: list[str]) -> str:
        return f"{question} " + "\n".join(f"{s} {self.tag}" for s in steps)

    def encode(self, question: str, steps: list[str]) -> PRMInput:
        ids, offsets = _encode_with_offsets(self.tokenizer, self.text(question, steps))
        # The tag's last character sits len(" ки") after each step's last character.
        ends = _step_ends(len(question) + 1, [f"{s} {self.tag}" for s in steps], 1)
        positions = [token_at_char(offsets, c) for c in ends]
        wrong = [p for p in positions if ids[p] != self.tag_id]
        if wrong:
            got = self.tokenizer.convert_ids_to_tokens([ids[p] for p in wrong])
            raise ValueError(f"step tag '{self.tag}' did not tokenise to id {self.tag_id} "
                             f"(got {got}); does a step end in a character that merges with it?")
        return PRMInput(ids, positions)

    def step_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(K, V) LM logits at the tag positions -> (K,) P("+")."""
        pair = logits.float()[:, [self.good_id, self.bad_id]]
        return torch.softmax(pair, dim=-1)[:, 0]


QWEN_MATH_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


class QwenPRMFormat:
    """Qwen2.5-Math-PRM: chat template, assistant turn = steps each followed by ``<extra_0>``, a
    two-class token head read at each ``<extra_0>``; P(right) = softmax(logits)[1].

    The Qwen2.5 tokenizer does not have ``<extra_0>`` as one token; the PRM's does. The format
    adds it as a special token when missing (this changes ``tokenizer``); a model whose embedding
    is too small for the new id must be resized (``model.resize_token_embeddings(len(tok))``).
    """

    name = "qwen_prm"
    num_labels = 2

    def __init__(self, tokenizer: PreTrainedTokenizerBase, system: str = QWEN_MATH_SYSTEM,
                 sep: str = "<extra_0>"):
        self.tokenizer, self.system, self.sep = tokenizer, system, sep
        if len(tokenizer.encode(sep, add_special_tokens=False)) != 1:
            from tokenizers import AddedToken

            tokenizer.add_tokens([AddedToken(sep, special=True, normalized=False)], special_tokens=True)
        sep_ids = tokenizer.encode(sep, add_special_tokens=False)
        if len(sep_ids) != 1:
            raise ValueError(f"'{sep}' is still {len(sep_ids)} tokens after adding it")
        self.sep_id = sep_ids[0]

    def text(self, question: str, steps: list[str]) -> str:
        messages = [
            {"role": "system", "content": self.system},
            {"role": "user", "content": question},
            {"role": "assistant", "content": "".join(s + self.sep for s in steps)},
        ]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)

    def encode(self, question: str, steps: list[str]) -> PRMInput:
        ids = self.tokenizer.encode(self.text(question, steps), add_special_tokens=False)
        positions = [i for i, t in enumerate(ids) if t == self.sep_id]
        if len(positions) != len(steps):
            raise ValueError(f"{len(positions)} '{self.sep}' tokens for {len(steps)} steps "
                             f"(does the question or a step contain '{self.sep}'?)")
        return PRMInput(ids, positions)

    def step_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(K, 2) head outputs at the separators -> (K,) probabilities of class 1."""
        return torch.softmax(logits.float(), dim=-1)[:, 1]


PRM_FORMATS: dict[str, type] = {
    "native": NativeFormat,
    "math_shepherd": MathShepherdFormat,
    "qwen_prm": QwenPRMFormat,
}


def make_format(name: str, tokenizer: PreTrainedTokenizerBase, **kwargs):
    if name not in PRM_FORMATS:
        raise ValueError(f"unknown PRM format '{name}'; choose one of {sorted(PRM_FORMATS)}")
    return PRM_FORMATS[name](tokenizer, **kwargs)
