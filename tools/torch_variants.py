#!/usr/bin/python3
"""Reference data for the shipped variant cells (examples/cells/<variant>.cell), checked by
tests/layers/variants_test.cpp.

Each variant is written here in plain PyTorch (double) from its equations, those of the
variants workload in ../shared/peers/torch_variants_bench.py, which names the paper and the
reference code it follows:
  deltanet        per head (dk = dv = H/4): q, k = l2norm(x Wq), l2norm(x Wk); v = x Wv;
                  beta = sigmoid(x Wb); u = beta (v - S^T k); S = S + k u^T; o = S^T q
                  (flash-linear-attention's naive delta_rule_recurrence, without its q scaling)
  gated_deltanet  as deltanet with alpha = exp(-exp(A_log) softplus(x Wa + b_dt)) per head:
                  S' = alpha S; u = beta (v - S'^T k); S = S' + k u^T; o = S^T q / sqrt(dk)
  mingru          z = sigmoid(x Wz + bz); h = (1 - z) h + z g(x Wh + bh)
  minlstm         f, i = sigmoid(x Wf + bf), sigmoid(x Wi + bi); h = f/(f+i) h + i/(f+i) g(...)
  (g(a) = a + 0.5 for a >= 0, sigmoid(a) below: minGRU's positive activation.)
  mlstm           per head: q, k, v = x Wq, x Wk / sqrt(dk), x Wv; i~, f~ = x Wi + bi, x Wf + bf;
                  m' = max(logsigmoid(f~) + m, i~); f' = exp(logsigmoid(f~) + m - m');
                  i' = exp(i~ - m'); C = f' C + i' k v^T; n = f' n + i' k;
                  h = sigmoid(x Wo) (q^T C) / (max(|q^T n|, exp(-m')) + 1e-6)
                  (xlstm's recurrent_step_stabilized_simple)
  slstm           i~, f~, z~, o~ = x Wx + h R + b; m' = max(i~, m + logsigmoid(f~));
                  i' = exp(i~ - m'); f' = exp(m + logsigmoid(f~) - m');
                  c = f' c + i' tanh(z~); n = f' n + i'; h = sigmoid(o~) c / n
  lru             r, theta, gamma = exp(-exp(nu)), exp(theta_log), exp(gamma_log);
                  a' = r cos(theta) a - r sin(theta) b + gamma x B_re;
                  b' = r sin(theta) a + r cos(theta) b + gamma x B_im;  h = a' C_re - b' C_im + x D
  s6              u = x W_in; uc = silu(c0 u + c1 u1 + c2 u2 + c3 u3 + b_conv) (u1..u3: the last
                  three u, the state conv); dt = softplus(uc W_delta W_dt + b_dt);
                  s[d,n] = exp(dt_d A_dn) s[d,n] + dt_d uc_d (uc W_B)[n], A = -exp(A_log);
                  h = (sum_n s[d,n] (uc W_C)[n] + D_d uc_d) silu(x W_z)  (at hidden 16, N = 16)
  gla             per head: S = diag(exp(logsigmoid(x W_g) / 16)) S + k v^T; o = S^T q / sqrt(dk)
Parameters are drawn at random (biases and A_log too, so that every term is exercised) and
stored under the cell file's names and shapes: a weight W (in x W) as W^T, hidden x input, as
rewind's cells keep them; a row (b, A_log) as 1 x n. For T steps from random initial states
(S too), the test forms
    L = sum_t <h_t, R_t> + sum_states <state_T, R_state>
and compares the outputs, the final states, the gradient of L with respect to every input, initial
state and parameter, and a Hessian-vector product of L along a random direction v (PyTorch's
double backward), as tools/torch_parity.py does for the built-in cells.

Run with Debian's python3-torch:  /usr/bin/python3 tools/torch_variants.py [out_dir]
(defaults to tests/data). The test suite reads the committed files and never needs PyTorch.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

from torch_parity import mat, write_fixture  # the parity files' tensor rows and file format

T, B, I, H, HEADS = 4, 3, 5, 8, 4
DK = H // HEADS


def g_act(a):
    return torch.where(a >= 0, a + 0.5, torch.sigmoid(a))


def heads(t):  # (B, H) -> (B, HEADS, DK)
    return t.reshape(t.shape[0], HEADS, -1)


def delta_step(p, x, S, gated):
    q = F.normalize(heads(x @ p["w_q"].T), dim=-1)
    k = F.normalize(heads(x @ p["w_k"].T), dim=-1)
    v = heads(x @ p["w_v"].T)
    beta = torch.sigmoid(x @ p["w_b"].T)[..., None]
    S = S.reshape(B, HEADS, DK, DK)
    if gated:
        alpha = torch.exp(-torch.exp(p["a_log"]) * F.softplus(x @ p["w_a"].T + p["b_dt"]))
        S = alpha[..., None, None] * S
    u = beta * (v - torch.einsum("bhkv,bhk->bhv", S, k))
    S = S + k[..., :, None] * u[..., None, :]
    o = torch.einsum("bhkv,bhk->bhv", S, q)
    if gated:
        o = o / math.sqrt(DK)
    return o.reshape(B, H), S.reshape(B, -1)


def mlstm_step(p, x, s):
    _, C, n, m = s
    q = heads(x @ p["w_q"].T)
    k = heads(x @ p["w_k"].T) / math.sqrt(DK)
    v = heads(x @ p["w_v"].T)
    i_, f_ = x @ p["w_i"].T + p["b_i"], x @ p["w_f"].T + p["b_f"]
    lf = F.logsigmoid(f_)
    m2 = torch.maximum(lf + m, i_)
    fp, ip = torch.exp(lf + m - m2)[..., None], torch.exp(i_ - m2)[..., None]
    C = fp[..., None] * C.reshape(B, HEADS, DK, DK) + ip[..., None] * (k[..., :, None] * v[..., None, :])
    n = fp * n.reshape(B, HEADS, DK) + ip * k
    num = torch.einsum("bhk,bhkv->bhv", q, C)
    den = torch.maximum((q * n).sum(-1).abs(), torch.exp(-m2)) + 1e-6
    h = torch.sigmoid(x @ p["w_o"].T) * (num / den[..., None]).reshape(B, H)
    return h, C.reshape(B, -1), n.reshape(B, -1), m2


def slstm_step(p, x, s):
    h, c, n, m = s
    i_, f_, z_, o_ = (x @ p["w_x"].T + h @ p["r"].T + p["b"]).chunk(4, 1)
    lf = F.logsigmoid(f_)
    m2 = torch.maximum(i_, m + lf)
    ip, fp = torch.exp(i_ - m2), torch.exp(m + lf - m2)
    c = fp * c + ip * torch.tanh(z_)
    n = fp * n + ip
    return torch.sigmoid(o_) * c / n, c, n, m2


def lru_step(p, x, s):
    _, a, b = s
    r, th, g = torch.exp(-torch.exp(p["nu"])), torch.exp(p["theta_log"]), torch.exp(p["gamma_log"])
    rc, rs = r * torch.cos(th), r * torch.sin(th)
    a, b = rc * a - rs * b + g * (x @ p["b_re"].T), rs * a + rc * b + g * (x @ p["b_im"].T)
    return a @ p["c_re"].T - b @ p["c_im"].T + x @ p["d"].T, a, b


def s6_step(p, x, s):
    _, state, conv = s
    hid = p["w_in"].shape[0]
    u = x @ p["w_in"].T
    u1, u2, u3 = conv[:, :hid], conv[:, hid:2 * hid], conv[:, 2 * hid:]
    uc = F.silu(p["c0"] * u + p["c1"] * u1 + p["c2"] * u2 + p["c3"] * u3 + p["b_conv"])
    dt = F.softplus((uc @ p["w_delta"].T) @ p["w_dt"].T + p["b_dt"])
    bt, ct = uc @ p["w_b"].T, uc @ p["w_c"].T
    a = -torch.exp(p["a_log"]).reshape(hid, S6_N)
    h = torch.exp(dt[..., None] * a) * state.reshape(B, hid, S6_N) \
        + (dt * uc)[..., None] * bt[:, None, :]
    y = (h * ct[:, None, :]).sum(-1) + p["d_skip"] * uc
    return y * F.silu(x @ p["w_z"].T), h.reshape(B, -1), torch.cat([u, u1, u2], 1)


def gla_step(p, x, s):
    q, k, v = (heads(x @ p[w].T) for w in ("w_q", "w_k", "w_v"))
    gk = heads(F.logsigmoid(x @ p["w_g"].T) / 16)
    S = torch.exp(gk)[..., None] * s[1].reshape(B, HEADS, DK, DK) + k[..., :, None] * v[..., None, :]
    o = torch.einsum("bhkv,bhk->bhv", S, q) / math.sqrt(DK)
    return o.reshape(B, H), S.reshape(B, -1)


S6_N, S6_H = 16, 16  # s6 at hidden 16: its dt rank is hidden / 16

VARIANTS = {
    "mlstm": (
        {"w_q": (H, I), "w_k": (H, I), "w_v": (H, I), "w_o": (H, I), "w_i": (HEADS, I),
         "w_f": (HEADS, I), "b_i": (1, HEADS), "b_f": (1, HEADS)},
        {"h": H, "C": H * H // HEADS, "n": H, "m": HEADS},
        mlstm_step,
    ),
    "slstm": (
        {"w_x": (4 * H, I), "r": (4 * H, H), "b": (1, 4 * H)},
        {"h": H, "c": H, "n": H, "m": H},
        slstm_step,
    ),
    # name: (parameters {name: shape}, states {name: width}, step(p, x, states) -> states)
    "deltanet": (
        {"w_q": (H, I), "w_k": (H, I), "w_v": (H, I), "w_b": (HEADS, I)},
        {"h": H, "S": H * H // HEADS},
        lambda p, x, s: delta_step(p, x, s[1], gated=False),
    ),
    "gated_deltanet": (
        {"w_q": (H, I), "w_k": (H, I), "w_v": (H, I), "w_b": (HEADS, I), "w_a": (HEADS, I),
         "a_log": (1, HEADS), "b_dt": (1, HEADS)},
        {"h": H, "S": H * H // HEADS},
        lambda p, x, s: delta_step(p, x, s[1], gated=True),
    ),
    "mingru": (
        {"w_z": (H, I), "b_z": (1, H), "w_h": (H, I), "b_h": (1, H)},
        {"h": H},
        lambda p, x, s: (lambda z: ((1 - z) * s[0] + z * g_act(x @ p["w_h"].T + p["b_h"]),))(
            torch.sigmoid(x @ p["w_z"].T + p["b_z"])),
    ),
    "minlstm": (
        {"w_f": (H, I), "b_f": (1, H), "w_i": (H, I), "b_i": (1, H), "w_h": (H, I), "b_h": (1, H)},
        {"h": H},
        lambda p, x, s: (lambda f, i: (f / (f + i) * s[0] + i / (f + i) * g_act(
            x @ p["w_h"].T + p["b_h"]),))(torch.sigmoid(x @ p["w_f"].T + p["b_f"]),
                                           torch.sigmoid(x @ p["w_i"].T + p["b_i"])),
    ),
    "lru": (
        {"nu": (1, H), "theta_log": (1, H), "gamma_log": (1, H), "b_re": (H, I), "b_im": (H, I),
         "c_re": (H, H), "c_im": (H, H), "d": (H, I)},
        {"h": H, "a": H, "b": H},
        lru_step,
    ),
    "s6": (
        {"w_in": (S6_H, I), "w_z": (S6_H, I), "c0": (1, S6_H), "c1": (1, S6_H), "c2": (1, S6_H),
         "c3": (1, S6_H), "b_conv": (1, S6_H), "w_delta": (S6_H // 16, S6_H),
         "w_dt": (S6_H, S6_H // 16), "b_dt": (1, S6_H), "w_b": (S6_N, S6_H), "w_c": (S6_N, S6_H),
         "a_log": (1, S6_H * S6_N), "d_skip": (1, S6_H)},
        {"h": S6_H, "s": S6_H * S6_N, "conv": 3 * S6_H},
        s6_step,
    ),
    "gla": (
        {"w_q": (H, I), "w_k": (H, I), "w_v": (H, I), "w_g": (H, I)},
        {"h": H, "S": H * H // HEADS},
        gla_step,
    ),
}


def write_variant(out_dir, name, shapes, widths, step, seed, layers):
    """One fixture: `layers` layers of the variant stacked (layer l+1's input is layer l's h),
    parameters named as rewind's Sequence names them (_l0, _l1) for a stack, bare for one cell;
    states in h_n order (layer by layer)."""
    torch.manual_seed((2000 if layers == 1 else 3000) + seed)
    hidden = next(iter(widths.values()))  # h's width: H, or S6_H for s6
    params = []  # per layer {name: tensor}
    for l in range(layers):
        # Layer l > 0 reads the layer below's h: its input width is hidden, not I.
        sh = shapes if l == 0 else {n: (r, hidden if c == I else c) for n, (r, c) in shapes.items()}
        params.append({n: (torch.randn(*s, dtype=torch.double) / math.sqrt(s[1])).requires_grad_()
                       for n, s in sh.items()})
    xs = torch.randn(T, B, I, dtype=torch.double, requires_grad=True)
    # Normalisers (n) start positive, as after any step: h = c / n in the sLSTM.
    s0 = []
    for l in range(layers):
        for k, w in widths.items():
            t = 0.5 * torch.randn(B, w, dtype=torch.double)
            s0.append((t.abs() + 0.5 if k == "n" else t).requires_grad_())
    r_out = torch.randn(T, B, hidden, dtype=torch.double)
    r_state = [torch.randn(B, w, dtype=torch.double) for _ in range(layers) for w in widths.values()]
    n_states = len(widths) * layers
    named = {(n if layers == 1 else f"{n}_l{l}"): p for l in range(layers) for n, p in params[l].items()}

    def run():
        inputs, finals = None, []
        for l in range(layers):
            states, outs = s0[l * len(widths):(l + 1) * len(widths)], []
            for t in range(T):
                # xs[t] taken where it is used (the order PyTorch accumulates xs's gradient in)
                states = list(step(params[l], xs[t] if l == 0 else inputs[t], states))
                outs.append(states[0])
            finals += states
            inputs = outs
        loss = sum((o * r).sum() for o, r in zip(inputs, r_out))
        loss = loss + sum((s * r).sum() for s, r in zip(finals, r_state))
        return inputs, finals, loss

    leaves = [xs] + s0 + list(named.values())
    gen = torch.Generator().manual_seed((5000 if layers == 1 else 6000) + seed)
    vs = [torch.randn(l.shape, generator=gen, dtype=torch.double) for l in leaves]
    # A cell need not read every initial state (the output h of deltanet and mlstm): its
    # gradient and H·v are zero.
    grads = torch.autograd.grad(run()[2], leaves, create_graph=True, allow_unused=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vs) if g is not None)
    hv = torch.autograd.grad(dot, leaves, allow_unused=True)
    hv = [torch.zeros_like(l) if h is None else h for l, h in zip(leaves, hv)]
    outs, states, loss = run()
    loss.backward()
    for l in leaves:
        if l.grad is None:
            l.grad = torch.zeros_like(l)
    data = {"name": name, "input": I, "hidden": hidden}
    if layers > 1:
        data["layers"] = layers
    data.update({
        "torch_version": torch.__version__,
        "loss": loss.item(),
        "x": [mat(xs[t]) for t in range(T)],
        "states0": [mat(s) for s in s0],
        "r_out": [mat(r_out[t]) for t in range(T)],
        "r_state": [mat(r) for r in r_state],
        "params": {n: mat(p) for n, p in named.items()},
        "out": [mat(o) for o in outs],
        "states": [mat(s) for s in states],
        "grad_x": [mat(xs.grad[t]) for t in range(T)],
        "grad_states0": [mat(s.grad) for s in s0],
        "grad_params": {n: mat(p.grad) for n, p in named.items()},
        "hvp_v": {"x": [mat(vs[0][t]) for t in range(T)],
                  "states0": [mat(v) for v in vs[1:1 + n_states]],
                  "params": {n: mat(v) for n, v in zip(named, vs[1 + n_states:])}},
        "hvp": {"x": [mat(hv[0][t]) for t in range(T)],
                "states0": [mat(h) for h in hv[1:1 + n_states]],
                "params": {n: mat(h) for n, h in zip(named, hv[1 + n_states:])}},
    })
    write_fixture(out_dir, f"variant_{name}.json" if layers == 1 else
                  f"variant_{name}_{layers}layers.json", data)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "tests", "data")
    os.makedirs(out_dir, exist_ok=True)
    for seed, (name, (shapes, widths, step)) in enumerate(VARIANTS.items()):
        for layers in (1, 2):
            write_variant(out_dir, name, shapes, widths, step, seed, layers)


if __name__ == "__main__":
    main()
