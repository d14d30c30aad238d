"""The embedded demo's results against a committed baseline: a change that moves them is seen.

    .venv/bin/python benchmarks/pinned_results.py                        # seeds 0,1 x 1 thread (~8 min)
    .venv/bin/python benchmarks/pinned_results.py --seeds 0-3 --threads 1,2
    .venv/bin/python benchmarks/pinned_results.py --from runs/sweep/sweep.json   # no new runs
    .venv/bin/python benchmarks/pinned_results.py --from runs/sweep/sweep.json --update

Runs ``prmrl demo`` at fixed seeds and thread counts (the seed sweep of ``prmrl demo --seeds``,
each run in its own process and cache), or reads a sweep's ``sweep.json``, and compares it with
``benchmarks/baselines/demo.json`` in two ways:

- **each run** against the baseline's run of the same seed and thread count, when the baseline
  was measured on the same CPU and torch version: a run is deterministic there, so any
  difference above float noise (``--exact-tol``, default 1e-6) means the code moved the results;
- **the mean over the runs** of each figure against the baseline's mean, within a tolerance per
  figure (``TOLERANCE``: about two standard errors of a 500-problem accuracy, wider for the
  gains). On another machine only this check applies: the float order differs there, and so
  does each seed's SFT policy.

Exit status 0 when everything is within its tolerance, 1 when something moved (each figure that
moved is printed), 2 on bad arguments or a missing baseline. ``--update`` writes the baseline
from these runs (commit it with the change that moved the results, and say why).
Not a test: a demo run takes minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

BASELINE = Path(__file__).parent / "baselines" / "demo.json"
# Allowed distance of the mean of a figure over the runs from the baseline's mean.
TOLERANCE = {"greedy_before": 0.03, "greedy_after": 0.03, "greedy_gain": 0.03,
             "sampling_before": 0.03, "sampling_after": 0.03, "sampling_gain": 0.03,
             "steps_after": 0.15}
NOT_RESULTS = {"wall_seconds"}       # measured, never compared


def _machine_key(report: dict) -> tuple:
    return report.get("machine"), report.get("torch")


def compare(report: dict, baseline: dict, exact_tol: float = 1e-6) -> list[str]:
    """What moved, one line each (empty: nothing did)."""
    moved: list[str] = []
    same_machine = _machine_key(report) == _machine_key(baseline)
    base_runs = {(r["seed"], r["threads"]): r["figures"] for r in baseline["runs"]}
    matched = []
    for run in report["runs"]:
        key = (run["seed"], run["threads"])
        if key not in base_runs:
            continue
        matched.append(key)
        if not same_machine:
            continue
        for name, value in run["figures"].items():
            want = base_runs[key].get(name)
            if name in NOT_RESULTS or want is None:
                continue
            if not math.isclose(value, want, rel_tol=0, abs_tol=exact_tol):
                moved.append(f"seed {key[0]}, {key[1]} thread(s): {name} {value:.4f}, baseline {want:.4f}")
    if not matched:
        return [f"no run of seeds x threads {sorted({(r['seed'], r['threads']) for r in report['runs']})} "
                f"is in the baseline ({sorted(base_runs)})"]
    for name, tol in TOLERANCE.items():
        ours = [r["figures"][name] for r in report["runs"] if (r["seed"], r["threads"]) in base_runs]
        theirs = [base_runs[k][name] for k in matched]
        a, b = sum(ours) / len(ours), sum(theirs) / len(theirs)
        if abs(a - b) > tol:
            moved.append(f"mean {name} over {len(ours)} runs: {a:.4f}, baseline {b:.4f} (tolerance {tol})")
    return moved


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out-dir", default="runs/pinned-results")
    ap.add_argument("--from", dest="from_json", help="a sweep.json to compare instead of running")
    ap.add_argument("--baseline", default=str(BASELINE))
    ap.add_argument("--exact-tol", type=float, default=1e-6)
    ap.add_argument("--update", action="store_true", help="write the baseline from these runs")
    args = ap.parse_args()

    if args.from_json:
        report = json.loads(Path(args.from_json).read_text())
    else:
        from prmrl.config import COMMAND_DEFAULTS, load_config
        from prmrl.jobs.sweep import format_sweep, parse_ints, sweep

        cfg = load_config(None, [f"run.out_dir={args.out_dir}"], base=COMMAND_DEFAULTS["demo"])  # as `prmrl demo`
        report = sweep(cfg, "demo", parse_ints(args.seeds), parse_ints(args.threads, "--threads"),
                       workers=args.workers)
        print(format_sweep(report))
    baseline_path = Path(args.baseline)
    if args.update:
        keep = {k: report[k] for k in ("job", "seeds", "threads", "runs", "summary", "machine", "torch")
                if k in report}
        baseline_path.parent.mkdir(parents=True, exist_ok=True)
        baseline_path.write_text(json.dumps(keep, indent=1) + "\n")
        print(f"baseline written: {baseline_path} ({len(keep['runs'])} runs, {keep['machine']})")
        return 0
    if not baseline_path.exists():
        print(f"no baseline at {baseline_path}: run with --update first", file=sys.stderr)
        return 2
    baseline = json.loads(baseline_path.read_text())
    same = _machine_key(report) == _machine_key(baseline)
    print(f"baseline: {baseline_path} ({baseline['machine']}, torch {baseline.get('torch')}); "
          + ("same machine and torch: each run compared exactly, and the means" if same
             else "another machine or torch: the means only"))
    moved = compare(report, baseline, args.exact_tol)
    for line in moved:
        print("MOVED", line)
    print("results as pinned" if not moved else f"{len(moved)} figure(s) moved")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
