#!/usr/bin/python3
"""PyTorch peer for `rewind train --task adding`: the same problem (sequence length 50, two
markers, one in each half), hidden 64, batch 64, Adam 1e-3, gradient norm clipped to 5, float32,
CPU. Prints the mean loss per 500 steps and the wall time, for comparison with rewind.

    /usr/bin/python3 tools/torch_adding.py lstm|gru|rnn [steps] [threads]
"""
import os
import sys

threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

cell = sys.argv[1] if len(sys.argv) > 1 else "lstm"
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 6000
torch.set_num_threads(threads)
torch.manual_seed(1)
T, B, H = 50, 64, 64
core = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell](2, H)
head = nn.Linear(H, 1)
opt = torch.optim.Adam(list(core.parameters()) + list(head.parameters()), lr=1e-3)


def batch():
    x = torch.zeros(T, B, 2)
    x[:, :, 0] = torch.rand(T, B)
    i = torch.randint(0, T // 2, (B,))
    j = torch.randint(T // 2, T, (B,))
    x[i, torch.arange(B), 1] = 1
    x[j, torch.arange(B), 1] = 1
    y = (x[:, :, 0] * x[:, :, 1]).sum(0).unsqueeze(1)
    return x, y


t0 = time.perf_counter()
acc = 0.0
for step in range(1, steps + 1):
    x, y = batch()
    out, _ = core(x)
    loss = nn.functional.mse_loss(head(out[-1]), y)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(core.parameters()) + list(head.parameters()), 5.0)
    opt.step()
    acc += loss.item()
    if step % 500 == 0:
        print(f"step {step} loss {acc / 500:.4f} {time.perf_counter() - t0:.1f}s", flush=True)
        acc = 0.0
print(f"torch {torch.__version__} {cell}: {steps} steps in {time.perf_counter() - t0:.1f}s")
