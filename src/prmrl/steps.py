"""Split a policy response into reasoning steps and find each step's last policy token.

Steps are character spans of the decoded response, not token spans: a PRM with another
tokenizer scores the same step texts, and only each step's *end* is mapped back onto the
policy's tokens, where the per-step reward is placed (docs/method.md, "Pitfalls": PRM and policy
tokens do not line up). Example with the char tokenizer, delimiter "\\n":

    response "37*4=148\\n148+12=160\\n\\\\boxed{160}</s>"
    spans    [0, 8) [9, 19) [20, 31)            texts "37*4=148", "148+12=160", "\\\\boxed{160}"
    end_tokens [7, 18, 30]                      the tokens "8", "0", "}"; "</s>" is zero-width

With a BPE tokenizer a step's last character may share a token with the delimiter (Qwen2.5
merges ".\\n\\n" into one token); that token is then the step's last token.
"""

from __future__ import annotations

import weakref
from bisect import bisect_left
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Callable, Sequence

REPLACEMENT = "\ufffd"  # what decode() shows for the bytes of an incomplete UTF-8 character


@dataclass(frozen=True)
class StepSpan:
    """Characters [start, end) of one step in the response text, without delimiter or
    surrounding whitespace."""

    start: int
    end: int


@dataclass
class ResponseSteps:
    """The steps of one response; the three lists have one entry per step (S of them)."""

    texts: list[str]  # step text, as a PRM should see it
    spans: list[StepSpan]  # where each step lies in decode(token_ids, skip_special_tokens=True)
    # Index into token_ids of each step's last token. Non-decreasing: two steps share a token
    # only when one token holds a delimiter and a whole step (e.g. delimiter "." inside "e.g").
    end_tokens: list[int]


# ---------------------------------------------------------------------------------------------
# Text -> steps


def split_steps(text: str, delimiter: str = "\n") -> list[StepSpan]:
    """Split `text` on `delimiter`; drop whitespace-only pieces, trim whitespace off the others.

    "a\\n\\n b " with delimiter "\\n" -> [StepSpan(0, 1), StepSpan(4, 5)].
    """
    if not delimiter:
        raise ValueError("split_steps: delimiter must be a non-empty string")
    spans, pos, step = [], 0, len(delimiter)
    for piece in text.split(delimiter):
        left = piece.lstrip()
        if left:
            lo = pos + len(piece) - len(left)
            spans.append(StepSpan(lo, lo + len(left.rstrip())))
        pos += len(piece) + step
    return spans


def step_texts(text: str, spans: list[StepSpan]) -> list[str]:
    return [text[s.start : s.end] for s in spans]


