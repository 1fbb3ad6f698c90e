#!/usr/bin/env python3
"""Runs rewind's and PyTorch's training benchmarks in one go and prints a table with ratios.

    python3 tools/bench/compare.py [--build build] [--configs "1 1,1 2,2 2"] [--quick]

rewind: build/tools/bench/bench_train, one process per workload (so peak RSS is per workload),
one thread; with --omp-build, also two threads from a -DREWIND_OPENMP=ON build. PyTorch: ../shared/peers/torch_rnn_bench.py under Debian's /usr/bin/python3 with
python3-torch, once per thread configuration ("torch threads, BLAS threads"); its peak RSS is
that of the whole run. Without python3-torch the PyTorch columns are skipped with a message.
Medians, all in this one run: the machine is noisy, compare ratios, not figures across runs.
"""
import argparse
import os
import resource
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEER = os.path.join(os.path.dirname(ROOT), "shared", "peers", "torch_rnn_bench.py")
WORKLOADS = [f"train-{c}-{h}" for h in (128, 512) for c in ("lstm", "gru", "rnn")]


def rewind_side(build, reps, threads=1):
    rows = {}
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    for w in WORKLOADS + ["tiny-ops"]:
        cmd = [os.path.join(build, "tools", "bench", "bench_train"), "--workload", w]
        if reps:
            cmd += ["--reps", str(reps)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout.split()
        rows[w] = {"ms": float(out[2]), "rss": out[4].split("=")[1] if len(out) > 4 and "=" in out[4] else ""}
        print(f"rewind ({threads} thread{'s' if threads > 1 else ''}):", " ".join(out), flush=True)
    return rows


def torch_side(config):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(["/usr/bin/python3", PEER] + config.split(), capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"PyTorch ({config}) failed: {proc.stderr.strip().splitlines()[-1:]}")
        return None
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    rows = {}
    for line in proc.stdout.splitlines():
        print(f"torch {config}:", line, flush=True)
        parts = line.split()
        rows.setdefault(parts[0], {})[parts[1]] = float(parts[2])
    return rows, max(peak, before) / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--configs", default="1 1,1 2,2 2")
    ap.add_argument("--omp-build", help="a build with -DREWIND_OPENMP=ON for rewind's 2-thread column")
    ap.add_argument("--quick", action="store_true", help="PyTorch at '1 1' only, fewer rewind repetitions")
    args = ap.parse_args()
    configs = ["1 1"] if args.quick else [c.strip() for c in args.configs.split(",")]
    rewind = rewind_side(args.build, 5 if args.quick else 0)
    rewind2 = rewind_side(args.omp_build, 5 if args.quick else 0, 2) if args.omp_build else None
    have_torch = subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True).returncode == 0
    torch = {}
    if not have_torch:
        print("PyTorch columns skipped: Debian's python3-torch is not installed (apt-get install python3-torch).")
    else:
        for c in configs:
            r = torch_side(c)
            if r:
                torch[c] = r
    print()
    print("| workload | rewind 1 thread ms (peak MB) | rewind 2 threads ms | PyTorch pinned 1 thread, fused | PyTorch best (config, variant) | rewind 1 / pinned | rewind 2 / best |")
    print("|---|---|---|---|---|---|---|")
    for w in WORKLOADS:
        r = rewind[w]
        pinned = torch.get("1 1", (None, 0))[0]
        pinned_ms = pinned.get(w, {}).get("fused") if pinned else None
        best = None
        for c, (rows, _) in torch.items():
            for variant, ms in rows.get(w, {}).items():
                if best is None or ms < best[0]:
                    best = (ms, c, variant)
        two = rewind2[w]["ms"] if rewind2 else None
        cells = [w, f"{r['ms']:.1f} ({r['rss']})", f"{two:.1f}" if two else "-",
                 f"{pinned_ms:.1f}" if pinned_ms else "-",
                 f"{best[0]:.1f} ({best[1]}, {best[2]})" if best else "-",
                 f"{r['ms'] / pinned_ms:.2f}" if pinned_ms else "-",
                 f"{(two or r['ms']) / best[0]:.2f}" if best else "-"]
        print("| " + " | ".join(cells) + " |")
    print(f"| tiny-ops | {rewind['tiny-ops']['ms']:.3f} ms = {rewind['tiny-ops']['ms'] * 1e6 / 3000:.0f} ns/op | "
          + " | ".join(["-"] * 5) + " |")
    for c, (_, peak) in torch.items():
        print(f"PyTorch '{c}' peak RSS over its whole run: {peak:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
