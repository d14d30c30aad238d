"""Final-answer extraction shared by every task.

    extract_boxed(text)                      the last ``\\boxed{...}`` (arith, Best-of-N keys)
    extract_answer(response, numeric=False)  the final answer of a model's response (math grader)
    extract_gold(gold)                       a gold answer, unwrapped the same way

Regex and string scanning only, linear in the text: model text is never evaluated here. The
answer is looked for in this order, on the tail of the response (after ``</think>`` if any):

1. the last ``\\boxed{}`` / ``\\fbox{}`` (nested braces); boxes written side by side ("\\boxed{2}
   and \\boxed{3}") are one answer listing both; a last box that never closes is no answer;
2. else the last "the (final) answer is X" / "Answer: X" / "# Answer" / "#### X": X is the first
   math (``$..$``, ``$$..$$``, ``\\(..\\)``, ``\\[..\\]``) of that sentence, else its plain text up
   to the first word of prose ("18 dollars" -> 18), bold ``**X**`` unwrapped;
3. else the last math of the response (the final answer sentence's), or a bold ``**X**`` there;
4. only when the task's answers are numbers (``numeric=True``, GSM8K): the last number of the
   response, if it stands alone -- never one cut out of an expression ("3-5", "-[0,1)") or the
   last item of a list of numbers.

An answer followed by a retraction ("... \\boxed{5}. Wait, that is wrong.") is no answer, unless a
new one follows the retraction. Units and ``\\text{}`` words after a number are dropped;
``\\dfrac``/``\\tfrac``/``\\cfrac``, thousands separators (``1{,}000``, ``1\\,000``, ``1 000``),
``%``, ``\\langle..\\rangle`` and leading ``=``/``\\approx`` are normalised (:func:`normalize`).
``x = `` prefixes and ``\\left( \\right)`` are left to math-verify, which compares them right.
"""

from __future__ import annotations

import re

MAX_RESPONSE_CHARS = 8_000  # only the tail of a response is read: the final answer is there
_MAX_PHRASE_CHARS = 400  # an answer phrase longer than this is prose, not an answer
_MAX_JOIN = 8  # boxes / maths listed side by side: at most this many form one answer

