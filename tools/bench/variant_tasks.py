#!/usr/bin/env python3
"""Trains each of today's variant cells (examples/cells) and the built-in LSTM and GRU on two
tasks that separate them, and prints a markdown table: final loss, the no-memory baseline,
accuracy where the task has one, and training steps per second. Each row is one `rewind train`
command, printed above the table.

    python3 tools/bench/variant_tasks.py [--build build] [--steps N] [--jobs J]

The tasks: `adding` at T = 200 (Hochreiter & Schmidhuber's adding problem: MSE at the last
step, 0.167 is predicting the mean) and `selective-copy` at T = 50 (ten symbols at random places
among blanks, reproduced after a delimiter: what to keep depends on the input, which a fixed
linear recurrence cannot do). Hidden 64, batch 32, Adam at 3e-3, gradients clipped at 5, seed 1;
one thread per run, J runs at a time (default 1: steps/s are then comparable).
"""
import argparse
import concurrent.futures
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VARIANTS = ["mingru", "minlstm", "lru", "slstm", "s6", "gla", "deltanet", "mlstm", "gated_deltanet"]
TASKS = {"adding": ["--task", "adding", "--seq-len", "200"],
         "selective-copy": ["--task", "selective-copy", "--seq-len", "50"]}


def command(build, model, task, steps):
    cell = ["--cell", model] if model in ("lstm", "gru") else \
        ["--cell-file", os.path.join(ROOT, "examples", "cells", model + ".cell")]
    return [os.path.join(build, "tools", "rewind", "rewind"), "train"] + TASKS[task] + cell + [
        "--hidden", "64", "--batch", "32", "--steps", str(steps), "--optimizer", "adam",
        "--lr", "3e-3", "--clip", "5", "--seed", "1", "--no-progress", "--log-every", "100"]


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:]}
    text = out.stdout
    got = {}
    m = re.search(r"final loss ([0-9.e+-]+) .*without memory: ([0-9.e+-]+)", text)
    if m:
        got["loss"], got["baseline"] = float(m.group(1)), float(m.group(2))
    m = re.search(r"\(([0-9.]+) steps/s\)", text)
    if m:
        got["rate"] = float(m.group(1))
    m = re.search(r"^accuracy ([0-9.]+)", text, re.M)
    if m:
        got["accuracy"] = float(m.group(1))
    return got


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    models = ["lstm", "gru"] + VARIANTS
    cmds = {(m, t): command(args.build, m, t, args.steps) for m in models for t in TASKS}
    for (m, t), c in cmds.items():
        print(" ".join(os.path.relpath(x, ROOT) if x.startswith(ROOT) else x for x in c))
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(cmds, pool.map(run, cmds.values())))
    print()
    print(f"| cell | adding T=200: final loss (mean 0.167) | steps/s | selective copy T=50: "
          f"final loss (no memory {results[('lstm', 'selective-copy')].get('baseline', 0):.3f}) "
          f"| accuracy | steps/s |")
    print("|---|---|---|---|---|---|")
    for m in models:
        a, s = results[(m, "adding")], results[(m, "selective-copy")]
        if "error" in a or "error" in s:
            print(f"| {m} | failed: {a.get('error') or s.get('error')} | | | | |")
            continue
        print(f"| {m} | {a['loss']:.4f} | {a['rate']:.0f} | {s['loss']:.3f} | "
              f"{s.get('accuracy', 0):.3f} | {s['rate']:.0f} |")


if __name__ == "__main__":
    main()
