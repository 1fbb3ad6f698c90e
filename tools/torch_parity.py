#!/usr/bin/python3
"""Reference data for rewind's PyTorch parity test (tests/layers/parity_test.cpp).

For each configuration, builds torch.nn.RNN / LSTM / GRU in double with PyTorch's own
initialisation, runs it on random inputs and initial states (optionally as a packed
variable-length batch), and records the outputs, the final states, and the gradient of
    L = sum_t <out_t, R_t> + <h_n, R_h> (+ <c_n, R_c>)
with respect to the input, the initial states and every parameter. R's are random and saved
too, so rewind can form the same loss. Second order: a Hessian-vector product of L along a fixed
random direction v (over the input, the initial states and every parameter together), by
PyTorch's double backward (autograd.grad with create_graph=True, then the gradient of <g, v>),
saved with v as "hvp_v" and "hvp".

Run with Debian's python3-torch:  /usr/bin/python3 tools/torch_parity.py [out_dir]
(defaults to tests/data). The test suite reads the committed files and never needs PyTorch.
"""
import json
import os
import sys

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

T, B, I, H = 5, 4, 3, 4
CONFIGS = [
    # name, kind, nonlinearity, num_layers, bidirectional, lengths
    ("rnn_tanh", "rnn", "tanh", 1, False, None),
    ("rnn_relu", "rnn", "relu", 1, False, None),
    ("rnn_tanh_2layer_bidir", "rnn", "tanh", 2, True, None),
    ("rnn_relu_2layer_bidir", "rnn", "relu", 2, True, None),
    ("lstm", "lstm", None, 1, False, None),
    ("lstm_2layer_bidir", "lstm", None, 2, True, None),
    ("gru", "gru", None, 1, False, None),
    ("gru_2layer_bidir", "gru", None, 2, True, None),
    ("rnn_tanh_2layer_bidir_varlen", "rnn", "tanh", 2, True, [5, 3, 1, 4]),
    ("lstm_2layer_bidir_varlen", "lstm", None, 2, True, [5, 3, 1, 4]),
    ("gru_2layer_bidir_varlen", "gru", None, 2, True, [2, 5, 4, 1]),
]


def mat(t):
    """A tensor as a list of rows (1-D tensors become one row)."""
    t = t.detach()
    if t.dim() == 1:
        t = t.unsqueeze(0)
    return [[float(v) for v in row] for row in t.tolist()]


def write_fixture(out_dir, filename, data):
    """One reference file, compact JSON, as the tests read it."""
    path = os.path.join(out_dir, filename)
    with open(path, "w") as f:
        json.dump(data, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "data")
    os.makedirs(out_dir, exist_ok=True)
    for seed, (name, kind, nonlin, layers, bidir, lengths) in enumerate(CONFIGS):
        torch.manual_seed(1000 + seed)
        dirs = 2 if bidir else 1
        if kind == "rnn":
            net = nn.RNN(I, H, num_layers=layers, nonlinearity=nonlin, bidirectional=bidir)
        elif kind == "lstm":
            net = nn.LSTM(I, H, num_layers=layers, bidirectional=bidir)
        else:
            net = nn.GRU(I, H, num_layers=layers, bidirectional=bidir)
        net = net.double()
        x = torch.randn(T, B, I, dtype=torch.double, requires_grad=True)
        h0 = torch.randn(layers * dirs, B, H, dtype=torch.double, requires_grad=True)
        c0 = torch.randn(layers * dirs, B, H, dtype=torch.double, requires_grad=True)
        r_out = torch.randn(T, B, dirs * H, dtype=torch.double)
        r_h = torch.randn(layers * dirs, B, H, dtype=torch.double)
        r_c = torch.randn(layers * dirs, B, H, dtype=torch.double)
        state0 = (h0, c0) if kind == "lstm" else h0

        def run():
            if lengths is None:
                out, state = net(x, state0)
            else:
                packed = pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
                out_packed, state = net(packed, state0)
                out, _ = pad_packed_sequence(out_packed, total_length=T)
            h_n, c_n = state if kind == "lstm" else (state, None)
            loss = (out * r_out).sum() + (h_n * r_h).sum()
            if kind == "lstm":
                loss = loss + (c_n * r_c).sum()
            return out, h_n, c_n, loss

        # Second order first, on its own recording: H·v by double backward.
        leaves = [x, h0] + ([c0] if kind == "lstm" else []) + list(net.parameters())
        gen = torch.Generator().manual_seed(5000 + seed)
        vs = [torch.randn(l.shape, generator=gen, dtype=torch.double) for l in leaves]
        grads = torch.autograd.grad(run()[3], leaves, create_graph=True)
        dot = sum((g * v).sum() for g, v in zip(grads, vs))
        hv = torch.autograd.grad(dot, leaves)
        names = ["x", "h0"] + (["c0"] if kind == "lstm" else []) + [n for n, _ in net.named_parameters()]

        def as_list(name, t):
            if name in ("x", "h0", "c0"):
                return [mat(t[k]) for k in range(t.shape[0])]
            return mat(t)

        out, h_n, c_n, loss = run()
        loss.backward()
        data = {
            "name": name, "kind": kind, "nonlinearity": nonlin or "", "input": I, "hidden": H,
            "num_layers": layers, "bidirectional": bidir, "lengths": lengths or [],
            "torch_version": torch.__version__, "loss": loss.item(),
            "x": [mat(x[t]) for t in range(T)],
            "h0": [mat(h0[k]) for k in range(layers * dirs)],
            "r_out": [mat(r_out[t]) for t in range(T)],
            "r_h": [mat(r_h[k]) for k in range(layers * dirs)],
            "params": {n: mat(p) for n, p in net.named_parameters()},
            "out": [mat(out[t]) for t in range(T)],
            "h_n": [mat(h_n[k]) for k in range(layers * dirs)],
            "grad_x": [mat(x.grad[t]) for t in range(T)],
            "grad_h0": [mat(h0.grad[k]) for k in range(layers * dirs)],
            "grad_params": {n: mat(p.grad) for n, p in net.named_parameters()},
            "hvp_v": {n: as_list(n, v) for n, v in zip(names, vs)},
            "hvp": {n: as_list(n, h) for n, h in zip(names, hv)},
        }
        if kind == "lstm":
            data.update({
                "c0": [mat(c0[k]) for k in range(layers * dirs)],
                "r_c": [mat(r_c[k]) for k in range(layers * dirs)],
                "c_n": [mat(c_n[k]) for k in range(layers * dirs)],
                "grad_c0": [mat(c0.grad[k]) for k in range(layers * dirs)],
            })
        write_fixture(out_dir, f"parity_{name}.json", data)


if __name__ == "__main__":
    main()