_BOXED = ("\\boxed{", "\\fbox{")


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (braces balanced), or None if there is none.

    >>> extract_boxed("so 2+2=4, \\\\boxed{4}.")
    '4'
    >>> extract_boxed("\\\\boxed{\\\\frac{1}{2}} then \\\\boxed{x^{2}}")
    'x^{2}'
    """
    start = max(text.rfind(tag) for tag in _BOXED)
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i:j].strip()
    return None  # unbalanced: the answer never closed (e.g. a truncated response)


# ---------------------------------------------------------------------------------------------
# Boxes, all of them, in one pass.

_BOX_TOKENS = re.compile(r"\\(?:boxed|fbox)\s*\{|\\[{}]|[{}]")


def _boxes(text: str) -> tuple[list[tuple[int, int, int]], int]:
    """Outermost closed boxes as (tag start, content start, closing brace), in order, and the
    start of the last box tag of the text (-1: none). One pass; braces escaped as ``\\{`` do not
    count. A box that never closes does not hide the closed boxes inside it."""
    stack: list[tuple[int, int] | None] = []  # None: a plain brace; else (tag start, content start)
    closed: list[tuple[int, int, int]] = []
    last_tag = -1
    for m in _BOX_TOKENS.finditer(text):
        tok = m.group()
        if tok[0] == "\\" and len(tok) == 2:  # \{ or \}
            continue
        if tok == "{":
            stack.append(None)
        elif tok == "}":
            if stack:
                top = stack.pop()
                if top is not None:
                    closed.append((top[0], top[1], m.start()))
        else:
            last_tag = m.start()
            stack.append((m.start(), m.end()))
    closed.sort()
    outermost: list[tuple[int, int, int]] = []
    for box in closed:
        if not outermost or box[0] > outermost[-1][2]:
            outermost.append(box)
    return outermost, last_tag


# ---------------------------------------------------------------------------------------------
# Math environments, in one pass: $$..$$, \[..\], $..$ (one line), \(..\).

_MATH_TOKENS = re.compile(r"\\\\|\\\$|\$\$|\$|\\\[|\\\]|\\\(|\\\)|\n")
_OPEN_CLOSE = {"$$": "$$", "\\[": "\\]", "\\(": "\\)", "$": "$"}
_PROSE_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")


def _looks_like_prose(s: str) -> bool:
    """A word of 3+ letters outside braces and not a command: "18 and" (a currency pair)."""
    depth, out = 0, []
    for c in s:
        if c == "{":
            depth += 1
        elif c == "}":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(c)
            continue
        out.append(" ")
    flat = "".join(out)
    return any(w.group().lower() not in _MATH_WORDS for w in _PROSE_WORD.finditer(flat))


def _maths(text: str) -> list[tuple[int, int, str]]:
    """Math environments as (start, end, content), in order. An inline ``$`` pair that opens on
    a digit and closes after a space or holds prose ("$5 and $6"), or whose closing ``$`` comes
    right before a digit ("$1250-$900"), is taken for currency signs: the first ``$`` is dropped
    and pairing starts again at the second."""
    out: list[tuple[int, int, str]] = []
    opener: tuple[str, int, int] | None = None  # (token, start, content start)
    for m in _MATH_TOKENS.finditer(text):
        tok = m.group()
        if tok in ("\\\\", "\\$"):
            continue
        if opener is None:
            if tok in _OPEN_CLOSE:
                opener = (tok, m.start(), m.end())
            continue
        kind, start, cstart = opener
        if tok == "\n":
            if kind == "$":  # inline $ math does not span lines: that $ was a currency sign
                opener = None
            continue
        if tok != _OPEN_CLOSE[kind]:
            continue
        content = text[cstart:m.start()]
        money = content[:1].isdigit()  # "$5": a currency sign opens on a digit
        if kind == "$" and (
            not content.strip()
            or text[m.end():m.end() + 1].isdigit()  # "$1250-$900": a currency sign, no closer
            or (money and (content[-1:].isspace() or _looks_like_prose(content)))
        ):
            opener = ("$", m.start(), m.end())  # the first $ was currency: re-pair from this one
            continue
        out.append((start, m.end(), content.strip()))
        opener = None
    return out


# ---------------------------------------------------------------------------------------------
# Plain-text answers: "18 dollars", "2/3 of the cake", "x = 5, so", "five", "Evelyn".

_MATH_WORDS = {
    "pi", "sqrt", "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan",
    "sinh", "cosh", "tanh", "log", "ln", "lg", "exp", "mod", "gcd", "lcm", "det", "infty",
}
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70",
     "eighty": "80", "ninety": "90", "hundred": "100"}
_PLAIN_TOKENS = re.compile(r"\\[A-Za-z]+|\\.|[A-Za-z]+|\s+|.", re.S)
_PERCENT_WORDS = ("percent", "per cent", "percentage")
_JOIN_WORDS = ("and", "or")
# Single-letter units written after a number and a space: "18 m", "5 g", "3 s", "12 m^2".
_LETTER_UNIT = re.compile(r"(\d)\s+(?:m|g|s|h|l|L)(?:\^\{?[23]\}?|²|³)?$")


def _math_prefix(s: str) -> tuple[str, str, int]:
    """The math-looking start of ``s`` (up to the first word of prose, sentence end or line end),
    the word that stopped it (lowercase, "" if none) and where that word ends."""
    depth = 0
    pos = 0
    for m in _PLAIN_TOKENS.finditer(s):
        tok = m.group()
        if tok in "{}" and len(tok) == 1:
            depth += 1 if tok == "{" else -1
            depth = max(depth, 0)
        elif depth == 0:
            if tok == "\n" or (tok[0].isspace() and "\n" in tok):
                return s[:m.start()], "", m.start()
            if tok in ".;!?" and (m.end() == len(s) or s[m.end()].isspace()):
                return s[:m.start()], "", m.start()
            if tok[0].isalpha() and len(tok) >= 2 and tok.lower() not in _MATH_WORDS:
                return s[:m.start()], tok.lower(), m.end()
        pos = m.end()
    return s[:pos], "", pos


_CURRENCY = re.compile(r"\s*(?:\\\$|\$|€|£|¥|₹|USD\s*|Rs\.?\s*)\s*(?=[-+]?\.?\d)")


def _strip_answer(s: str) -> str:
    s = s.strip()
    while True:
        t = s.strip().strip("*$").strip()
        t = re.sub(r"^(?:is|are|was|=|:|\\approx|\\sim)\s+", "", t)
        t = t.rstrip(" .,;:").strip()
        if t == s:
            return s
        s = t


def _plain_answer(phrase: str) -> str | None:
    """The answer written as plain text at the start of ``phrase`` (see :func:`_plain_span`)."""
    found = _plain_span(phrase)
    return found[0] if found else None


def _plain_span(phrase: str) -> tuple[str, int] | None:
    """The answer written as plain text at the start of ``phrase`` (after an anchor), and where
    it ends in ``phrase``: its math-looking start ("18" of "18 dollars"), several joined by
    "and"/"or" ("3 or 4" lists both), or a short word answer ("Evelyn", "yes", "five")."""
    pos = len(phrase) - len(phrase.lstrip(" \t\n:*"))
    parts: list[str] = []
    end = pos
    while len(parts) < _MAX_JOIN:
        cur = _CURRENCY.match(phrase, pos)
        if cur:
            pos = cur.end()
        prefix, word, word_end = _math_prefix(phrase[pos:])
        answer = _LETTER_UNIT.sub(r"\1", _strip_answer(prefix))
        if not answer:
            break
        if word in _PERCENT_WORDS and answer[-1:].isdigit():
            answer += "\\%"
        parts.append(answer)
        end = pos + (word_end if word in _PERCENT_WORDS else len(prefix.rstrip()))
        nxt = pos + word_end
        rest = phrase[nxt:].lstrip()
        if word not in _JOIN_WORDS or not re.match(r"[-+(\[{\\\d.$€£]", rest):
            break  # "3 and then ...": not a second answer
        pos = len(phrase) - len(rest)
    if parts:
        return ", ".join(parts), end
    # No math at all: a word answer, short and not a sentence.
    words = re.compile(r"\s*([A-Za-z][A-Za-z' -]{0,40}?)\s*(?:[.!?;,]|\n|$)").match(phrase, pos)
    if words:
        w = words.group(1).strip()
        if w.lower() in _NUMBER_WORDS:
            return _NUMBER_WORDS[w.lower()], words.end(1)
        if len(w.split()) <= 3 and (w[0].isupper() or w.lower() in ("yes", "no")):
            return "\\text{" + w + "}", words.end(1)
    return None


# ---------------------------------------------------------------------------------------------
# Anchors ("the answer is"), retractions, numbers.

_ANCHOR = re.compile(
    r"(?im)(?:"
    r"\b(?:final\s+)?answers?\b(?:[^.\n$:,]{0,40}?\b(?:is|are|was|will\s+be|would\s+be|should\s+be)\b)"
    r"|\b(?:final\s+)?answer\s*\**\s*[:=]"
    r"|\bfinal\s+answer\b\s*\**\s*(?=\n)"
    r"|^[ \t]*#+[ \t]*(?:final\s+)?answer\b\s*:?"
    r"|####"
    r")\s*:?\**\s*:?"
)
_RETRACTION = re.compile(
    r"(?i)(?:"
    r"\b(?:that|this|it|which|the\s+above|my\s+(?:previous\s+|above\s+)?answer|the\s+answer|"
    r"the\s+boxed\s+answer|this\s+answer)\s*(?:is|was|'s|seems|seems\s+to\s+be|must\s+be|might\s+be|"
    r"could\s+be)\s+(?:wrong|incorrect|not\s+(?:right|correct)|a\s+mistake|an\s+error|mistaken)"
    r"|\b(?:scratch|ignore|disregard|retract|strike)\s+(?:that|this|the\s+above|my|it)\b"
    r"|\bI\s+made\s+(?:a|an)\s+(?:mistake|error)"
    r"|\b(?:is|was|'s)\s*n[o']t\s+(?:the\s+)?(?:final\s+|correct\s+|right\s+)?answer"
    r"|\bnot\s+the\s+(?:final\s+|correct\s+|right\s+)?answer"
    r"|\bno,?\s+wait\b|\bwait,?\s+no\b|\boops\b|\bca(?:n'?|nno)t\s+be\s+(?:right|correct)"
    r"|\bactually,?\s+(?:no\b|(?:the\s+answer|it)\s+is\s*n[o']t)"
    r")"
)
_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|[-+]?\.\d+")
_LAST_DIGIT = re.compile(r"\d\D*\Z")
_OPERATOR_BEFORE = re.compile(r"(?:[-+*/^×÷(\[]|\\cdot|\\times|\\div)$")
_OPERATOR_AFTER = re.compile(r"[-+*/^×÷=]|\\cdot|\\times")
_LIST_SEP = re.compile(r"(?i)^(?:\s*(?:,|;|/|\||and|or|&)\s*|\s+)$")


def _last_number(text: str) -> tuple[str, int] | None:
    """The last number of ``text`` if it stands alone (``numeric`` tasks), with its end."""
    m = _LAST_DIGIT.search(text)
    if m is None:
        return None
    i = m.start()
    start = i
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    end = i + 1
    while end < len(text) and not text[end].isspace():
        end += 1
    token = text[start:end]
    token = token.strip("*").rstrip(".,;:!?)\"'").lstrip("(\"'")
    token = _CURRENCY.sub("", token)
    token = token.strip("$")  # "$18$" written as a currency-less inline math
    percent = token.endswith("%")
    token = token.rstrip("%")
    if "=" in token:  # "3+5=8": the stated value, right of the last "="
        token = token.rsplit("=", 1)[1]
    if not _PLAIN_NUMBER.fullmatch(token):
        return None  # "3-5", "-[0,1)", "2x": part of an expression, not an answer
    if "=" not in text[start:end]:
        # "2y + 5", "5 \\cdot 3": an operand written with spaces is part of an expression too.
        left = text[max(0, start - 8):start].rstrip()
        right = text[end:end + 8].lstrip()
        if _OPERATOR_BEFORE.search(left) or _OPERATOR_AFTER.match(right):
            return None
    # A list of numbers ("1, 2, 3, 4"): the last item is no answer.
    before = text[max(0, start - 12):start]
    prev = re.search(r"(\d[\d,.]*%?)([^\d]*)$", before)
    if prev and _LIST_SEP.match(prev.group(2)):
        return None
    return (token + ("\\%" if percent else "")), end


def _retracted(after: str) -> re.Match | None:
    return _RETRACTION.search(after[:600])


def _box_answer(text: str) -> tuple[str | None, int] | None:
    """(answer, end) from the boxes of ``text``; (None, end) for an empty/unclosed last box;
    None when ``text`` has no box."""
    closed, last_tag = _boxes(text)
    if last_tag < 0:
        return None
    if not closed or last_tag > closed[-1][2]:
        return None, len(text)  # the last box never closes (a response cut off mid-answer)
    group = [closed[-1]]
    for box in reversed(closed[:-1]):
        between = text[box[2] + 1:group[0][0]]
        if len(group) >= _MAX_JOIN or not _is_connector(between):
            break
        group.insert(0, box)
    parts = []
    for _, c0, c1 in group:
        content = text[c0:c1].strip()
        if content and content not in parts:
            parts.append(content)
    end = group[-1][2] + 1
    if not parts:
        return None, end
    return (", ".join(parts) if len(parts) > 1 else parts[0]), end


_CONNECTOR = re.compile(
    r"(?i)^(?:\s|\$|\\[()\[\]]|[,;&]|\\quad|\\qquad|\\text\{\s*(?:and|or)?\s*\}|\band\b|\bor\b|\\\\)*$"
)


def _is_connector(between: str) -> bool:
    return len(between) <= 40 and bool(_CONNECTOR.match(between))


def _math_group(text: str, maths: list[tuple[int, int, str]], k: int) -> tuple[str, int]:
    """The math at ``maths[k]`` and those listed right after it ("$2$, $3$ and $4$")."""
    parts = [maths[k][2]]
    end = maths[k][1]
    j = k + 1
    while j < len(maths) and len(parts) < _MAX_JOIN and _is_connector(text[end:maths[j][0]]) \
            and re.search(r"(?i),|\band\b|\bor\b", text[end:maths[j][0]]):
        parts.append(maths[j][2])
        end = maths[j][1]
        j += 1
    parts = [p for i, p in enumerate(parts) if p and p not in parts[:i]]
    return ", ".join(parts), end


def _anchor_answer(text: str) -> tuple[str, int] | None:
    """The answer after the last "answer is" / "Answer:" / "####" that gives one."""
    anchors = list(_ANCHOR.finditer(text))
    for a in reversed(anchors):
        rest = text[a.end():a.end() + _MAX_PHRASE_CHARS]
        # "Final Answer:\n\n$5$": the answer may start on a later line.
        lead = len(rest) - len(rest.lstrip())
        rest = rest[lead:]
        start = a.end() + lead
        sentence = _sentence(rest)
        maths = [m for m in _maths(rest) if m[0] < len(sentence)]
        # A plain answer before the sentence's first math wins ("17, not $18$"); else that math
        # ("therefore $5$").
        found = _plain_span(sentence[:maths[0][0]] if maths else sentence)
        if found and not (maths and found[0][-1:] in "=+-*/^(,:"):  # "x = $5$": the math
            return found[0], start + found[1]
        if maths:
            answer, end = _math_group(rest, maths, 0)
            if answer:
                return answer, start + end
    return None


_SENTENCE_END = re.compile(r"\n|[.;!?](?=\s|$)")


def _sentence(s: str) -> str:
    """``s`` up to its first sentence end outside math ("$3.5$." ends after the math)."""
    maths = _maths(s)
    pos = 0
    while True:
        m = _SENTENCE_END.search(s, pos)
        if m is None:
            return s
        inside = next((mm for mm in maths if mm[0] < m.start() < mm[1]), None)
        if inside is None:
            return s[:m.start()]
        pos = inside[1]


_MAX_RETRACTIONS = 8  # more than this and the response has no answer


def _find(text: str, numeric: bool) -> str | None:
    strong_only = False
    for _ in range(_MAX_RETRACTIONS + 1):
        found = _box_answer(text)
        if found is None:
            found = _anchor_answer(text)
        if found is None and not strong_only:
            found = _weak_answer(text, numeric)
        if found is None:
            return None
        answer, end = found
        retraction = _retracted(text[end:])
        if retraction is None:
            return (normalize(answer) or None) if answer is not None else None
        # A retracted answer is no answer; a new one stated after the retraction (a box or an
        # "answer is") counts.
        text = text[end + retraction.end():]
        strong_only = True
    return None


def _weak_answer(text: str, numeric: bool) -> tuple[str | None, int] | None:
    """Nothing marks the answer: the last math of the response (with those listed with it), a
    bold number, or (``numeric`` tasks) the last number standing alone -- whichever comes last."""
    found: list[tuple[int, int, str | None]] = []  # (end, preference, answer)
    maths = _maths(text)
    if maths:
        k = len(maths) - 1
        while k > 0 and _is_connector(text[maths[k - 1][1]:maths[k][0]]) \
                and re.search(r"(?i),|\band\b|\bor\b", text[maths[k - 1][1]:maths[k][0]]):
            k -= 1
        answer, end = _math_group(text, maths, k)
        found.append((end, 2, answer))
    offset = max(0, len(text) - 2000)
    bold = list(re.finditer(r"\*\*([^*\n]{1,80})\*\*", text[offset:]))
    if bold and re.fullmatch(r"[-+$\\\d.,/()\s%]+|\\\S.*", bold[-1].group(1).strip()):
        found.append((offset + bold[-1].end(), 1, _plain_answer(bold[-1].group(1))))
    if numeric:
        number = _last_number(text)
        if number is not None:  # ordered by its last digit: "$x = 3$." is the math's
            found.append((_LAST_DIGIT.search(text).start() + 1, 0, number[0]))
    if not found:
        return None
    _, _, answer = max(found)
    return answer, max(f[0] for f in found)


def extract_answer(response: str, max_chars: int = MAX_RESPONSE_CHARS, *,
                   numeric: bool = False) -> str | None:
    """The final answer of a response, normalised LaTeX, or None if it gives none.

    See the module docstring for the order. ``numeric``: the task's answers are numbers
    (GSM8K), so a response's last number counts as its answer when nothing marks one. Only the
    last ``max_chars`` characters are read.

    >>> extract_answer("so the total is \\\\boxed{\\\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    >>> extract_answer("The answer is $18$ dollars.")
    '18'
    >>> extract_answer("3 apples and 4 pears make 7", numeric=True)
    '7'
    >>> extract_answer("3 apples and 4 pears make 7") is None
    True
    """
    text = response[-max_chars:]
    think = text.rfind("</think>")
    if think >= 0:
        text = text[think + len("</think>"):]
    return _find(text, numeric)


def extract_gold(gold: str) -> str:
    """A gold answer as the grader compares it: unwrapped from ``\\boxed{}``, ``$..$``,
    ``\\(..\\)``, ``\\[..\\]``, a GSM8K solution's ``#### X`` or an "answer is X"; normalised."""
    g = gold.strip()
    found = _box_answer(g)
    if found is not None and found[0]:
        return normalize(found[0])
    if "####" in g:
        g = g.rsplit("####", 1)[1].strip().split("\n", 1)[0].strip()
    maths = _maths(g)
    if len(maths) == 1 and maths[0][0] == 0 and maths[0][1] == len(g.rstrip(" .")):
        g = maths[0][2]
    elif re.match(r"(?i)\s*(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)", g):
        found = _anchor_answer(g)
        if found is not None:
            g = found[0]
    return normalize(g) or gold.strip()


# ---------------------------------------------------------------------------------------------
# Normalisation of an extracted answer (both sides; math-verify does the rest).

_FRAC_VARIANTS = re.compile(r"\\[dtc]frac(?![A-Za-z])")
_THIN_THOUSANDS = re.compile(
    r"(?<![\d.])(\d{1,3})((?:(?:,?\s*\\[,!;: ]\s*|\{,\}|\\text\{\s*\}|~)\d{3})+)(?![\d])")
_SPACE_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?: \d{3})+(?:\.\d+)?")
_PERCENT = re.compile(r"(?<=[\d}])\s*(?<!\\)%|(?<=\d)\s*(?:percent|per\s+cent)\b")
_TEXT = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox|textnormal)\s*\{([^{}]*)\}")


