"""Memory and time of PPO's token log-prob + entropy computation: the old path (upcast, divide by
the temperature, full log_softmax kept for backward, entropy from it) against the production
path (``core.logprobs_from_logits``, a chunked selective log-softmax with a custom backward, and
a chunked no-grad ``entropy_from_logits``).

    .venv/bin/python benchmarks/bench_logprobs.py                       # B=4 T=256 V=32000
    .venv/bin/python benchmarks/bench_logprobs.py --B 8 --T 512 --V 151936 --device cuda

Each case is the head of a policy: ``logits = hidden @ W`` ((B, T, H) @ (H, V), in the case's
dtype; a matmul does not keep its output for backward, so logits the path does not keep can be
freed, as in the real model), then the path, then backward of ``sum(w * logprobs)``. Per case
and path it prints:

- saved: bytes of the distinct tensors autograd saves for backward while the path runs
  (``torch.autograd.graph.saved_tensors_hooks``), and how many of them are new (not the
  model's logits themselves);
- peak: peak memory above the inputs during forward + backward. On CPU: the process's peak
  RSS (VmHWM, reset through /proc/self/clear_refs) in a fresh subprocess with glibc's mmap
  threshold fixed, so large tensors are returned to the OS when freed; on CUDA:
  ``torch.cuda.max_memory_allocated``;
- time: median seconds of forward + backward over ``--repeats`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from prmrl.rl.core import entropy_from_logits, logprobs_from_logits  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def old_path(logits, labels, temperature):
    """token_logprobs before this change, after the model's forward."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    logprobs = logp_all.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logprobs, entropy


def new_path(logits, labels, temperature):
    """token_logprobs now, after the model's forward."""
    logprobs = logprobs_from_logits(logits, labels, temperature).float()
    with torch.no_grad():
        entropy = entropy_from_logits(logits.detach(), temperature).float()
    return logprobs, entropy


PATHS = {"old": old_path, "new": new_path}


def make_inputs(B, T, V, H, dtype, device):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(B, T, H, generator=g).to(device, dtype).requires_grad_()
    W = (torch.randn(H, V, generator=g) * 4 / H ** 0.5).to(device, dtype).requires_grad_()
    labels = torch.randint(0, V, (B, T), generator=g).to(device)
    w = torch.randn(B, T, generator=g).to(device)
    return hidden, W, labels, w


def step(path, hidden, W, labels, w, temperature, record=None):
    """Forward + backward; ``record`` (a list) gets the tensors saved during the path."""
    logits = hidden @ W
    if record is None:
        lp, ent = path(logits, labels, temperature)
    else:
        with torch.autograd.graph.saved_tensors_hooks(lambda t: record.append(t) or t, lambda t: t):
            lp, ent = path(logits, labels, temperature)
        record.append(logits)           # to tell the model's logits from new tensors
    del logits
    (lp * w).sum().backward()
    return ent


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def child(args) -> dict:
    torch.set_num_threads(args.threads)
    dtype, device = DTYPES[args.dtype], torch.device(args.device)
    path = PATHS[args.path]
    hidden, W, labels, w = make_inputs(args.B, args.T, args.V, args.H, dtype, device)

    # saved for backward (distinct storages), and which of them are the model's logits
    record: list[torch.Tensor] = []
    step(path, hidden, W, labels, w, args.temperature, record)
    logits = record.pop()
    seen, saved, new = set(), 0, 0
    for t in record:
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)
        if key in seen:
            continue
        seen.add(key)
        nbytes = t.numel() * t.element_size()
        saved += nbytes
        if t.untyped_storage().data_ptr() != logits.untyped_storage().data_ptr():
            new += nbytes
    del record, logits, seen
    hidden.grad = W.grad = None

    # peak memory of one forward + backward above what exists before it
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step(path, hidden, W, labels, w, args.temperature)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                                  # reset VmHWM to the current RSS
        base = rss_kib("VmRSS")
        step(path, hidden, W, labels, w, args.temperature)
        peak = (rss_kib("VmHWM") - base) * 1024
    hidden.grad = W.grad = None

    times = []
    for i in range(args.repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step(path, hidden, W, labels, w, args.temperature)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
        hidden.grad = W.grad = None
    times.sort()
    return {"saved": saved, "saved_new": new, "peak": peak, "time": times[len(times) // 2]}


def mib(n: int) -> str:
    return f"{n / 2 ** 20:8.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--B", type=int, default=4)
    ap.add_argument("--T", type=int, default=256)
    ap.add_argument("--V", type=int, default=32000)
    ap.add_argument("--H", type=int, default=64, help="hidden size of the toy head")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", default="float32:1.0,float32:0.7,bfloat16:1.0,bfloat16:0.7",
                    help="comma-separated dtype:temperature")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--path", default="new", help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    ap.add_argument("--temperature", type=float, default=1.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    B, T, V = args.B, args.T, args.V
    print(f"B={B} T={T} V={V} H={args.H} device={args.device} threads={args.threads} "
          f"torch={torch.__version__}; a (B, T, V) float32 tensor is {mib(B * T * V * 4).strip()} MiB")
    print(f"{'dtype':>8} {'temp':>4} {'path':>4} | {'saved MiB':>9} {'new MiB':>8} | "
          f"{'peak MiB':>8} | {'time s':>7}")
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")   # big frees go back to the OS
    for case in args.cases.split(","):
        dtype, temperature = case.split(":")
        for path in ("old", "new"):
            cmd = [sys.executable, __file__, "--child", "--path", path, "--dtype", dtype,
                   "--temperature", temperature, "--B", str(B), "--T", str(T), "--V", str(V),
                   "--H", str(args.H), "--device", args.device, "--threads", str(args.threads),
                   "--repeats", str(args.repeats)]
            r = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True,
                                          text=True).stdout.strip().splitlines()[-1])
            print(f"{dtype:>8} {float(temperature):>4} {path:>4} | {mib(r['saved']):>9} "
                  f"{mib(r['saved_new']):>8} | {mib(r['peak']):>8} | {r['time']:7.3f}")


if __name__ == "__main__":
    main()
