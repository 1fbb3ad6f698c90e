#!/usr/bin/python3
"""PyTorch's side of the Fashion-MNIST table: the model `rewind train --task fashion-<view>` trains,
trained the same way, timed per epoch.

    /usr/bin/python3 tools/bench/torch_fashion.py --view rows --cell gru --hidden 128 --epochs 10
        [--batch 128] [--lr 1e-3] [--validation 5000] [--subset 0] [--seed 1]
        [--threads 1] [--blas-threads N] [--data /usr/share/datasets/fashion-mnist]

The same data (Debian's dataset-fashion-mnist, read here with gzip and numpy), the same views
(a row of 28 pixels per step; a pixel per step; a pixel per step in a fixed random order),
pixels scaled to [0, 1] and standardised with the training file's mean and std, the same split sizes (the held-out images are a seeded choice, drawn by
numpy: not the same images as rewind's), one recurrent layer (torch.nn.GRU / LSTM, fused) and a
linear head on the last step, softmax cross-entropy, Adam, batches in a new random order each
epoch with the last partial batch dropped, PyTorch's default initialisation (the scheme rewind's
layers use: U(-1/sqrt(H), 1/sqrt(H)) for the recurrent weights, Kaiming-uniform for the head).
After each epoch the validation accuracy; the best epoch's weights are tested.
Prints one JSON object per epoch and one for the run (test accuracy, peak RSS); on stderr which
BLAS torch loaded. OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed before torch loads, so
OpenBLAS picks its own kernels (compare.py may force faster ones at load; see PeerBlas there).
"""
import argparse
import gzip
import json
import os
import sys

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--view", choices=["rows", "pixels", "permuted"], default="rows")
ap.add_argument("--cell", choices=["gru", "lstm", "rnn"], default="gru")
ap.add_argument("--hidden", type=int, default=128)
ap.add_argument("--epochs", type=int, default=10)
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--validation", type=int, default=5000)
ap.add_argument("--subset", type=int, default=0)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--blas-threads", type=int)
ap.add_argument("--eval-batch", type=int, default=1000)
ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
args = ap.parse_args()

# Thread pools pinned before torch loads (the pthread OpenBLAS ignores torch.set_num_threads).
os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads or args.threads)
os.environ["OMP_NUM_THREADS"] = str(args.threads)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if "OPENBLAS_CORETYPE" not in os.environ or "LD_PRELOAD" not in os.environ:
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        os.environ.pop(k, None)
import resource
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def blas_in_use():
    try:
        libs = open("/proc/self/maps").read()
    except OSError:
        return "unknown"
    if "openblas" in libs:
        return "openblas"
    if "libblas.so" in libs or "/blas/" in libs:
        return "reference-blas (install libopenblas0-pthread)"
    return "unknown"


def read_idx(path, dims):
    with gzip.open(path) as f:
        raw = f.read()
    if raw[:2] != b"\0\0" or raw[2] != 8 or raw[3] != dims:
        sys.exit(f"{path}: not an unsigned-byte IDX file of {dims} dimensions")
    shape = [int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(part):
    images = read_idx(os.path.join(args.data, f"{part}-images-idx3-ubyte.gz"), 3)
    labels = read_idx(os.path.join(args.data, f"{part}-labels-idx1-ubyte.gz"), 1)
    return images, labels


torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)
train_images, train_labels = load("train")
test_images, test_labels = load("t10k")

order = rng.permutation(len(train_labels))
validation = np.sort(order[len(order) - args.validation:])
training = np.sort(order[:len(order) - args.validation])
if args.subset:
    training = np.sort(rng.choice(training, args.subset, replace=False))
pixel_order = rng.permutation(28 * 28) if args.view == "permuted" else np.arange(28 * 28)
# Standardised with the training file's pixel moments, as rewind's fashion tasks are.
MEAN, STD = float((train_images / 255.0).mean()), float((train_images / 255.0).std())


def sequences(images):
    """(T, N, F) float32, standardised."""
    x = torch.from_numpy(((images / 255.0 - MEAN) / STD).astype(np.float32))
    if args.view == "rows":
        return x.permute(1, 0, 2).contiguous()
    flat = x.reshape(len(images), 28 * 28)[:, torch.from_numpy(pixel_order)]
    return flat.t().unsqueeze(2).contiguous()


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        features = 28 if args.view == "rows" else 1
        self.core = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}[args.cell](features, args.hidden)
        self.head = nn.Linear(args.hidden, 10)

    def forward(self, xs):
        return self.head(self.core(xs)[0][-1])


model = Model()
opt = torch.optim.Adam(model.parameters(), lr=args.lr)
x_train, y_train = sequences(train_images[training]), torch.from_numpy(train_labels[training].astype(np.int64))
x_val, y_val = sequences(train_images[validation]), torch.from_numpy(train_labels[validation].astype(np.int64))
x_test, y_test = sequences(test_images), torch.from_numpy(test_labels.astype(np.int64))
print(f"# blas {blas_in_use()}", file=sys.stderr, flush=True)


def accuracy(xs, ys):
    right = 0
    with torch.no_grad():
        for b in range(0, xs.shape[1], args.eval_batch):
            right += (model(xs[:, b:b + args.eval_batch]).argmax(1) == ys[b:b + args.eval_batch]).sum().item()
    return right / xs.shape[1]


per_epoch = len(training) // args.batch
best, best_state, best_epoch = -1.0, None, 0
for epoch in range(1, args.epochs + 1):
    perm = torch.from_numpy(rng.permutation(len(training)))
    t0 = time.perf_counter()
    loss_sum = acc_sum = 0.0
    for k in range(per_epoch):
        idx = perm[k * args.batch:(k + 1) * args.batch]
        logits = model(x_train[:, idx])
        loss = F.cross_entropy(logits, y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_sum += loss.item()
        acc_sum += (logits.argmax(1) == y_train[idx]).float().mean().item()
    train_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    val = accuracy(x_val, y_val) if args.validation else -1.0
    eval_seconds = time.perf_counter() - t1
    if val > best:
        best, best_epoch = val, epoch
        best_state = {k: v.clone() for k, v in model.state_dict().items()}
    print(json.dumps({"epoch": epoch, "loss": loss_sum / per_epoch, "accuracy": acc_sum / per_epoch,
                      "validation": val, "train_seconds": train_seconds,
                      "eval_seconds": eval_seconds}), flush=True)
if best_state is not None:
    model.load_state_dict(best_state)
print(json.dumps({"test_accuracy": accuracy(x_test, y_test), "best_epoch": best_epoch,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  "threads": args.threads, "blas_threads": args.blas_threads or args.threads}),
      flush=True)
