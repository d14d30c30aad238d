"""Small helpers the jobs share: torch threads, plain-text tables."""

from __future__ import annotations

import torch


def setup_threads(cfg) -> None:
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)


def format_table(rows: dict[str, dict[str, float]], keys: list[str]) -> str:
    """A plain-text table: one row per entry, one column per key."""
    names = list(rows)
    w = max(len(n) for n in names + [""]) + 2
    cols = [max(10, len(k) + 2) for k in keys]
    head = "".ljust(w) + "".join(f"{k:>{c}}" for k, c in zip(keys, cols))
    lines = [head, "-" * len(head)]
    for n in names:
        lines.append(n.ljust(w) + "".join(f"{rows[n].get(k, float('nan')):>{c}.3f}" for k, c in zip(keys, cols)))
    return "\n".join(lines)