def merge_overflow(spans: list[StepSpan], max_steps: int) -> list[StepSpan]:
    """Keep at most `max_steps` spans: the last kept span stretches to the end of the last step.

    Used only where a caller needs a fixed number of steps. Merging (rather than dropping the
    tail) keeps the final answer inside a scored step, and the last step's reward on the last
    content token of the response.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    if len(spans) <= max_steps:
        return spans
    return spans[: max_steps - 1] + [StepSpan(spans[max_steps - 1].start, spans[-1].end)]


# ---------------------------------------------------------------------------------------------
# Policy tokens -> character end offsets

# Single-token decodes per tokenizer object (weak keys: a dropped tokenizer frees its cache).
_PIECES: weakref.WeakKeyDictionary[Any, dict[int, str]] = weakref.WeakKeyDictionary()


def _pieces(tokenizer: Any, token_ids: list[int]) -> list[str]:
    """decode([id], skip_special_tokens=True) for each id, from a per-tokenizer cache."""
    cache = _PIECES.get(tokenizer)
    if cache is None:
        cache = _PIECES[tokenizer] = {}
    try:
        return [cache[i] for i in token_ids]
    except KeyError:
        missing = sorted(set(token_ids).difference(cache))
        decoded = tokenizer.batch_decode([[i] for i in missing], skip_special_tokens=True)
        cache.update(zip(missing, decoded))
        return [cache[i] for i in token_ids]


def _char_ends_incremental(tokenizer: Any, token_ids: list[int], text: str) -> list[int] | None:
    """Exact-but-slower path: decode a sliding window of tokens, as streaming detokenizers do
    (text-generation-inference `decode_token`). A token's text is what decoding the window with
    it adds to decoding the window without it, which undoes sentencepiece's rule of dropping the
    first token's leading space. A character split over byte-level tokens ends on the token
    that completes it; text before it in the same token ends on that token, as in
    `_char_ends_by_prefix`.

    Returns None if the pieces do not rebuild `text` (a decoder this scheme does not fit).
    """
    ends: list[int] = []
    emitted = 0  # characters of `text` accounted for so far
    prefix, read = 0, 0  # token window [prefix, read) is the context already emitted
    prefix_text = ""
    completes_text = None  # first token since the last emit after which `text` is all produced
    for i in range(len(token_ids)):
        new_text = tokenizer.decode(token_ids[prefix : i + 1], skip_special_tokens=True)
        if len(new_text) > len(prefix_text) and not new_text.endswith(REPLACEMENT):
            piece = new_text[len(prefix_text) :]
            if not text.startswith(piece, emitted):
                return None
            emitted += len(piece)
            prefix, read = read, i + 1
            prefix_text = tokenizer.decode(token_ids[prefix:read], skip_special_tokens=True)
            ends.append(emitted)
            completes_text = None
        else:
            # Text before the unfinished character is final already (Qwen's token " \xe2\x89"
            # ends the space, not the "≈" it starts); report it without emitting.
            pending = new_text[len(prefix_text) :]
            done = len(pending.rstrip(REPLACEMENT))
            ends.append(max(emitted + done, ends[-1] if ends else 0))
            # A response cut inside a character ends in U+FFFD that no later token completes.
            if completes_text is None and text.startswith(pending, emitted):
                if emitted + len(pending) == len(text):
                    completes_text = i
    if emitted < len(text) and completes_text is not None:
        ends[completes_text:] = [len(text)] * (len(ends) - completes_text)
        emitted = len(text)
    return ends if emitted == len(text) else None


def _char_ends_by_prefix(tokenizer: Any, token_ids: list[int], text: str) -> list[int]:
    """Definition, O(T^2) decoding: token i ends where decode(token_ids[:i+1]) stops agreeing
    with `text`. Last resort when the incremental path cannot rebuild the text."""
    ends, best = [], 0
    for i in range(len(token_ids)):
        prefix = tokenizer.decode(token_ids[: i + 1], skip_special_tokens=True)
        if text.startswith(prefix):
            n = len(prefix)
        else:  # usually a trailing U+FFFD of an unfinished character
            n = next((j for j, (a, b) in enumerate(zip(prefix, text)) if a != b), len(prefix))
        best = max(best, n)
        ends.append(best)
    if ends:
        ends[-1] = len(text)
    return ends


def _as_ids(token_ids: Any) -> list[int]:
    # A tensor row would give 0-d tensors, which miss the piece cache (hashed by identity).
    return token_ids.tolist() if hasattr(token_ids, "tolist") else list(token_ids)


def _char_ends(tokenizer: Any, token_ids: list[int], text: str) -> list[int]:
    # Fast path: single-token decodes concatenate to the full decode (char tokenizers, Qwen BPE
    # on text whose multi-byte characters are whole tokens, ASCII in particular).
    pieces = _pieces(tokenizer, token_ids)
    if "".join(pieces) == text:
        return list(accumulate(map(len, pieces)))
    ends = _char_ends_incremental(tokenizer, token_ids, text)
    if ends is None:
        ends = _char_ends_by_prefix(tokenizer, token_ids, text)
    return ends


def token_char_ends(tokenizer: Any, token_ids: list[int]) -> list[int]:
    """For each generated token, the end offset of its characters in
    `tokenizer.decode(token_ids, skip_special_tokens=True)`. Non-decreasing; special tokens
    (EOS, PAD) are zero-width; the last element equals the text's length.

    A character split over several byte-level tokens belongs to the token that completes it.
    Fast when single-token decodes concatenate to the text (char tokenizer; Qwen2.5 on text
    without split characters); otherwise a few window decodes per token.
    """
    token_ids = _as_ids(token_ids)
    text = tokenizer.decode(token_ids, skip_special_tokens=True)
    return _char_ends(tokenizer, token_ids, text)


# ---------------------------------------------------------------------------------------------
# Steps -> policy token indices


def step_end_token_indices(spans: list[StepSpan], char_ends: list[int]) -> list[int]:
    """Index of the token holding each step's last character (position span.end - 1): the first
    token i with char_ends[i] >= span.end. A token that also holds the delimiter (".\\n\\n")
    counts as the step's last token."""
    total = char_ends[-1] if char_ends else 0
    out = []
    for s in spans:
        if not 0 < s.end <= total:
            raise ValueError(f"step {s} ends outside the decoded text of length {total}")
        out.append(bisect_left(char_ends, s.end))
    return out


