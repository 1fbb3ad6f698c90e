#!/usr/bin/python3
"""Reference trajectories of torch.optim for rewind's optimizer test (tests/optim).

A fixed least-squares problem, loss = mean((X·Wᵀ + b - Y)²), with W (3x4) and b (1x3) as
parameters; each optimizer configuration runs 10 steps (zero_grad, backward, step) and the
parameter values after every step are saved, in double, to tests/data/optim_reference.json,
with the optimizer's state after the last step (state_dict()['state']: each parameter's buffers
by torch's names, its step count left out).

Run with Debian's python3-torch:  /usr/bin/python3 tools/torch_optim.py [out_dir]
"""
import json
import os
import sys

import torch

CONFIGS = [
    ("sgd", "SGD", dict(lr=0.1)),
    ("sgd_momentum", "SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("sgd_nesterov", "SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("rmsprop", "RMSprop", dict(lr=0.01)),
    ("rmsprop_centered_momentum", "RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6, momentum=0.5, centered=True, weight_decay=0.01)),
    ("adam", "Adam", dict(lr=0.01)),
    ("adam_wd", "Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("adamw", "AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("adagrad", "Adagrad", dict(lr=0.1)),
    ("adagrad_decay", "Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.1)),
]


def mat(t):
    return [[float(v) for v in row] for row in t.detach().reshape(t.shape[0] if t.dim() == 2 else 1, -1).tolist()]


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "data")
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    X = torch.randn(8, 4, dtype=torch.double)
    Y = torch.randn(8, 3, dtype=torch.double)
    W0 = torch.randn(3, 4, dtype=torch.double)
    b0 = torch.randn(3, dtype=torch.double)
    out = {"X": mat(X), "Y": mat(Y), "W0": mat(W0), "b0": mat(b0), "torch_version": torch.__version__, "runs": {}}
    for name, cls, kwargs in CONFIGS:
        W = W0.clone().requires_grad_(True)
        b = b0.clone().requires_grad_(True)
        opt = getattr(torch.optim, cls)([W, b], **kwargs)
        traj = []
        for _ in range(10):
            opt.zero_grad()
            loss = ((X @ W.T + b - Y) ** 2).mean()
            loss.backward()
            opt.step()
            traj.append({"W": mat(W), "b": mat(b)})
        state = {}
        for pname, index in (("W", 0), ("b", 1)):
            buffers = opt.state_dict()["state"].get(index, {})
            state[pname] = {k: mat(v) for k, v in buffers.items() if k != "step" and torch.is_tensor(v)}
        out["runs"][name] = {"class": cls, "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}, "trajectory": traj, "state": state}
    path = os.path.join(out_dir, "optim_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
