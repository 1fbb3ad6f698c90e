#!/usr/bin/python3
"""Converts a PyTorch state_dict (a .pt file saved with torch.save) to a safetensors file that
rewind's load_parameters reads, using only torch, numpy and json (no safetensors package).

    /usr/bin/python3 tools/torch_to_safetensors.py model.pt model.safetensors [--strip PREFIX ...]

Names are kept as they are (`weight_ih_l0`, `head.weight`); `--strip lstm.` removes a module
prefix so that an nn.LSTM held as `self.lstm` gets rewind's names. Tensors are written in their
own dtype (float32 -> F32, float64 -> F64); 1-D tensors (biases) keep their 1-D shape, which
rewind loads into its 1×n rows.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("state_dict")
    ap.add_argument("output")
    ap.add_argument("--strip", action="append", default=[], help="remove this name prefix")
    args = ap.parse_args()
    sd = torch.load(args.state_dict, map_location="cpu")
    tensors = {}
    for name, t in sd.items():
        for p in args.strip:
            if name.startswith(p):
                name = name[len(p):]
        tensors[name] = t.detach().cpu().numpy()
    write_safetensors(args.output, tensors, {"source": "torch " + torch.__version__})
    print(f"wrote {len(tensors)} tensors to {args.output}")


if __name__ == "__main__":
    main()
