#!/usr/bin/env python3
"""Runs rewind's and PyTorch's training benchmarks in one go and prints a table with ratios.

    python3 tools/bench/compare.py [--build build] [--omp-build build-omp] [--rounds N]
                                   [--configs "1 1,1 2,2 2"] [--quick] [--scaling] [--memory N]
                                   [--hvp] [--checkpointing] [--distributed] [--variants]
                                   [--fashion [--fashion-epochs N] [--pixel-epochs N] [--pixel-subset N]
                                    [--fashion-seeds 1,2,3] [--fashion-batch N] [--fashion-threads 2]]

rewind: build/tools/bench/bench_train, one process per workload (so peak RSS is per workload),
one thread; with --omp-build, also two threads from a -DREWIND_OPENMP=ON build, each workload's
two runs back to back. --rounds N repeats rewind's set and PyTorch's in turn N times and prints
the median of each round's ratios with their range (the host's speed drifts between the sets). PyTorch: ../shared/peers/torch_rnn_bench.py under Debian's /usr/bin/python3 with
python3-torch, once per thread configuration ("torch threads, BLAS threads"); its peak RSS is
that of the whole run. Without python3-torch the PyTorch columns are skipped with a message.
Medians, all in this one run: the machine is noisy, compare ratios, not figures across runs.
PyTorch gets its best: the peer script removes OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (which
this workplace has set, forcing AVX2 kernels on an AVX-512 processor) before torch loads, and this
script checks that torch loaded OpenBLAS (Debian's libopenblas0-pthread) and says so; with the
reference BLAS the PyTorch columns would flatter rewind, so they are marked. Where OpenBLAS does
not know the processor and picks slow kernels of its own (Debian 12's 0.3.21 gives an Emerald
Rapids Xeon its SSE3 ones), the fastest kernel set the processor runs is forced at load for the
peer (--peer-kernels; see PeerBlas), and the output says which and why.
How close to the machine: each workload's product rate (GFLOP/s) against, in this same run,
Eigen's 1024^3 sgemm, OpenBLAS's 1024^3 sgemm (through torch.mm, the peer's kernels, one thread) and
the FMA peak of one core (bench_train's fma-peak probe).
--scaling: train-lstm-128 at sequence lengths 50, 500 and 5000 (one process each): time and
peak RSS, and both per time step. --memory N: RSS and tape storage after 10, 100 and N steps.
--hvp: the second-order workloads instead: rewind's hvp-<cell>-<H> (H·v with respect to every
parameter, its ratio to the gradient, on an existing recording, tape storage against the
gradient's) and the peer's `hvp` mode (double backward, fused and composed) in the same run.
--checkpointing: checkpointed BPTT against plain BPTT (bench_train bptt-lstm-128, one process
per row, so each row's peak RSS is its own): time ratio, advances against revolve's prediction,
memory. PyTorch has no budgeted schedule (torch.utils.checkpoint takes hand-set segments), so
there is no peer column; the uniform schedule is that scheme in rewind.
--variants: today's recurrent variants (bench_train train-<variant>-<H>, the shipped
examples/cells files) against ../shared/peers/torch_variants_bench.py, which defines the
workloads, PyTorch pinned to one thread ('1 1'), each side's workloads in turn --rounds N times;
the table gives the median ratio per workload and the issue's target (0.33 at H=128, 0.6 at 512).
--fashion: Fashion-MNIST (Debian's dataset-fashion-mnist): `rewind train --task fashion-<view>` and
tools/bench/torch_fashion.py train the same model (one layer of 128, a linear head on the last step,
Adam, batch 128, standardised pixels, the same epochs) in turn, one thread each ('1 1'); the table
gives test accuracy (the best validation epoch's weights), the median seconds per training epoch
(validation excluded), their ratio, peak RSS, and the published figure where there is one. The row
task trains --fashion-epochs (10); the 784-step tasks --pixel-epochs (1; 0: none) on a seeded
--pixel-subset (10 000 images), as a time budget allows; one more row trains fashion-pixels under
--memory-budget 64M (rewind only: PyTorch has no budgeted schedule). --fashion-seeds 1,2,3 trains
the row task once per seed (accuracy: mean [range]); --fashion-batch (128) for every row; --fashion-threads 2 runs rewind from --omp-build on two threads against PyTorch as
--fashion-torch-config ('1 2').
--distributed: `rewind train` data parallel under mpirun (2 ranks x batch 32) against one process
at batch 32 (weak-scaling efficiency) and, with --omp-build, one process with two OpenMP threads
at batch 64 (the same samples per step); the reduction's time per step and the cost model.
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEER = os.path.join(os.path.dirname(ROOT), "shared", "peers", "torch_rnn_bench.py")
VARIANT_PEER = os.path.join(os.path.dirname(ROOT), "shared", "peers", "torch_variants_bench.py")
VARIANTS = ["mingru", "minlstm", "lru", "slstm", "s6", "gla", "deltanet", "mlstm", "gated_deltanet"]
VARIANT_TARGETS = {128: 0.33, 512: 0.6}
WORKLOADS = [f"train-{c}-{h}" for h in (128, 512) for c in ("lstm", "gru", "rnn")]


def bench_train(build, args, threads=1):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [os.path.join(build, "tools", "bench", "bench_train")] + args
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout


def fields(line):
    """'name variant ms ... key=value ...' -> dict with name, ms and the key=value pairs."""
    parts = line.split()
    out = {"name": parts[0], "ms": float(parts[2])}
    for p in parts[3:]:
        if "=" in p:
            k, v = p.split("=", 1)
            out[k] = v
    return out


def rewind_sides(build, omp_build, reps):
    """rewind's rows on one thread and, with omp_build, on two, workload by workload: the two
    runs of a workload back to back, so a change in the host's speed between them does not land
    in the 1 -> 2 threads ratio (the host's speed moves by 1.5x within an hour). Returns
    (one-thread rows, two-thread rows or None)."""
    rows, rows2 = {}, ({} if omp_build else None)
    for w in WORKLOADS + ["tiny-ops", "sgemm-1024", "fma-peak"]:
        args = ["--workload", w] + (["--reps", str(reps)] if reps else [])
        for b, threads, out in [(build, 1, rows)] + ([(omp_build, 2, rows2)] if omp_build else []):
            line = bench_train(b, args, threads).strip()
            out[w] = fields(line)
            print(f"rewind ({threads} thread{'s' if threads > 1 else ''}):", line, flush=True)
    return rows, rows2


def scaling(build):
    print("\ntrain-lstm-128 against sequence length (one process each, 1 thread):")
    print("| sequence length | ms per training step | ms per time step | peak RSS MB | MB per time step |")
    print("|---|---|---|---|---|")
    for n in (50, 500, 5000):
        reps = {50: 15, 500: 5, 5000: 3}[n]
        r = fields(bench_train(build, ["--workload", "train-lstm-128", "--seq-len", str(n), "--reps", str(reps)]))
        rss = float(r["peak_rss_mb"])
        print(f"| {n} | {r['ms']:.1f} | {r['ms'] / n:.3f} | {rss:.0f} | {rss / n:.2f} |", flush=True)


def memory(build, steps):
    print(f"\nResident set and tape storage over {steps} training steps (1 thread):")
    for w in WORKLOADS:
        print(bench_train(build, ["--workload", w, "--memory", str(steps)]).strip(), flush=True)


# Which OpenBLAS kernels PyTorch runs with. OpenBLAS (DYNAMIC_ARCH) picks its kernels from the
# processor's family and model when it loads; Debian 12's 0.3.21 does not know processors newer
# than it (an Emerald Rapids Xeon, family 6 model 207, gets its SSE3 "Prescott" kernels: 45
# GFLOP/s sgemm where its own AVX-512 kernels give 195-218). Removing the workplace's override is
# then not PyTorch's best, so `--peer-kernels auto` (the default) measures sgemm with OpenBLAS's
# own choice and with every kernel set the processor's flags allow, and runs the peer with the
# fastest. The peer script removes OPENBLAS_CORETYPE before torch loads, so a choice is made at
# the process's start instead: OpenBLAS is preloaded (LD_PRELOAD) with OPENBLAS_CORETYPE and
# OPENBLAS_NUM_THREADS set, and reads them in its constructor, before the script runs; the probe
# below removes the variables the way the script does and reports the kernels actually in use.
BLAS_PROBE = """
import ctypes, os, sys, time
for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # as the peer script does
    os.environ.pop(k, None)
os.environ.setdefault("OPENBLAS_NUM_THREADS", sys.argv[1])
import torch
torch.set_num_threads(int(sys.argv[1]))
path = next((l.split()[-1] for l in open("/proc/self/maps") if "libopenblas" in l), None)
core, threads = "none", 0
if path:
    lib = ctypes.CDLL(path)
    lib.openblas_get_corename.restype = ctypes.c_char_p
    core, threads = lib.openblas_get_corename().decode(), lib.openblas_get_num_threads()
a = torch.rand(1024, 1024); b = torch.rand(1024, 1024)
for _ in range(3): a @ b
t = []
for _ in range(15):
    t0 = time.perf_counter(); a @ b; t.append(time.perf_counter() - t0)
t.sort(); print(path, core, threads, 2 * 1024**3 / t[len(t) // 2] * 1e-9)
"""


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def kernel_candidates(flags):
    """OpenBLAS's x86-64 kernel sets (OPENBLAS_CORETYPE names) this processor can run, newest
    first: a set needs every instruction it is compiled for."""
    out = []
    avx512 = {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"} <= flags
    if avx512 and "avx512_bf16" in flags:
        out.append("Cooperlake")
    if avx512:
        out.append("SkylakeX")
    if {"avx2", "fma"} <= flags:
        out.append("Haswell")
    if "avx" in flags:
        out.append("Sandybridge")
    return out


class PeerBlas:
    """The OpenBLAS kernels the peer runs with: None for OpenBLAS's own choice, or a forced set."""

    def __init__(self):
        self.coretype = None   # OPENBLAS_CORETYPE forced at load, or None
        self.library = None    # the libopenblas that torch loads (preloaded when forcing)
        self.native = None     # OpenBLAS's own choice: (core name, GFLOP/s)
        self.tried = []        # (coretype, core name reported, GFLOP/s)

    def env(self, blas_threads=1):
        """The peer's environment: the workplace's OpenBLAS overrides removed (the peer script
        removes them too), and the chosen kernels forced at load if OpenBLAS's own are slower."""
        env = dict(os.environ)
        for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
            env.pop(k, None)
        if self.coretype:
            env["OPENBLAS_CORETYPE"] = self.coretype
            env["OPENBLAS_NUM_THREADS"] = str(blas_threads)
            env["LD_PRELOAD"] = " ".join(filter(None, [self.library, env.get("LD_PRELOAD")]))
        return env

    def probe(self, threads=1):
        """(library, core name, OpenBLAS threads, sgemm 1024^3 GFLOP/s) in the peer's setting."""
        proc = subprocess.run(["/usr/bin/python3", "-c", BLAS_PROBE, str(threads)],
                              capture_output=True, text=True, env=self.env(threads))
        if proc.returncode != 0:
            return None
        path, core, n, rate = proc.stdout.split()[-4:]
        return (None if path == "None" else path), core, int(n), float(rate)

    def choose(self, mode):
        """mode: 'native' (OpenBLAS's own choice), 'auto' (the fastest measured; a forced set must
        beat OpenBLAS's own by 5%, the probe's noise) or an OPENBLAS_CORETYPE name."""
        native = self.probe()
        if native is None or native[0] is None:
            return  # no torch, or torch without OpenBLAS: nothing to choose
        self.library, self.native = native[0], (native[1], native[3])
        if mode == "native":
            return
        for c in kernel_candidates(cpu_flags()) if mode == "auto" else [mode]:
            self.coretype = c
            r = self.probe()
            if r is not None:
                self.tried.append((c, r[1], r[3]))
        self.coretype = None
        fastest = max(self.tried, key=lambda t: t[2], default=None)
        if fastest and (mode != "auto" or fastest[2] > 1.05 * native[3]):
            self.coretype = fastest[0]
        if self.coretype:  # the peer's process must report the forced kernels
            check = self.probe()
            if check is None or check[1] != fastest[1]:
                print(f"PyTorch's OpenBLAS did not take OPENBLAS_CORETYPE={self.coretype} at load: "
                      f"keeping its own kernels ({native[1]})", flush=True)
                self.coretype = None

    def describe(self):
        if self.native is None:
            return "OpenBLAS not loaded by torch: no kernel choice"
        tried = ", ".join(f"{c} {g:.1f}" for c, _, g in self.tried)
        own = f"OpenBLAS's own choice on this processor is {self.native[0]} ({self.native[1]:.1f} GFLOP/s sgemm 1024^3)"
        if self.coretype:
            return (f"kernels {self.coretype}, forced at load (LD_PRELOAD of {self.library} with "
                    f"OPENBLAS_CORETYPE): {own}; measured {tried}")
        return f"kernels {self.native[0]}, OpenBLAS's own choice" + (f" (others measured: {tried})" if tried else "")


PEER_BLAS = PeerBlas()


def torch_ready(peer_kernels):
    """Whether python3-torch is there (says so if not); if it is, PyTorch's OpenBLAS kernels are
    chosen (PEER_BLAS) and printed."""
    if subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True).returncode:
        print("PyTorch columns skipped: Debian's python3-torch is not installed (apt-get install python3-torch).")
        return False
    PEER_BLAS.choose(peer_kernels)
    print(f"PyTorch's OpenBLAS: {PEER_BLAS.describe()}", flush=True)
    return True


def peer_env(blas_threads=1):
    return PEER_BLAS.env(blas_threads)


def blas_of(stderr):
    for line in stderr.splitlines():
        if line.startswith("# blas "):  # '# blas NAME [more about the run]'
            return line[len("# blas "):].split()[0]
    return "unknown"


def torch_side(config, mode=None, peer=PEER):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(["/usr/bin/python3", peer] + config.split() + ([mode] if mode else []),
                          capture_output=True, text=True,
                          env=peer_env(int(config.split()[-1])))
    if proc.returncode != 0:
        print(f"PyTorch ({config}) failed: {proc.stderr.strip().splitlines()[-1:]}")
        return None
    blas = blas_of(proc.stderr)
    print(f"torch {config}: BLAS loaded: {blas}" + ("" if blas == "openblas" else
          "  <- NOT OpenBLAS: install libopenblas0-pthread, these PyTorch figures are handicapped"),
          flush=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    rows = {}
    for line in proc.stdout.splitlines():
        print(f"torch {config}:", line, flush=True)
        parts = line.split()
        if len(parts) < 3 or parts[2] == "unsupported:":
            continue
        rows.setdefault(parts[0], {})[parts[1]] = float(parts[2])
    return rows, max(peak, before) / 1024.0, blas


def openblas_sgemm(threads):
    """OpenBLAS's 1024^3 sgemm in GFLOP/s through torch.mm with the peer's kernels; None without
    torch."""
    r = PEER_BLAS.probe(threads)
    return r[3] if r else None


HVP_WORKLOADS = [f"hvp-{c}-{h}" for h in (128, 512) for c in ("lstm", "gru", "rnn")]


# (sequence length, bench_train arguments); --quick keeps the first three.
CHECKPOINT_ROWS = [
    (1000, ["--checkpoints", "100"]),
    (1000, ["--checkpoints", "1000"]),
    (1000, ["--checkpoints", "100", "--schedule", "uniform"]),
    (10000, ["--checkpoints", "100"]),
    (10000, ["--checkpoints", "100", "--schedule", "online"]),
    (10000, ["--checkpoints", "10000"]),
    (10000, ["--checkpoints", "100", "--schedule", "uniform"]),
    (100000, ["--memory-budget", "64", "--no-plain", "--reps", "1"]),
]


def checkpointing_main(args):
    rows = CHECKPOINT_ROWS[:3] if args.quick else CHECKPOINT_ROWS
    print("| T | schedule | checkpoints | ms per step | plain ms | ratio | advances (predicted) | evaluations per step | peak RSS MB (plain) | tape MiB | checkpoints MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for steps, extra in rows:
        line = bench_train(args.build, ["--workload", "bptt-lstm-128", "--seq-len", str(steps)] + extra).strip()
        f = dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
        cells = [f["T"], f["schedule"], f["checkpoints"], f["ms_per_step"], f.get("plain_ms", "-"),
                 f.get("ratio", "-"), f"{f['advances']} ({f['predicted']})", f["evaluations_per_step"],
                 f"{f['peak_rss_mb']} ({f.get('plain_peak_rss_mb', '-')})", f["tape_mb"], f["checkpoint_mb"]]
        print("| " + " | ".join(cells) + " |", flush=True)


def train_rate(cmd, env):
    """samples/s, ms per step and the reduction's ms per step of one `rewind train` run."""
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    rate = ms = reduce_ms = None
    for line in out.splitlines():
        if line.startswith("done:"):
            rate = float(line.split("(")[1].split()[0])
        if line.startswith("gradient reduction:"):
            parts = line.split()
            reduce_ms, ms = float(parts[2]), float(parts[5])
        if line.startswith("cost model"):
            train_rate.model = line
    return rate, reduce_ms


def distributed_main(args):
    """Data parallel on this machine: 2 ranks x batch 32 against one process at batch 32 (weak
    scaling) and against one process with two OpenMP threads at batch 64 (the same samples)."""
    rewind = os.path.join(args.build, "tools", "rewind", "rewind")
    steps = "60" if args.quick else "300"
    base = ["train", "--task", "adding", "--cell", "lstm", "--hidden", "128", "--seq-len", "50",
            "--steps", steps, "--no-progress", "--log-every", steps]
    env1 = dict(os.environ, OMP_NUM_THREADS="1")
    mpi_env = dict(env1, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   OMPI_MCA_btl_vader_single_copy_mechanism="none")
    runs = {
        "1 process, 1 thread, batch 32": ([rewind] + base + ["--batch", "32"], env1, 32),
        "1 process, 1 thread, batch 64": ([rewind] + base + ["--batch", "64"], env1, 64),
        "2 ranks (mpirun, 1 thread each), batch 32 per rank": (
            ["mpirun", "-np", "2", "--bind-to", "core", rewind] + base +
            ["--batch", "32", "--distributed"], mpi_env, 64),
    }
    if args.omp_build:
        runs["1 process, 2 OpenMP threads, batch 64"] = (
            [os.path.join(args.omp_build, "tools", "rewind", "rewind")] + base + ["--batch", "64"],
            dict(os.environ, OMP_NUM_THREADS="2"), 64)
    rates = {k: [] for k in runs}
    reduce = []
    for rep in range(3):  # alternating, so drift hits every row alike
        for name, (cmd, env, batch) in runs.items():
            rate, red = train_rate(cmd, env)
            rates[name].append(rate * batch)
            if red is not None:
                reduce.append(red)
            print(f"run {rep + 1}: {name}: {rate * batch:.0f} samples/s", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print()
    print(f"rewind train --task adding --cell lstm --hidden 128 --seq-len 50 --steps {steps}; "
          "medians of 3 alternating runs")
    print("| configuration | samples/s | ms per step |")
    print("|---|---|---|")
    for name, (cmd, env, batch) in runs.items():
        print(f"| {name} | {med[name]:.0f} | {1e3 * batch / med[name]:.2f} |")
    one = med["1 process, 1 thread, batch 32"]
    two = med["2 ranks (mpirun, 1 thread each), batch 32 per rank"]
    print()
    print(f"weak-scaling efficiency (2 ranks x 32 against 1 x 32, time per step): {two / (2 * one):.2f}")
    if args.omp_build:
        omp = med["1 process, 2 OpenMP threads, batch 64"]
        print(f"2 ranks against one process with 2 OpenMP threads at batch 64: {two / omp:.2f}x the samples/s")
    print(f"gradient reduction: {statistics.median(reduce):.3f} ms per step (median over the runs)")
    print(getattr(train_rate, "model", ""))


def hvp_main(args, configs, have_torch):
    rewind = {}
    for w in HVP_WORKLOADS:
        line = bench_train(args.build, ["--workload", w] + (["--reps", "5"] if args.quick else [])).strip()
        rewind[w] = fields(line)
        print("rewind (1 thread):", line, flush=True)
    torch = {}
    if have_torch:
        for c in configs:
            r = torch_side(c, "hvp")
            if r:
                torch[c] = r[0]
    print()
    print("| workload | rewind grad ms | rewind H·v ms | rewind H·v / grad | on a recording / grad | tape H·v / grad | PyTorch H·v / grad (fused, composed; '1 1') | PyTorch best H·v ms (config, variant) | rewind H·v / PyTorch best |")
    print("|---|---|---|---|---|---|---|---|---|")
    for w in HVP_WORKLOADS:
        r = rewind[w]
        g = w.replace("hvp-", "grad-")
        pinned = torch.get("1 1", {})
        ratios = []
        for variant in ("fused", "composed"):
            h, gm = pinned.get(w, {}).get(variant), pinned.get(g, {}).get(variant)
            ratios.append(f"{h / gm:.2f}" if h and gm else "-")
        best = None
        for c, rows in torch.items():
            for variant, ms in rows.get(w, {}).items():
                if best is None or ms < best[0]:
                    best = (ms, c, variant)
        cells = [w, r["grad_ms"], f"{r['ms']:.1f}", r["ratio"], r["on_recording_ratio"], r["memory_ratio"],
                 ", ".join(ratios), f"{best[0]:.1f} ({best[1]}, {best[2]})" if best else "-",
                 f"{r['ms'] / best[0]:.2f}" if best else "-"]
        print("| " + " | ".join(str(c) for c in cells) + " |")


def variants_main(args, have_torch):
    workloads = [f"train-{v}-{h}" for h in (128, 512) for v in VARIANTS]
    ratios = {w: [] for w in workloads}
    last = {}
    for k in range(args.rounds):
        if args.rounds > 1:
            print(f"== round {k + 1} of {args.rounds} ==", flush=True)
        rewind = {}
        for w in workloads:
            line = bench_train(args.build, ["--workload", w] + (["--reps", "5"] if args.quick else [])).strip()
            rewind[w] = fields(line)["ms"]
            print("rewind (1 thread):", line, flush=True)
        peer = torch_side("1 1", peer=VARIANT_PEER) if have_torch else None
        rows = peer[0] if peer else {}
        for w in workloads:
            ms = next(iter(rows.get(w, {}).values()), None)
            last[w] = (rewind[w], ms)
            if ms:
                ratios[w].append(rewind[w] / ms)
    print()
    print("| workload | rewind ms (1 thread) | PyTorch eager ms ('1 1') | rewind / PyTorch"
          + (f" (median of {args.rounds} rounds)" if args.rounds > 1 else "") + " | target | met |")
    print("|---|---|---|---|---|---|")
    for w in workloads:
        r_ms, t_ms = last[w]
        target = VARIANT_TARGETS[int(w.rsplit("-", 1)[1])]
        ratio = statistics.median(ratios[w]) if ratios[w] else None
        print(f"| {w} | {r_ms:.2f} | " + (f"{t_ms:.2f}" if t_ms else "-") + " | "
              + (f"{ratio:.2f}" if ratio else "-") + f" | ≤ {target} | "
              + ("-" if ratio is None else "yes" if ratio <= target else "no") + " |")


FASHION_PEER = os.path.join(ROOT, "tools", "bench", "torch_fashion.py")
# Published test accuracies beside which a row stands (dataset, model, source).
FASHION_PUBLISHED = {
    ("rows", "gru"): "0.888 (Fashion-MNIST, GRU+SVM: the dataset's benchmark table)",
    ("rows", "lstm"): "-",
    ("pixels", "lstm"): "MNIST 0.973 (LSTM, Chang et al. 2019); none for Fashion",
    ("permuted", "lstm"): "MNIST 0.926 (LSTM, Chang et al. 2019); none for Fashion",
    ("pixels", "gru"): "-",
    ("permuted", "gru"): "-",
}


def fashion_rewind(build, view, cell, epochs, subset, extra=(), batch=128, threads=1, seed=1):
    import tempfile
    with tempfile.TemporaryDirectory(prefix="rewind-fashion-") as tmp:
        log = os.path.join(tmp, "log.csv")
        cmd = [os.path.join(build, "tools", "rewind", "rewind"), "train", "--task", f"fashion-{view}",
               "--cell", cell, "--hidden", "128", "--epochs", str(epochs), "--batch", str(batch),
               "--lr", "2e-3", "--seed", str(seed), "--no-progress", "--log", log] + (
                   ["--subset", str(subset)] if subset else []) + list(extra)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
        if proc.returncode != 0:
            print("rewind failed:", proc.stderr.strip()[-300:])
            return None
        with open(log) as f:
            rows = [line.split(",") for line in f.read().splitlines()[1:]]
    out = proc.stdout
    acc = float(out.split("test accuracy ")[1].split()[0])
    peak = float(out.split("peak memory ")[1].split()[0])
    seconds = [float(r[5]) for r in rows]
    shown = " ".join(cmd[1:]).replace(f" --log {log}", "").replace(" --no-progress", "")
    return {"accuracy": acc, "seconds": seconds, "peak": peak, "command": "rewind " + shown}


def fashion_torch(view, cell, epochs, subset, batch=128, config="1 1", seed=1):
    threads, blas = config.split()
    cmd = ["/usr/bin/python3", FASHION_PEER, "--view", view, "--cell", cell, "--hidden", "128",
           "--epochs", str(epochs), "--batch", str(batch), "--lr", "2e-3", "--threads", threads,
           "--blas-threads", blas, "--seed", str(seed)] + (["--subset", str(subset)] if subset else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=peer_env(int(blas)))
    if proc.returncode != 0:
        print("PyTorch failed:", proc.stderr.strip()[-300:])
        return None
    import json
    lines = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
    print(f"torch {view} {cell}: BLAS loaded: {blas_of(proc.stderr)}", flush=True)
    return {"accuracy": lines[-1]["test_accuracy"], "seconds": [l["train_seconds"] for l in lines[:-1]],
            "peak": lines[-1]["peak_rss_mb"]}


def fashion_main(args, have_torch):
    rows = [("rows", "gru", args.fashion_epochs, 0, ()), ("rows", "lstm", args.fashion_epochs, 0, ())]
    if args.pixel_epochs > 0:
        for view in ("pixels", "permuted"):
            for cell in ("lstm", "gru"):
                rows.append((view, cell, args.pixel_epochs, args.pixel_subset, ()))
        rows.append(("pixels", "lstm", args.pixel_epochs, args.pixel_subset, ("--memory-budget", "64M")))
    results = []
    threads, config = (2, args.fashion_torch_config) if args.fashion_threads == 2 else (1, "1 1")
    seeds = [int(x) for x in args.fashion_seeds.split(",")]

    def merged(runs):
        """Several seeds' runs as one: accuracies (mean, min, max), every epoch's seconds."""
        runs = [x for x in runs if x]
        if not runs:
            return None
        accs = [x["accuracy"] for x in runs]
        return {"accuracy": statistics.mean(accs), "range": (min(accs), max(accs)), "n": len(accs),
                "seconds": [t for x in runs for t in x["seconds"]], "peak": max(x["peak"] for x in runs),
                "command": runs[0].get("command")}

    for view, cell, epochs, subset, extra in rows:
        rs, ts = [], []
        # Seeds apply to the row task; the 784-step rows take the first seed only (time).
        for seed in seeds if view == "rows" else seeds[:1]:
            r = fashion_rewind(args.omp_build if threads == 2 else args.build, view, cell, epochs,
                               subset, extra, args.fashion_batch, threads, seed)
            print(f"rewind {view} {cell} {' '.join(extra)} seed {seed}: {r}", flush=True)
            t = fashion_torch(view, cell, epochs, subset, args.fashion_batch, config, seed) if have_torch and not extra else None
            print(f"torch {view} {cell} seed {seed}: {t}", flush=True)
            rs.append(r)
            ts.append(t)
        results.append((view, cell, epochs, subset, extra, merged(rs), merged(ts)))
    print()
    print(f"Batch {args.fashion_batch}; rewind on {threads} thread{'s' if threads > 1 else ''}, "
          f"PyTorch as '{config}' (torch threads, BLAS threads)")
    print(f"Test accuracy: the mean [range] over seeds {args.fashion_seeds} for the row task, "
          "one seed for the others; seconds per epoch: the median over every epoch run.")
    print("| task | cell | epochs x images | rewind test acc | PyTorch test acc | published | rewind s/epoch "
          "(median) | PyTorch s/epoch | rewind / PyTorch | rewind peak MB | PyTorch peak MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    def acc(x):
        if x["n"] == 1:
            return f"{x['accuracy']:.4f}"
        return f"{x['accuracy']:.4f} [{x['range'][0]:.4f}-{x['range'][1]:.4f}]"

    for view, cell, epochs, subset, extra, r, t in results:
        if r is None:
            continue
        rs = statistics.median(r["seconds"])
        ts = statistics.median(t["seconds"]) if t else None
        name = f"fashion-{view}" + (f" {' '.join(extra)}" if extra else "")
        print(f"| {name} | {cell} 128 | {epochs} x {subset or 55000} | {acc(r)} | "
              + (acc(t) if t else "-") + f" | {FASHION_PUBLISHED[(view, cell)] if not extra else '-'} | "
              f"{rs:.1f} | " + (f"{ts:.1f}" if ts else "-") + " | " + (f"{rs / ts:.2f}" if ts else "-")
              + f" | {r['peak']:.0f} | " + (f"{t['peak']:.0f}" if t else "-") + " |")
    print()
    for *_, r, _ in results:
        if r:
            print(f"    {r['command']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--configs", default="1 1,1 2,2 2")
    ap.add_argument("--omp-build", help="a build with -DREWIND_OPENMP=ON for rewind's 2-thread column")
    ap.add_argument("--quick", action="store_true", help="PyTorch at '1 1' only, fewer rewind repetitions")
    ap.add_argument("--rounds", type=int, default=1, metavar="N",
                    help="training steps: N rounds of rewind's workloads then PyTorch's "
                         "configurations; ratios taken within each round, their median printed")
    ap.add_argument("--scaling", action="store_true", help="also train-lstm-128 at lengths 50, 500, 5000")
    ap.add_argument("--memory", type=int, metavar="N", help="also RSS over N training steps per workload")
    ap.add_argument("--hvp", action="store_true", help="the second-order workloads (H·v) instead")
    ap.add_argument("--checkpointing", action="store_true", help="checkpointed against plain BPTT instead")
    ap.add_argument("--peer-kernels", default="auto", metavar="auto|native|CORETYPE",
                    help="PyTorch's OpenBLAS kernels: the fastest measured (auto), OpenBLAS's own "
                         "choice (native), or an OPENBLAS_CORETYPE name")
    ap.add_argument("--variants", action="store_true",
                    help="today's variant cells against torch_variants_bench.py instead")
    ap.add_argument("--distributed", action="store_true",
                    help="data parallel (mpirun, a -DREWIND_MPI=ON build) against one process instead")
    ap.add_argument("--fashion", action="store_true",
                    help="Fashion-MNIST training against torch_fashion.py instead")
    ap.add_argument("--fashion-epochs", type=int, default=10, help="epochs of the row task (--fashion)")
    ap.add_argument("--pixel-epochs", type=int, default=1, help="epochs of the 784-step tasks (--fashion)")
    ap.add_argument("--pixel-subset", type=int, default=10000,
                    help="training images of the 784-step tasks (--fashion; 0: all 55 000)")
    ap.add_argument("--fashion-batch", type=int, default=128, help="batch of every row (--fashion)")
    ap.add_argument("--fashion-seeds", default="1", help="seeds of the row task, e.g. 1,2,3 (--fashion)")
    ap.add_argument("--fashion-threads", type=int, default=1, choices=[1, 2],
                    help="2: rewind from --omp-build on two threads against PyTorch as "
                         "--fashion-torch-config (--fashion)")
    ap.add_argument("--fashion-torch-config", default="1 2",
                    help="PyTorch's threads with --fashion-threads 2 ('torch BLAS')")
    args = ap.parse_args()
    if args.fashion:
        return fashion_main(args, torch_ready(args.peer_kernels))
    if args.distributed:
        return distributed_main(args)
    configs = ["1 1"] if args.quick else [c.strip() for c in args.configs.split(",")]
    if args.checkpointing:
        return checkpointing_main(args)
    if args.hvp:
        return hvp_main(args, configs, torch_ready(args.peer_kernels))
    if args.variants:
        return variants_main(args, torch_ready(args.peer_kernels))
    have_torch = torch_ready(args.peer_kernels)
    # Each round: rewind's workloads (one and two threads back to back), then PyTorch's
    # configurations. Ratios are taken within a round, and the table gives their median over the
    # rounds (with the range when there are several): the host's speed drifts between the sets.
    rounds = []
    for k in range(args.rounds):
        if args.rounds > 1:
            print(f"== round {k + 1} of {args.rounds} ==", flush=True)
        rw, rw2 = rewind_sides(args.build, args.omp_build, 5 if args.quick else 0)
        tr = {}
        if have_torch:
            for c in configs:
                r = torch_side(c)
                if r:
                    tr[c] = r
        rounds.append((rw, rw2, tr))
    print()

    def spread(xs, fmt):
        """The median, and with several rounds the range: '0.42 [0.40-0.48]'."""
        if not xs:
            return "-"
        if len(xs) == 1:
            return format(xs[0], fmt)
        return f"{format(statistics.median(xs), fmt)} [{format(min(xs), fmt)}-{format(max(xs), fmt)}]"

    rate1 = statistics.median([float(rw["sgemm-1024"]["gflops"]) for rw, _, _ in rounds])
    rate2 = statistics.median([float(rw2["sgemm-1024"]["gflops"]) for _, rw2, _ in rounds]) if args.omp_build else None
    peak = statistics.median([float(rw["fma-peak"]["gflops"]) for rw, _, _ in rounds]) or None
    oblas = openblas_sgemm(1) if have_torch else None
    of_rounds = f" (medians of {args.rounds} rounds)" if args.rounds > 1 else ""
    print(f"Eigen sgemm 1024^3 in this run{of_rounds}: {rate1:.1f} GFLOP/s on 1 thread"
          + (f", {rate2:.1f} on 2 threads" if rate2 else ""))
    print(f"OpenBLAS sgemm 1024^3 (torch.mm, the peer's kernels) in this run: "
          + (f"{oblas:.1f} GFLOP/s on 1 thread" if oblas else "not measured (no python3-torch)"))
    print(f"FMA peak of one core in this run{of_rounds}: " + (f"{peak:.1f} GFLOP/s" if peak else "unknown"))
    blases = sorted({b for _, _, tr in rounds for (_, _, b) in tr.values()})
    if blases:
        print(f"PyTorch's BLAS in this run: {', '.join(blases)}; the workplace's OPENBLAS_CORETYPE "
              f"and OPENBLAS_L2_SIZE removed for its processes; {PEER_BLAS.describe()}")
    if args.rounds > 1:
        print(f"Times are medians over {args.rounds} rounds; ratios are taken within each round, "
              "median [range] over the rounds.")
    print("| workload | rewind 1 thread ms (peak MB) | rewind 2 threads ms | PyTorch pinned 1 thread, best variant | PyTorch best (config, variant) | rewind 1 / pinned | rewind 2 threads / PyTorch best | products GFLOP/s, 1 thread (of Eigen sgemm / OpenBLAS sgemm / FMA peak) |")
    print("|---|---|---|---|---|---|---|---|")
    for w in WORKLOADS:
        ones, twos, pins, bests, r_pin, r_best, rates = [], [], [], [], [], [], []
        for rw, rw2, tr in rounds:
            r = rw[w]
            pinned = tr.get("1 1", (None, 0, None))[0]
            pinned_best = min(pinned.get(w, {}).items(), key=lambda kv: kv[1]) if pinned and pinned.get(w) else None
            best = None
            for c, (rows, _, _) in tr.items():
                for variant, ms in rows.get(w, {}).items():
                    if best is None or ms < best[0]:
                        best = (ms, c, variant)
            two = rw2[w]["ms"] if rw2 else None
            ones.append(r["ms"])
            rates.append(float(r["gflops"]))
            if two:
                twos.append(two)
            if pinned_best:
                pins.append(pinned_best)
                r_pin.append(r["ms"] / pinned_best[1])
            if best:
                bests.append(best)
                r_best.append((two or r["ms"]) / best[0])
        g = statistics.median(rates)
        share = f"{g:.0f} ({g / rate1:.0%}" + (f" / {g / oblas:.0%}" if oblas else " / -") \
                + (f" / {g / peak:.0%})" if peak else " / -)")
        # PyTorch's columns: the median round's time, with the variant (and configuration) that
        # round's best was.
        pin = sorted(pins, key=lambda p: p[1])[len(pins) // 2] if pins else None
        best = sorted(bests)[len(bests) // 2] if bests else None
        cells = [w, f"{statistics.median(ones):.1f} ({rounds[0][0][w]['peak_rss_mb']})",
                 f"{statistics.median(twos):.1f}" if twos else "-",
                 f"{pin[1]:.1f} ({pin[0]})" if pin else "-",
                 f"{best[0]:.1f} ({best[1]}, {best[2]})" if best else "-",
                 spread(r_pin, ".2f"), spread(r_best, ".2f"), share]
        print("| " + " | ".join(cells) + " |")
    tiny = sorted((rw["tiny-ops"] for rw, _, _ in rounds), key=lambda t: t["ms"])[len(rounds) // 2]
    print(f"| tiny-ops | {tiny['ms']:.3f} ms = {tiny['ms'] * 1e6 / 3000:.0f} ns/op (recording "
          f"{tiny.get('record_ns_per_op', '-')}; with flush-to-zero {tiny.get('ftz_ns_per_op', '-')}) | "
          + " | ".join(["-"] * 6) + " |")
    if rounds[0][1] and args.rounds > 1:
        print("rewind 1 -> 2 threads, ms, per round (the two runs of a workload back to back):")
        for w in WORKLOADS:
            print(f"  {w}: " + "; ".join(f"{rw[w]['ms']:.1f} -> {rw2[w]['ms']:.1f}" for rw, rw2, _ in rounds))
    for c in configs:
        rss = [tr[c][1] for _, _, tr in rounds if c in tr]
        if rss:
            print(f"PyTorch '{c}' peak RSS over its whole run: {max(rss):.0f} MB")
    if args.scaling:
        scaling(args.build)
    if args.memory:
        memory(args.build, args.memory)


if __name__ == "__main__":
    sys.exit(main())
