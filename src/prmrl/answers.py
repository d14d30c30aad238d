"""Final-answer extraction shared by every task: the last ``\\boxed{...}`` of a response."""

from __future__ import annotations

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