Splitter = Callable[[str], Sequence["StepSpan | tuple[int, int]"]]
"""A step splitter: response text -> character spans ``[start, end)`` of its steps, in order,
not overlapping (``StepSpan`` or ``(start, end)`` pairs). A string stands for the splitter on
that delimiter (``split_steps``)."""


def spans_of(text: str, splitter: str | Splitter) -> list[StepSpan]:
    """The step spans of ``text`` by a delimiter or a splitter callable, checked: a splitter
    that returns spans out of order, overlapping, empty or outside the text is an error (its
    steps would put rewards on the wrong tokens)."""
    if isinstance(splitter, str):
        return split_steps(text, splitter)
    spans = [s if isinstance(s, StepSpan) else StepSpan(int(s[0]), int(s[1])) for s in splitter(text)]
    prev = 0
    for k, s in enumerate(spans):
        if not (prev <= s.start < s.end <= len(text)):
            raise ValueError(f"step splitter returned span {k} = [{s.start}, {s.end}) for a text of "
                             f"{len(text)} characters (spans must be non-empty, in order, not "
                             f"overlapping, inside the text)")
        prev = s.end
    return spans


def _steps(text: str, char_ends: list[int], delimiter: str | Splitter, max_steps: int | None) -> ResponseSteps:
    spans = spans_of(text, delimiter)
    if max_steps is not None:
        spans = merge_overflow(spans, max_steps)
    return ResponseSteps(step_texts(text, spans), spans, step_end_token_indices(spans, char_ends))


def steps_for_response(
    tokenizer: Any, token_ids: list[int], delimiter: str | Splitter = "\n", max_steps: int | None = None
) -> ResponseSteps:
    """Steps of one generated response (token_ids may end in EOS/PAD).

    All steps are kept by default: the trainer pads per-step tensors to the batch's largest S
    (B, S) with a step mask. `max_steps` caps S by merging the overflow into the last kept step
    (see `merge_overflow`). A response with no non-whitespace text has zero steps.
    """
    token_ids = _as_ids(token_ids)
    text = tokenizer.decode(token_ids, skip_special_tokens=True)
    return _steps(text, _char_ends(tokenizer, token_ids, text), delimiter, max_steps)


def steps_for_batch(
    tokenizer: Any,
    batch_token_ids: list[list[int]],
    delimiter: str | Splitter = "\n",
    max_steps: int | None = None,
) -> list[ResponseSteps]:
    """`steps_for_response` for B responses, with one batched decode for the texts."""
    batch_token_ids = [_as_ids(ids) for ids in batch_token_ids]
    texts = tokenizer.batch_decode(batch_token_ids, skip_special_tokens=True)
    return [
        _steps(text, _char_ends(tokenizer, ids, text), delimiter, max_steps)
        for ids, text in zip(batch_token_ids, texts)
    ]
