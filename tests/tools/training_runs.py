#!/usr/bin/python3
"""Whole `rewind train` runs that a unit test cannot make: a process killed with SIGKILL and
resumed, and data-parallel jobs under mpirun (their exactness, their faults).

  training_runs.py resume REWIND EXAMPLES      kill at a random step, --resume auto, compare
  training_runs.py mpi REWIND                  --distributed against --accumulate; faults

Each check prints one line; the script exits non-zero if any fails. The random kill points
come from a seed printed first (REWIND_TEST_SEED=N repeats a run).
"""
import os
import random
import signal
import struct
import json
import subprocess
import sys
import tempfile
import time

failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def losses(csv):
    with open(csv) as f:
        return [line.split(",")[:2] for line in f.read().splitlines()[1:]]


def read_tensors(path):
    """{name: (shape, list of floats)} from a safetensors file (F32/F64), without numpy."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        fmt = "f" if e["dtype"] == "F32" else "d"
        count = (end - b) // struct.calcsize(fmt)
        out[name] = struct.unpack("<%d%s" % (count, fmt), data[8 + n + b:8 + n + end])
    return out


def processes_with(marker):
    """PIDs whose command line contains `marker` (the run's own temporary folder)."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def kill_after_checkpoint(cmd, ckdir, target, rng):
    """Starts `cmd`, SIGKILLs it a moment after checkpoint `target` appears; True if it was
    killed before it finished."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    want = os.path.join(ckdir, "step-%08d.safetensors" % target)
    while p.poll() is None and not os.path.exists(want):
        time.sleep(0.0005)
    time.sleep(rng.uniform(0, 0.004))
    p.send_signal(signal.SIGKILL)
    return p.wait() == -signal.SIGKILL


def resume(rewind, examples):
    seed = int(os.environ.get("REWIND_TEST_SEED", time.time_ns() % 1000000))
    print(f"seed {seed} (REWIND_TEST_SEED={seed} repeats these kill points)")
    rng = random.Random(seed)
    base = ["train", "--task", "adding", "--hidden", "24", "--seq-len", "20", "--batch", "16",
            # 400 steps, killed after checkpoint 20-180: 220 or more steps are still to run when
            # the kill comes (up to 4 ms after the checkpoint appears). With 200, the last ones
            # took less than that on a fast host, and the run could finish before the kill.
            "--steps", "400", "--checkpoint-every", "20", "--keep", "3", "--no-progress",
            "--log-every", "5"]
    cells = [["--cell", c] for c in ("lstm", "gru", "rnn")]
    cells.append(["--cell-file", os.path.join(examples, "cells", "mgu.cell")])
    # Each optimizer with one cell, every cell at least once: what a checkpoint holds of the
    # optimizer (its per-parameter state) does not depend on the cell, nor the cell's weights on
    # the optimizer. The pairing turns with the seed, so runs over time cover all 20 pairs; all
    # 20 in every run were 3/4 of the suite's time under the sanitizers for no code path more.
    optimizers = ("sgd", "rmsprop", "adam", "adamw", "adagrad")
    turn = rng.randrange(len(cells))
    pairs = [(opt, cells[(k + turn) % len(cells)]) for k, opt in enumerate(optimizers)]
    with tempfile.TemporaryDirectory(prefix="rewind-resume-") as tmp:
        for opt, cell in pairs:
            name = f"{opt} {cell[-1].split('/')[-1]}"
            d = os.path.join(tmp, name.replace(" ", "_"))
            os.makedirs(d)
            args = [rewind] + base + ["--optimizer", opt] + cell
            r = run(args + ["--checkpoint-dir", d + "/a", "--save", d + "/a.st",
                            "--log", d + "/a.csv"])
            if r.returncode != 0:
                check(False, f"{name}: the uninterrupted run failed: {r.stderr.strip()}")
                continue
            target = 20 * rng.randint(1, 9)
            b_args = args + ["--checkpoint-dir", d + "/b", "--save", d + "/b.st",
                             "--log", d + "/b.csv"]
            killed = kill_after_checkpoint(b_args, d + "/b", target, rng)
            # A kill during a write leaves a step-N.safetensors.tmp beside them, which no
            # reader looks at: only finished checkpoints count here.
            left = sorted(f for f in os.listdir(d + "/b") if f.endswith(".safetensors"))
            check(killed and not os.path.exists(d + "/b.st"),
                  f"{name}: killed with SIGKILL after checkpoint {target} (left {left[-1]})")
            # One run in four also finds its newest checkpoint damaged (cut in half).
            damaged = rng.random() < 0.25 and len(left) > 1
            if damaged:
                newest = os.path.join(d + "/b", left[-1])
                with open(newest, "r+b") as f:
                    f.truncate(os.path.getsize(newest) // 2)
            r = run(b_args + ["--resume", "auto"])
            said = r.stdout
            check(r.returncode == 0 and "resumed from" in said and
                  (not damaged or "skipped a checkpoint" in said),
                  f"{name}: --resume auto" + (" past a damaged newest checkpoint" if damaged else "")
                  + ("" if r.returncode == 0 else f": {r.stderr.strip()}"))
            if r.returncode == 0:
                check(same_file(d + "/a.st", d + "/b.st"),
                      f"{name}: weights byte-identical to the uninterrupted run's")
                check(losses(d + "/a.csv") == losses(d + "/b.csv"),
                      f"{name}: the same loss log, step by step")
        # Resuming with other options is refused, naming them (the sgd run's checkpoints).
        sgd_cell = pairs[0][1]
        d = os.path.join(tmp, f"sgd_{sgd_cell[-1].split('/')[-1]}")
        other = [x if x != "24" else "32" for x in base]  # --hidden 32
        r = run([rewind] + other + ["--optimizer", "sgd"] + sgd_cell + ["--checkpoint-dir",
                                                                      d + "/a", "--resume", "auto"])
        check(r.returncode != 0 and "does not fit this model and optimizer" in r.stderr,
              "resuming with another --hidden is refused: " + r.stderr.strip()[:150])
        other = [x if x != "16" else "8" for x in base]  # --batch 8: same shapes, other data
        r = run([rewind] + other + ["--optimizer", "sgd"] + sgd_cell + ["--checkpoint-dir",
                                                                      d + "/a", "--resume", "auto"])
        check(r.returncode != 0 and "batch is '16' there, '8' here" in r.stderr,
              "resuming with another --batch is refused: " + r.stderr.strip()[:150])


def mpirun(n):
    return ["mpirun", "-np", str(n), "--oversubscribe"]


def mpi(rewind):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none", OMP_NUM_THREADS="1")
    small = ["train", "--task", "adding", "--hidden", "8", "--seq-len", "10", "--steps", "100",
             "--no-progress"]
    with tempfile.TemporaryDirectory(prefix="rewind-mpi-") as tmp:
        # Exact: N ranks in ordered mode = one process accumulating the same N micro-batches.
        # Every optimizer and every cell at both rank counts (the reduction sees gradients, not
        # which cell or optimizer made them: the cross product, 30 mpiruns, was half this test).
        cells = ("lstm", "gru", "rnn")
        for n in (4, 2):
            for k, opt in enumerate(("sgd", "rmsprop", "adam", "adamw", "adagrad")):
                cell = cells[(k + n) % 3]
                a, b = f"{tmp}/acc.st", f"{tmp}/mpi.st"
                ra = run([rewind] + small + ["--cell", cell, "--optimizer", opt, "--batch", "16",
                                             "--accumulate", str(n), "--save", a], env=env)
                rb = run(mpirun(n) + [rewind] + small + [
                    "--cell", cell, "--optimizer", opt, "--batch", "16", "--distributed",
                    "--reduce", "ordered", "--check-replicas", "25", "--save", b], env=env)
                ok = ra.returncode == 0 and rb.returncode == 0 and same_file(a, b)
                check(ok, f"-np {n} --reduce ordered = --accumulate {n}, byte for byte: {cell} {opt}"
                      + ("" if rb.returncode == 0 else ": " + rb.stderr.strip()[-300:]))
        # Epoch training on Fashion-MNIST (when Debian's dataset-fashion-mnist is there): each rank
        # takes its rows of the epoch's global batch, so 2 ordered ranks = --accumulate 2, and a
        # run resumed mid-epoch under mpirun continues the same epoch order.
        if os.path.isdir("/usr/share/datasets/fashion-mnist"):
            fashion = ["train", "--task", "fashion-rows", "--cell", "gru", "--hidden", "16",
                       "--subset", "320", "--validation", "200", "--epochs", "2", "--batch", "16",
                       "--no-progress"]
            a, b, c = f"{tmp}/f-acc.st", f"{tmp}/f-mpi.st", f"{tmp}/f-resumed.st"
            ra = run([rewind] + fashion + ["--accumulate", "2", "--save", a], env=env)
            rb = run(mpirun(2) + [rewind] + fashion + [
                "--distributed", "--reduce", "ordered", "--save", b, "--checkpoint-every", "7",
                "--checkpoint-dir", f"{tmp}/f-ck", "--keep", "0"], env=env)
            ok = ra.returncode == 0 and rb.returncode == 0 and same_file(a, b)
            check(ok, "fashion-rows, 2 epochs: -np 2 --reduce ordered = --accumulate 2, byte for byte"
                  + ("" if rb.returncode == 0 else ": " + rb.stderr.strip()[-300:]))
            rc = run(mpirun(2) + [rewind] + fashion + [
                "--distributed", "--reduce", "ordered", "--save", c,
                "--resume", f"{tmp}/f-ck/step-00000014.safetensors"], env=env)
            check(rc.returncode == 0 and same_file(b, c) and "resumed from" in rc.stdout,
                  "fashion-rows: resumed under mpirun at step 14 (epoch 2, its 4th step) = "
                  "the uninterrupted run" + ("" if rc.returncode == 0 else ": " + rc.stderr.strip()[-300:]))
        else:
            print("skipped the fashion-rows runs: Debian's dataset-fashion-mnist is not installed")
        # Close to the large batch (float): 4 ranks x 16 against one process x 64, 10 steps.
        for opt in ("sgd", "adam"):
            a, b = f"{tmp}/big.st", f"{tmp}/ranks.st"
            ten = [x if x != "100" else "10" for x in small]
            run([rewind] + ten + ["--optimizer", opt, "--batch", "64", "--save", a], env=env)
            run(mpirun(4) + [rewind] + ten + ["--optimizer", opt, "--batch", "16", "--distributed",
                                              "--save", b], env=env)
            ta, tb = read_tensors(a), read_tensors(b)
            worst = max(abs(x - y) / (1 + abs(x)) for k in ta for x, y in zip(ta[k], tb[k]))
            check(worst <= 1e-5, f"4 ranks x 16 vs 1 x 64, {opt}, float, 10 steps: "
                                 f"max |dθ|/(1+|θ|) = {worst:.2e} (<= 1e-5)")
        # A replica that drifts is caught at the next check, naming the step.
        r = run(mpirun(2) + [rewind] + small + ["--batch", "16", "--distributed",
                                                "--check-replicas", "10"],
                env=dict(env, REWIND_TEST_PERTURB="1:30"))
        check(r.returncode != 0 and "after step 30 the parameters of rank 1 differ" in r.stderr,
              "--check-replicas 10 stops a drifted replica at step 30")
        # Faults: one rank killed (SIGKILL), one rank hung (SIGSTOP, --step-timeout).
        longer = ["train", "--task", "adding", "--hidden", "32", "--seq-len", "40", "--batch", "16",
                  "--steps", "400", "--no-progress", "--distributed", "--reduce", "ordered"]
        for fault in ("kill", "hang"):
            d = f"{tmp}/{fault}"
            args = mpirun(2) + [rewind] + longer + ["--checkpoint-every", "20", "--checkpoint-dir",
                                                    d, "--save", d + ".st", "--step-timeout", "3"]
            p = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            while p.poll() is None and not os.path.exists(f"{d}/step-00000040.safetensors"):
                time.sleep(0.001)
            ranks = [pid for pid in processes_with(d) if "mpirun" not in open(
                f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0].decode()]
            victim = None
            for pid in ranks:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if b"OMPI_COMM_WORLD_RANK=1\0" in f.read():
                        victim = pid
            if victim is None:
                check(False, f"{fault}: found no rank 1 among {ranks}")
                p.kill()
                continue
            t0 = time.time()
            os.kill(victim, signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
            try:
                rc = p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = None
            took = time.time() - t0
            time.sleep(0.5)
            left = processes_with(d)
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            limit = 10 if fault == "kill" else 3 + 10
            check(rc not in (None, 0) and took <= limit and not left,
                  f"rank 1 {'killed' if fault == 'kill' else 'stopped (hung)'}: the job exits "
                  f"with {rc} after {took:.1f} s (<= {limit}), {len(left)} processes left")
            if fault == "kill":
                # Resume: the same weights as the uninterrupted two-rank run (ordered mode).
                r = run(mpirun(2) + [rewind] + longer + ["--checkpoint-every", "20",
                                                          "--checkpoint-dir", d, "--resume", "auto",
                                                          "--save", d + ".st"], env=env)
                run(mpirun(2) + [rewind] + longer + ["--save", d + "-whole.st"], env=env)
                check(r.returncode == 0 and same_file(d + ".st", d + "-whole.st"),
                      "after the kill, --resume auto ends with the uninterrupted run's weights")


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("resume", "mpi"):
        print(__doc__)
        return 2
    if sys.argv[1] == "resume":
        resume(sys.argv[2], sys.argv[3])
    else:
        mpi(sys.argv[2])
    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
