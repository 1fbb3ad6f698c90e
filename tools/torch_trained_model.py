#!/usr/bin/python3
"""A model trained in PyTorch, for rewind's load test: an nn.LSTM (2 layers) and a linear head,
trained for 30 Adam steps on the adding problem in float32, saved as a state_dict, converted
with tools/torch_to_safetensors.py, plus the model's outputs on a fixed input batch.

    /usr/bin/python3 tools/torch_trained_model.py [out_dir]   (default tests/data)
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn

T, B, H = 12, 5, 8


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(2, H, num_layers=2)
        self.head = nn.Linear(H, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[-1])


def adding_batch(g):
    x = torch.zeros(T, B, 2)
    x[:, :, 0] = torch.rand(T, B, generator=g)
    for b in range(B):
        i, j = torch.randperm(T, generator=g)[:2].tolist()
        x[i, b, 1] = x[j, b, 1] = 1
    y = (x[:, :, 0] * x[:, :, 1]).sum(0, keepdim=True).T
    return x, y


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "data")
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(3)
    g = torch.Generator().manual_seed(4)
    model = Model()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(30):
        x, y = adding_batch(g)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    x, _ = adding_batch(g)
    with torch.no_grad():
        y = model(x)
    with tempfile.TemporaryDirectory() as tmp:
        pt = os.path.join(tmp, "model.pt")
        torch.save(model.state_dict(), pt)
        subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "torch_to_safetensors.py"),
                        pt, os.path.join(out_dir, "torch_lstm_adding.safetensors"), "--strip", "lstm."], check=True)
    with open(os.path.join(out_dir, "torch_lstm_adding.json"), "w") as f:
        json.dump({"x": [[[float(v) for v in row] for row in x[t].tolist()] for t in range(T)],
                   "y": [[float(v) for v in row] for row in y.tolist()],
                   "hidden": H, "num_layers": 2, "torch_version": torch.__version__}, f)
        f.write("\n")
    print("wrote torch_lstm_adding.{safetensors,json}")


if __name__ == "__main__":
    main()