def _text_group(m: re.Match) -> str:
    inner = m.group(1).strip()
    hedge = re.fullmatch(r"(?i)\(?\s*(?:or|and)\b\s*(.*?)\)?", inner)
    if hedge is not None:  # "4 \text{ (or 5)}", "2 \text{ or } 3": two answers
        return ", " + hedge.group(1) if hedge.group(1) else ", "
    num = re.match(r"\s*([-+]?\d[\d,]*(?:\.\d+)?)\s+[A-Za-z]", inner)
    if num is not None:  # "\text{30 degrees}"
        return num.group(1)
    if inner in ("\\$", "$"):
        return ""
    return m.group(0)


def normalize(answer: str) -> str:
    """Light, regex-only normalisation of an extracted answer (see the module docstring)."""
    s = answer.strip()
    if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
        s = s.strip("$").strip()
    s = _FRAC_VARIANTS.sub(r"\\frac", s)
    s = s.replace("\\displaystyle", " ").replace("\\langle", "(").replace("\\rangle", ")")
    s = re.sub(r"\\deg\b", r"^\\circ", s)
    s = _THIN_THOUSANDS.sub(lambda m: m.group(1) + re.sub(r"\D", "", m.group(2)), s)
    if _SPACE_THOUSANDS.fullmatch(s):
        s = s.replace(" ", "")
    money = re.fullmatch(r"\\?\$\s*([-+]?(?:\d[\d,]*)?\.?\d+)", s)
    if money:  # a gold written "$18" or "\$1,000"
        s = money.group(1)
    s = _PERCENT.sub("\\\\%", s)
    if "\\text" in s or "\\math" in s or "\\mbox" in s:
        s = _TEXT.sub(_text_group, s)
    s = re.sub(r"^(?:=|\\approx|\\sim|:)\s*", "", s)
    # "1, 2, 3, \\dots, 100": the items written (an ellipsis is no item).
    s = re.sub(r",\s*(?:\\[lc]?dots|\.\.\.)\s*(?=,)", "", s)
    s = re.sub(r"(?:\s|,)*(?:\.|,|;)\s*$", "", s) if not re.search(r"\\ldots$|\.\.\.$", s) else s
    s = s.strip().strip(",").strip()
    return s

