"""PNG plots of training metrics, ablation curves and the Best-of-N table (matplotlib, no display
needed)."""

from __future__ import annotations

from pathlib import Path

from prmrl.runs import read_jsonl

# (metric key in metrics.jsonl, title) for each training plot.
TRAINING_PLOTS = [
    ("rollout/token_reward_sum", "reward per answer (incl. KL)"),
    ("rollout/success", "training success rate"),
    ("eval/greedy_accuracy", "held-out greedy accuracy"),
    ("rollout/mean_response_tokens", "response length (tokens)"),
    ("rollout/steps_per_answer", "steps per answer"),
    ("rollout/repeated_step_rate", "repeated-step rate"),
    ("rollout/tokens_per_step", "tokens per step"),
    ("rollout/truncation_rate", "truncation rate"),
    ("rollout/prm_mean_score", "mean PRM step score"),
    ("rollout/prm_success_agreement", "PRM verdict = success reward"),
    ("rollout/orm_score", "mean ORM score"),
]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training(metrics_path: str | Path, out_dir: str | Path) -> list[Path]:
    """One PNG per metric against iteration, plus an overview grid. Returns the files written."""
    plt = _pyplot()
    rows = read_jsonl(metrics_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    present = [(k, t) for k, t in TRAINING_PLOTS if any(k in r for r in rows)]
    ncols = 4 if len(present) > 6 else 3
    nrows = max(1, -(-len(present) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 3.5 * nrows), squeeze=False)
    for ax, (key, title) in zip(axes.flat, present):
        xs = [r["iteration"] for r in rows if key in r]
        ys = [r[key] for r in rows if key in r]
        ax.plot(xs, ys, marker="o" if len(xs) < 15 else None)
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        single, sax = plt.subplots(figsize=(5, 3.5))
        sax.plot(xs, ys, marker="o" if len(xs) < 15 else None)
        sax.set_title(title)
        sax.set_xlabel("iteration")
        sax.grid(alpha=0.3)
        single.tight_layout()
        path = out / f"{key.replace('/', '_')}.png"
        single.savefig(path, dpi=90)
        plt.close(single)
        written.append(path)
    for ax in list(axes.flat)[len(present):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "training.png", dpi=90)
    plt.close(fig)
    return [out / "training.png", *written]


def plot_lines(series: dict[str, tuple[list, list]], title: str, xlabel: str, ylabel: str,
               path: str | Path, bands: dict[str, list] | None = None) -> Path:
    """Several named lines on one axes (e.g. one per ablation arm), optional +-std bands."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, label=name, marker="o" if len(xs) < 20 else None)
        if bands and name in bands:
            lo_hi = bands[name]
            ax.fill_between(xs, [y - s for y, s in zip(ys, lo_hi)], [y + s for y, s in zip(ys, lo_hi)], alpha=0.15)
    return _finish(plt, fig, ax, title, xlabel, ylabel, path)


def plot_bon(result: dict, path: str | Path) -> Path:
    """Accuracy against N (log2 axis), one line per method of a Best-of-N result
    (:func:`prmrl.evaluation.bon.bon_metrics`)."""
    from prmrl.evaluation.bon import BON_METHODS

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for m in [m for m in BON_METHODS + ["pass"] if m in result]:
        ns = [int(n) for n in result[m]]
        style = {"linestyle": ":"} if m in ("greedy", "pass") else {}
        ax.plot(ns, [result[m][str(n)] for n in ns], marker="o", label=m, **style)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    return _finish(plt, fig, ax, f"Best-of-N, {result.get('n_problems', '?')} test problems",
                   "N (samples per problem)", "accuracy", path)


def _finish(plt, fig, ax, title: str, xlabel: str, ylabel: str, path: str | Path) -> Path:
    """Title, labels, grid and legend; the figure written to ``path`` (folders made) and closed."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
