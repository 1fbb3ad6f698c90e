// rewind's graph page: places the pieces write_html laid out (autograd/src/viz/html.cpp) and
// makes them interactive. Plain JavaScript, no framework, nothing fetched.
//
// The scene is arithmetic over precomputed layouts: rows (one per unrolled sequence) stacked
// top to bottom, steps in columns shared by all rows, an expanded step drawn from its
// template's Graphviz layout, a collapsed one as a narrow box. Moving the window or expanding a
// step only changes column widths and which pieces are drawn, never a graph layout.
// window.rewind is the page's API (the browser tests drive it and read its timings).
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("rewind-data").textContent);
  const palette = data.palette;
  const NS = "http://www.w3.org/2000/svg";
  const G = {pad: 16, label: 16, stepW: 22, colPad: 14, rowGap: 14, barH: 28, paramH: 24,
             paramGap: 6, colinH: 26, otherGap: 60};

  // ---- the data, decoded ----------------------------------------------------------------------
  function decode(p, index) {
    const n = p.n, s = p.strings;
    const num = (v) => (typeof v === "string" ? Number(v) : v);
    p.index = index;
    p.val = p.val.map(num);
    p.grad = p.grad.map((v) => (v === null ? null : num(v)));
    // Children, as parents are (CSR).
    const count = new Int32Array(n + 1);
    for (const j of p.par) count[j + 1]++;
    for (let i = 0; i < n; i++) count[i + 1] += count[i];
    const kids = new Int32Array(p.par.length), fill = count.slice(0, n);
    for (let i = 0; i < n; i++)
      for (let e = p.pofs[i]; e < p.pofs[i + 1]; e++) kids[fill[p.par[e]]++] = i;
    p.cofs = count;
    p.kids = kids;
    // Where each node is drawn.
    p.inst = new Int32Array(n).fill(-1);
    p.slot = new Int32Array(n).fill(-1);
    p.prow = new Int32Array(n).fill(-1);
    p.pcol = new Float64Array(n).fill(NaN);
    p.instances = [];
    const stepSet = new Set();
    p.rows.forEach((row, r) => {
      row.parts = row.path.split("/");
      row.first = p.instances.length;
      row.steps.forEach((t, k) => {
        const id = p.instances.length;
        const inst = {row: r, t: t, tpl: row.tpl[k], nodes: row.nodes[k],
                      path: row.path + "/t" + t};
        p.instances.push(inst);
        inst.nodes.forEach((i, slot) => { p.inst[i] = id; p.slot[i] = slot; });
        stepSet.add(t);
      });
      row.params.forEach((i) => { p.prow[i] = r; });
      row.byStep = new Map(row.steps.map((t, k) => [t, row.first + k]));
      row.height = 0;
      for (const k of new Set(row.tpl)) row.height = Math.max(row.height, p.templates[k].h);
      row.height = Math.max(row.height, row.params.length * (G.paramH + G.paramGap));
    });
    p.columnInputs = new Map();
    for (const [t, nodes] of p.columns) {
      p.columnInputs.set(t, nodes);
      nodes.forEach((i) => { p.pcol[i] = t; });
      stepSet.add(t);
    }
    p.steps = [...stepSet].sort((a, b) => a - b);
    const colIndex = new Map(p.steps.map((t, c) => [t, c]));
    for (const inst of p.instances) inst.col = colIndex.get(inst.t);  // its column
    for (const tpl of p.templates) tpl.relPath = tpl.rel.map((k) => s[k]);
    // What search matches: "scope/kind", made once on the first search.
    let texts = null;
    p.text = (i) => {
      if (!texts) texts = Array.from({length: n}, (_, j) => s[p.scope[j]] + (s[p.scope[j]] ? "/" : "") + s[p.kind[j]]);
      return texts[i];
    };
    p.headW = 110;
    for (const row of p.rows)
      for (const i of row.params) p.headW = Math.max(p.headW, textWidth(s[p.kind[i]]) + 28);
    return p;
  }
  const textWidth = (str) => 5.6 * str.length + 10;

  // ---- shared state (both panes of a compare page follow it) ----------------------------------
  const state = {
    window: Math.max(1, data.options.window), start: 0,
    steps: new Map(),   // step path -> true (expanded) / false (collapsed), over the window
    closed: new Set(),  // collapsed row prefixes and gate paths
    colour: "off", tx: 20, ty: 60, k: 1, tab: "unrolled",
  };
  const timings = {};
  const panes = data.panes.map((p, k) => decode(p, k));
  const compare = data.compare;
  if (compare) {
    const back = new Int32Array(panes[1].n).fill(-1);
    compare.match.forEach((j, i) => { if (j >= 0) back[j] = i; });
    compare.back = back;
    compare.sets = compare.differ.map((list) => new Set(list));
  }
  const maxSteps = Math.max(...panes.map((p) => p.steps.length), 1);

  // ---- colour ---------------------------------------------------------------------------------
  function norms(p, mode) {
    const src = mode === "grad" ? p.grad : p.val;
    const out = new Float64Array(p.n).fill(NaN);
    for (let i = 0; i < p.n; i++) {
      const v = src[3 * i + 2];
      out[i] = v === null ? NaN : v;
    }
    return out;
  }
  function scale(mode) {
    let lo = Infinity, hi = -Infinity, bad = false;
    for (const p of panes) {
      p.norm = mode === "off" ? null : norms(p, mode);
      if (!p.norm) continue;
      for (const v of p.norm) {
        if (!Number.isFinite(v)) continue;
        if (v > 0) { lo = Math.min(lo, Math.log10(v)); hi = Math.max(hi, Math.log10(v)); }
      }
      const src = mode === "grad" ? p.grad : p.val;
      for (let i = 0; i < p.n; i++)
        if (src[3 * i + 2] !== null && !Number.isFinite(src[3 * i + 2])) bad = true;
    }
    return {lo, hi, bad};
  }
  let range = {lo: 0, hi: 0, bad: false};
  function fillOf(p, i) {
    if (!p.norm) return null;
    const src = state.colour === "grad" ? p.grad : p.val;
    const raw = src[3 * i + 2];
    if (raw === null) return null;
    if (!Number.isFinite(raw)) return "#ff0000";
    if (!(raw > 0)) return null;
    if (!(range.hi > range.lo)) return palette[4];
    const b = Math.floor((Math.log10(raw) - range.lo) / (range.hi - range.lo) * 9);
    return palette[Math.max(0, Math.min(8, b))];
  }
  // The colour of a group: its largest norm (a non-finite one wins).
  function groupFill(p, nodes) {
    if (!p.norm) return null;
    const src = state.colour === "grad" ? p.grad : p.val;
    let best = -1, pick = null;
    for (const i of nodes) {
      const raw = src[3 * i + 2];
      if (raw === null) continue;
      if (!Number.isFinite(raw)) return "#ff0000";
      if (raw > best) { best = raw; pick = i; }
    }
    return pick === null ? null : fillOf(p, pick);
  }
  function legend() {
    const el = document.getElementById("legend");
    el.textContent = "";
    if (state.colour === "off") return;
    const what = document.createElement("span");
    what.textContent = (state.colour === "grad" ? "log10 ‖gradient‖" : "log10 ‖value‖") + ":";
    el.appendChild(what);
    const bins = range.hi > range.lo ? 9 : Number.isFinite(range.lo) ? 1 : 0;
    for (let b = 0; b < bins; b++) {
      const a = bins === 9 ? range.lo + (range.hi - range.lo) * b / 9 : range.lo;
      const z = bins === 9 ? range.lo + (range.hi - range.lo) * (b + 1) / 9 : range.hi;
      const sw = document.createElement("span");
      const c = bins === 9 ? b : 4;
      sw.style.background = palette[c];
      sw.style.color = c <= 1 || c >= 8 ? "#fff" : "#000";
      sw.textContent = a.toFixed(1) + "…" + z.toFixed(1);
      sw.className = "swatch";
      el.appendChild(sw);
    }
    if (bins > 0) {  // nodes without a norm (zero, or no gradient) keep their category's colour
      const sw = document.createElement("span");
      sw.style.background = "#ffffff";
      sw.style.color = "#000";
      sw.style.border = "1px solid #bbb";
      sw.textContent = state.colour === "grad" ? "0 or none" : "0";
      sw.title = "zero" + (state.colour === "grad" ? " or no gradient" : "") +
          ": the node's own colour (white op, blue parameter, green input, grey constant)";
      sw.className = "swatch zero";
      el.appendChild(sw);
    }
    if (range.bad) {
      const sw = document.createElement("span");
      sw.style.background = "#ff0000";
      sw.style.color = "#fff";
      sw.textContent = "NaN/Inf";
      sw.className = "swatch";
      el.appendChild(sw);
    }
  }

  // ---- visibility: what stands for each node ----------------------------------------------------
  // The collapsed row prefix a row is under, or null.
  function rowClosed(row) {
    let path = "";
    for (const part of row.parts) {
      path = path ? path + "/" + part : part;
      if (state.closed.has(path)) return path;
    }
    return null;
  }
  function stepOpen(inst) {
    const o = state.steps.get(inst.path);
    if (o !== undefined) return o;
    return inst.col >= state.start && inst.col < state.start + state.window;
  }
  // The outermost collapsed gate around a slot of a step, or null.
  function gateClosed(p, inst, slot) {
    const rel = p.templates[inst.tpl].relPath[slot];
    if (!rel) return null;
    let path = "";
    for (const part of rel.split("/")) {
      path = path ? path + "/" + part : part;
      if (state.closed.has(inst.path + "/" + path)) return path;
    }
    return null;
  }
  function repOf(p, L, i) {
    const k = p.inst[i];
    if (k >= 0) {
      const inst = p.instances[k], row = p.rows[inst.row];
      const closed = L.rowBar[inst.row];
      if (closed) return closed;
      if (!L.open[k]) return "s" + k;
      const g = gateClosed(p, inst, p.slot[i]);
      return g ? "g" + k + ":" + g : "n" + i;
    }
    if (p.prow[i] >= 0) return L.rowBar[p.prow[i]] || "n" + i;
    if (!Number.isNaN(p.pcol[i])) return L.colOpen.get(p.pcol[i]) ? "n" + i : "c" + p.pcol[i];
    return "n" + i;
  }

  // ---- layout (arithmetic) ----------------------------------------------------------------------
  function layout(p) {
    const L = {items: new Map(), open: new Uint8Array(p.instances.length), rowBar: [],
               colOpen: new Map(), colX: new Map(), colW: new Map(), rows: []};
    // Rows: collapsed under a prefix, or open.
    p.rows.forEach((row, r) => { L.rowBar[r] = rowClosed(row) ? "b" + rowClosed(row) : null; });
    p.instances.forEach((inst, k) => { L.open[k] = !L.rowBar[inst.row] && stepOpen(inst) ? 1 : 0; });
    // Columns: as wide as their widest open step.
    const width = new Map();
    p.instances.forEach((inst, k) => {
      const w = L.open[k] ? p.templates[inst.tpl].w + G.colPad : G.stepW;
      width.set(inst.t, Math.max(width.get(inst.t) || G.stepW, w));
      if (L.open[k]) L.colOpen.set(inst.t, true);
    });
    const hasColin = p.columnInputs.size > 0;
    let x = G.pad + p.headW;
    for (const t of p.steps) {
      let w = width.get(t) || G.stepW;
      if (L.colOpen.get(t) && p.columnInputs.has(t))
        w = Math.max(w, p.columnInputs.get(t).length * 64 + 8);
      L.colX.set(t, x);
      L.colW.set(t, w);
      x += w;
    }
    L.right = x;
    let y = G.pad + (hasColin ? G.colinH + 10 : 0);
    L.top = y;
    const bars = new Set();
    p.rows.forEach((row, r) => {
      const bar = L.rowBar[r];
      if (bar) {
        if (!bars.has(bar)) {
          bars.add(bar);
          L.items.set(bar, {x: G.pad, y: y, w: x - G.pad, h: G.barH, kind: "bar",
                            path: bar.slice(1), rows: [r]});
          y += G.barH + G.rowGap;
        } else {
          L.items.get(bar).rows.push(r);
        }
        L.rows[r] = null;
        return;
      }
      const h = G.label + Math.max(row.height, 30);
      L.rows[r] = {y: y, h: h};
      row.params.forEach((i, k) => {
        L.items.set("n" + i, {x: G.pad, y: y + G.label + k * (G.paramH + G.paramGap),
                              w: p.headW - 16, h: G.paramH, kind: "node", i: i});
      });
      row.steps.forEach((t, k) => {
        const id = row.first + k, inst = p.instances[id];
        const cx = L.colX.get(t), cw = L.colW.get(t);
        if (!L.open[id]) {
          L.items.set("s" + id, {x: cx + 2, y: y + G.label, w: G.stepW - 4, h: h - G.label,
                                 kind: "step", inst: id});
          return;
        }
        const tpl = p.templates[inst.tpl];
        const ox = cx + (cw - tpl.w) / 2, oy = y + G.label;
        L.items.set("f" + id, {x: ox - 4, y: oy - 2, w: tpl.w + 8, h: tpl.h + 4, kind: "frame",
                               inst: id, ox: ox, oy: oy});
        const closedGates = new Set();
        inst.nodes.forEach((i, slot) => {
          const g = gateClosed(p, inst, slot);
          if (g) { closedGates.add(g); return; }
          L.items.set("n" + i, {x: ox + tpl.x[slot], y: oy + tpl.y[slot], w: tpl.nw[slot],
                                h: tpl.nh[slot], kind: "node", i: i});
        });
        for (const [pk, cx0, cy0, cw0, ch0] of tpl.clusters) {
          const rel = p.strings[pk];
          if (!closedGates.has(rel)) continue;
          L.items.set("g" + id + ":" + rel, {x: ox + cx0, y: oy + cy0, w: cw0, h: ch0,
                                             kind: "gate", inst: id, rel: rel});
        }
      });
      y += h + G.rowGap;
    });
    L.bottom = y;
    // Per-step data at the top of its column.
    for (const [t, nodes] of p.columnInputs) {
      const cx = L.colX.get(t), cw = L.colW.get(t);
      if (L.colOpen.get(t)) {
        const w = Math.min(60, (cw - 8) / nodes.length - 4);
        nodes.forEach((i, k) => {
          L.items.set("n" + i, {x: cx + 4 + k * (w + 4), y: G.pad, w: w, h: G.colinH,
                                kind: "node", i: i});
        });
      } else {
        L.items.set("c" + t, {x: cx + 2, y: G.pad, w: G.stepW - 4, h: G.colinH, kind: "colin",
                              t: t, nodes: nodes});
      }
    }
    // Everything else, to the right.
    const o = p.other;
    L.otherX = L.right + G.otherGap;
    o.nodes.forEach((i, k) => {
      L.items.set("n" + i, {x: L.otherX + o.x[k], y: L.top + o.y[k], w: o.nw[k], h: o.nh[k],
                            kind: "node", i: i});
    });
    L.width = L.otherX + o.w + G.pad;
    L.height = Math.max(L.bottom, L.top + o.h + G.pad);
    return L;
  }

  // ---- drawing ----------------------------------------------------------------------------------
  const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/"/g, "&quot;");
  const f1 = (v) => Math.round(v * 10) / 10;

  function lightText(fill) {
    return fill === palette[0] || fill === palette[1] || fill === palette[8] || fill === "#ff0000";
  }
  // A node's second line: its shape and, for an op that takes parameters, their names (as
  // html.cpp's label_of, which sizes the node).
  function nodeLine2(p, i) {
    let line = p.shape[2 * i] + "x" + p.shape[2 * i + 1];
    if (p.cat[i] !== 0) return line;
    const names = [];
    for (let e = p.pofs[i]; e < p.pofs[i + 1]; e++)
      if (p.cat[p.par[e]] === 1) names.push(p.strings[p.kind[p.par[e]]]);
    return names.length ? line + " · " + names.join(",") : line;
  }
  function nodeFill(p, i) {
    const c = fillOf(p, i);
    if (c) return c;
    return ["#ffffff", "#cfe2f3", "#d9ead3", "#eeeeee"][p.cat[i]];
  }
  function edgePath(a, b) {
    const ax = a.x + a.w / 2, ay = a.y + a.h, bx = b.x + b.w / 2, by = b.y;
    if (Math.abs(bx - ax) > Math.abs(by - ay) * 2 || by < ay) {
      // Mostly sideways (a step to the next): right side to left side, or the reverse.
      const fwd = bx >= ax;
      const sx = fwd ? a.x + a.w : a.x, ex = fwd ? b.x : b.x + b.w;
      const sy = a.y + a.h / 2, ey = b.y + b.h / 2, d = Math.max(20, Math.abs(ex - sx) / 3);
      return `M${f1(sx)},${f1(sy)}C${f1(sx + (fwd ? d : -d))},${f1(sy)} ${f1(ex - (fwd ? d : -d))},${f1(ey)} ${f1(ex)},${f1(ey)}`;
    }
    const d = Math.max(12, (by - ay) / 2);
    return `M${f1(ax)},${f1(ay)}C${f1(ax)},${f1(ay + d)} ${f1(bx)},${f1(by - d)} ${f1(bx)},${f1(by)}`;
  }

  // Marks for the current trace, search and compare outlines, by item id.
  function marks(p, L) {
    const m = {lit: new Set(), hit: new Set(), differ: new Set(), sel: null};
    const tr = p.traced;
    if (tr) {
      for (const i of tr.set) m.lit.add(repOf(p, L, i));
      m.sel = repOf(p, L, tr.node);
    }
    for (const i of p.hits || []) m.hit.add(repOf(p, L, i));
    if (compare) for (const i of compare.differ[p.index]) m.differ.add(repOf(p, L, i));
    return m;
  }

  // The part of the scene drawn: the view and one view's size around it, so a pan of up to
  // that much needs no redraw.
  function viewRect(p) {
    const box = p.svg.getBoundingClientRect();
    const w = Math.max(box.width, 200) / state.k, h = Math.max(box.height, 200) / state.k;
    const x0 = -state.tx / state.k, y0 = -state.ty / state.k;
    return {x0: x0 - w / 2, x1: x0 + 1.5 * w, y0: y0 - h / 2, y1: y0 + 1.5 * h, inner: {x0, y0, w, h},
            k: state.k};
  }
  function marked(m, id, base) {
    let c = base;
    if (m.lit.has(id)) c += " lit";
    if (m.hit.has(id)) c += " hit";
    if (m.differ.has(id)) c += " differ";
    if (m.sel === id) c += " sel";
    return c;
  }
  function nodeClass(p, i) {
    return "node" + (p.cat[i] === 1 ? " param" : "") + (i === p.loss ? " loss" : "");
  }
  const inViewOf = (view, it) => it.x < view.x1 && it.x + it.w > view.x0 && it.y < view.y1 && it.y + it.h > view.y0;
  // Folded steps and column boxes in view, as one path per look (colour and marks), not one
  // element each: thousands of them would cost the browser more than everything else together.
  function stripsOf(p, L, m) {
    const strips = new Map();
    if (!p.instFill) p.instFill = p.instances.map((q) => groupFill(p, q.nodes) || "#ffffff");
    for (const [id, it] of L.items) {
      if ((it.kind !== "step" && it.kind !== "colin") || !inViewOf(p.view, it)) continue;
      const key = it.kind === "step" ? marked(m, id, "step") + "|" + p.instFill[it.inst]
                                     : marked(m, id, "colin") + "|#d9ead3";
      strips.set(key, (strips.get(key) || "") + `M${f1(it.x)},${f1(it.y)}h${f1(it.w)}v${f1(it.h)}h${f1(-it.w)}z`);
    }
    const out = [];
    for (const [key, d] of strips) {
      const [c, fill] = key.split("|");
      out.push(`<path class="${c}" data-strip="1" d="${d}" fill="${fill}"/>`);
    }
    return out.join("");
  }
  function gateMembers(p, it) {
    const inst = p.instances[it.inst];
    return inst.nodes.filter((i, slot) => {
      const rel = p.templates[inst.tpl].relPath[slot];
      return rel === it.rel || rel.startsWith(it.rel + "/");
    });
  }
  // A trace, the colours or the outlines changed and nothing moved: restyle what is drawn, in
  // place (no new elements but the strips: the browser only restyles and repaints).
  function restyle(p) {
    const t0 = performance.now();
    const L = p.L, m = marks(p, L);
    for (const el of p.scene.querySelectorAll("[data-id]")) {
      const id = el.dataset.id, it = L.items.get(id);
      if (!it) continue;
      if (it.kind === "node") {
        const fill = nodeFill(p, it.i);
        el.setAttribute("class", marked(m, id, nodeClass(p, it.i)));
        el.setAttribute("fill", fill);
        const label = el.nextElementSibling;
        if (label && label.tagName === "text") label.classList.toggle("light", lightText(fill));
      } else if (it.kind === "gate") {
        const fill = groupFill(p, gateMembers(p, it)) || "#eeeeee";
        el.setAttribute("class", marked(m, id, "gatebox"));
        el.setAttribute("fill", fill);
        const label = el.nextElementSibling;
        if (label && label.tagName === "text") label.classList.toggle("light", lightText(fill));
      } else if (it.kind === "bar") {
        el.setAttribute("class", marked(m, id, "bar"));
      }
    }
    for (const el of p.scene.querySelectorAll("path[data-e]")) {
      const [a, b] = el.dataset.e.split(">");
      el.classList.toggle("lit", m.lit.has(a) && m.lit.has(b));
    }
    for (const el of p.scene.querySelectorAll("path[data-strip]")) el.remove();
    p.scene.insertAdjacentHTML("beforeend", stripsOf(p, L, m));
    p.scene.classList.toggle("dim", !!p.traced);
    p.renderMs = performance.now() - t0;
  }
  function render(p) {
    const t0 = performance.now();
    const L = layout(p);
    p.L = L;
    p.view = viewRect(p);
    const t1 = performance.now();
    const m = marks(p, L);
    const t2 = performance.now();
    const s = p.strings, out = [];
    const cls = (id, base) => marked(m, id, base);
    // Row labels: each component clickable (collapses that prefix).
    const labelRow = (parts, x, y, cls0) => {
      let path = "", t = `<text class="${cls0}" x="${x}" y="${y}">`;
      parts.forEach((part, k) => {
        path = path ? path + "/" + part : part;
        t += (k ? "/" : "") + `<tspan data-row="${esc(path)}">${esc(part)}</tspan>`;
      });
      return t + "</text>";
    };
    p.rows.forEach((row, r) => {
      const R = L.rows[r];
      if (!R) return;
      out.push(`<rect class="rowbg" x="${G.pad - 6}" y="${R.y - 2}" width="${f1(L.right - G.pad + 12)}" height="${R.h + 4}" rx="4"/>`);
      out.push(labelRow(row.parts, G.pad, R.y + 11, "rowlabel"));
    });
    const edges = [];
    // Template edges of open steps, where both ends are drawn.
    L.items.forEach((it, id) => {
      if (it.kind !== "frame") return;
      const inst = p.instances[it.inst], tpl = p.templates[inst.tpl];
      out.push(`<rect class="frame" x="${f1(it.x)}" y="${f1(it.y)}" width="${f1(it.w)}" height="${f1(it.h)}" rx="3"/>`);
      out.push(`<text class="framelabel" data-step="${it.inst}" x="${f1(it.x + 2)}" y="${f1(it.y - 3)}">t${inst.t} ▾</text>`);
      for (const [pk, cx, cy, cw, ch] of tpl.clusters) {
        const rel = s[pk];
        if (L.items.has("g" + it.inst + ":" + rel)) continue;
        let hidden = false;  // inside a collapsed gate
        for (const c of state.closed) if (c.startsWith(inst.path + "/") && rel.startsWith(c.slice(inst.path.length + 1) + "/")) hidden = true;
        if (hidden) continue;
        out.push(`<rect class="gate" x="${f1(it.ox + cx)}" y="${f1(it.oy + cy)}" width="${cw}" height="${ch}" rx="3"/>`);
        out.push(`<text class="gatelabel" data-gate="${it.inst}:${esc(rel)}" x="${f1(it.ox + cx + 3)}" y="${f1(it.oy + cy + 9)}">${esc(rel.split("/").pop())} ▾</text>`);
      }
      for (const [a, b, d] of tpl.edges) {
        const ia = inst.nodes[a], ib = inst.nodes[b];
        if (L.items.has("n" + ia) && L.items.has("n" + ib) && d) {
          const lit = p.traced && p.traced.set.has(ia) && p.traced.set.has(ib) ? " lit" : "";
          edges.push(`<path class="edge${lit}" data-e="n${ia}>n${ib}" transform="translate(${f1(it.ox)},${f1(it.oy)})" d="${d}" marker-end="url(#arrow)"/>`);
        }
      }
    });
    // Every other edge that touches a drawn op, between whatever stands for its ends, once per
    // pair. Between two folded boxes none is drawn (their columns line up instead), and weights
    // connect to open steps only (to every folded step they would be a fan across the row).
    const seen = new Set();
    const view = p.view;
    const inView = (it) => it.x < view.x1 && it.x + it.w > view.x0 && it.y < view.y1 && it.y + it.h > view.y0;
    const addEdge = (a, b) => {
      if (a === b || (a[0] !== "n" && b[0] !== "n")) return;
      const key = a + ">" + b;
      if (seen.has(key)) return;
      seen.add(key);
      const A = L.items.get(a), B = L.items.get(b);
      if (!A || !B || (!inView(A) && !inView(B))) return;
      const lit = m.lit.has(a) && m.lit.has(b) ? " lit" : "";
      edges.push(`<path class="edge cross${lit}" data-e="${esc(key)}" d="${edgePath(A, B)}" marker-end="url(#arrow)"/>`);
    };
    for (const it of L.items.values()) {
      if (it.kind !== "node") continue;
      const i = it.i, ri = "n" + i;
      for (let e = p.pofs[i]; e < p.pofs[i + 1]; e++) {
        const j = p.par[e];
        if (p.inst[i] >= 0 && p.inst[i] === p.inst[j] && L.open[p.inst[i]] && L.items.has("n" + j)) continue;
        addEdge(repOf(p, L, j), ri);
      }
      if (p.cat[i] === 1) continue;
      for (let e = p.cofs[i]; e < p.cofs[i + 1]; e++) {
        const c = p.kids[e];
        if (p.inst[c] >= 0 && p.inst[c] === p.inst[i] && L.open[p.inst[i]] && L.items.has("n" + c)) continue;
        const rc = repOf(p, L, c);
        if (rc[0] !== "n") addEdge(ri, rc);
      }
    }
    out.push(edges.join(""));
    // Boxes and nodes, those in (or near) the view; folded steps and column boxes as strips.
    L.items.forEach((it, id) => {
      if (!inView(it)) return;
      const x = f1(it.x), y = f1(it.y), w = f1(it.w), h = f1(it.h);
      if (it.kind === "bar") {
        const rows = it.rows.map((r) => p.rows[r]);
        let ops = 0;
        for (const row of rows) for (const nodes of row.nodes) ops += nodes.length;
        out.push(`<rect class="${cls(id, "bar")}" data-id="${esc(id)}" data-bar="${esc(it.path)}" x="${x}" y="${y}" width="${w}" height="${h}" rx="4"/>`);
        out.push(`<text class="bartext" x="${f1(it.x + 8)}" y="${f1(it.y + 18)}">▸ ${esc(it.path)}: ${rows.length} sequence${rows.length > 1 ? "s" : ""}, ${ops + rows.reduce((a, r) => a + r.params.length, 0)} ops (click to expand)</text>`);
      } else if (it.kind === "step") {
        const inst = p.instances[it.inst];
        if (state.k >= kText && (inst.t % 10 === 0 || state.k >= 1.5))
          out.push(`<text class="steptext" x="${f1(it.x + it.w / 2)}" y="${f1(it.y + 10)}" text-anchor="middle">${inst.t}</text>`);
      } else if (it.kind === "gate") {
        const members = gateMembers(p, it);
        const fill = groupFill(p, members) || "#eeeeee";
        out.push(`<rect class="${cls(id, "gatebox")}" data-id="${esc(id)}" data-gate="${it.inst}:${esc(it.rel)}" x="${x}" y="${y}" width="${w}" height="${h}" rx="3" fill="${fill}"/>`);
        out.push(`<text class="nodetext${lightText(fill) ? " light" : ""}" x="${f1(it.x + it.w / 2)}" y="${f1(it.y + it.h / 2 + 3)}">${esc(it.rel)} · ${members.length} ops ▸</text>`);
      } else if (it.kind === "node") {
        const i = it.i, fill = nodeFill(p, i);
        out.push(`<rect class="${cls(id, nodeClass(p, i))}" data-id="${id}" data-i="${i}" x="${x}" y="${y}" width="${w}" height="${h}" rx="4" fill="${fill}"/>`);
        if (it.w >= 24 && state.k >= kText) {
          const light = lightText(fill) ? " light" : "";
          const sh = nodeLine2(p, i);
          out.push(`<text class="nodetext${light}" x="${f1(it.x + it.w / 2)}" y="${f1(it.y + it.h / 2 - 1)}">${esc(s[p.kind[i]])}<tspan x="${f1(it.x + it.w / 2)}" dy="10">${esc(sh)}</tspan></text>`);
        }
      }
    });
    out.push(stripsOf(p, L, m));
    p.scene.classList.toggle("dim", !!p.traced);
    const html = out.join("");
    const t3 = performance.now();
    p.scene.innerHTML = html;
    p.drawn = p.scene.childElementCount;
    const t4 = performance.now();
    p.renderMs = t4 - t0;
    p.renderParts = {layout: t1 - t0, marks: t2 - t1, build: t3 - t2, dom: t4 - t3};
  }

  let redrawQueued = false;
  const kText = 0.5;  // below this zoom, labels are too small to read and are not drawn
  function applyView() {
    let stale = false;
    for (const p of panes) {
      p.scene.setAttribute("transform", `translate(${f1(state.tx)},${f1(state.ty)}) scale(${state.k})`);
      if (!p.view) continue;
      const v = viewRect(p).inner, d = p.view;
      if (v.x0 < d.x0 || v.y0 < d.y0 || v.x0 + v.w > d.x1 || v.y0 + v.h > d.y1 ||
          v.w < (d.x1 - d.x0) / 4 || (d.k >= kText) !== (state.k >= kText))
        stale = true;  // panned out of the drawn part, zoomed in far, or labels come or go
    }
    if (stale && !redrawQueued) {
      redrawQueued = true;
      requestAnimationFrame(() => { redrawQueued = false; for (const p of panes) render(p); });
    }
  }
  function renderAll() {
    for (const p of panes) render(p);
    applyView();
    const slider = document.getElementById("window");
    slider.max = String(Math.max(0, maxSteps - state.window));
    slider.value = String(state.start);
    document.getElementById("wlabel").textContent =
        `steps ${state.start}–${Math.min(maxSteps, state.start + state.window) - 1} of ${maxSteps}`;
  }

  // ---- actions (each one timed until the frame after it is painted) -----------------------------
  // An action: fn changes the state; then the scene is drawn again, or only restyled when
  // nothing moved (a trace, a colour switch).
  function act(name, fn, how = "render") {
    const t0 = performance.now();
    const result = fn();
    if (how === "restyle") {
      for (const p of panes) restyle(p);
    } else {
      renderAll();
    }
    return new Promise((resolve) => {
      requestAnimationFrame(() => setTimeout(() => {
        const ms = performance.now() - t0;
        (timings[name] = timings[name] || []).push(ms);
        resolve({ms: ms, result: result});
      }, 0));
    });
  }
  function setWindow(start) {
    state.start = Math.max(0, Math.min(maxSteps - state.window, start));
  }
  // Trace: every ancestor and descendant of node i over the whole tape.
  function traceSet(p, i) {
    const set = new Set([i]);
    let stack = [i];
    while (stack.length) {
      const v = stack.pop();
      for (let e = p.pofs[v]; e < p.pofs[v + 1]; e++) {
        const u = p.par[e];
        if (!set.has(u)) { set.add(u); stack.push(u); }
      }
    }
    const anc = set.size;
    stack = [i];
    const down = new Set([i]);
    while (stack.length) {
      const v = stack.pop();
      for (let e = p.cofs[v]; e < p.cofs[v + 1]; e++) {
        const u = p.kids[e];
        if (!down.has(u)) { down.add(u); stack.push(u); set.add(u); }
      }
    }
    return {node: i, set: set, ancestors: anc - 1, descendants: down.size - 1};
  }
  function trace(pane, i) {
    const p = panes[pane];
    if (i === null || i === undefined || i < 0) {
      for (const q of panes) q.traced = null;
      return null;
    }
    p.traced = traceSet(p, i);
    if (compare) {  // the matching op on the other side
      const other = panes[1 - pane];
      const j = pane === 0 ? compare.match[i] : compare.back[i];
      other.traced = j >= 0 ? traceSet(other, j) : null;
    }
    return {ancestors: p.traced.ancestors, descendants: p.traced.descendants};
  }
  function globRegex(q) {
    let r = "";
    for (let k = 0; k < q.length; k++) {
      const c = q[k];
      if (c === "*" && q[k + 1] === "*") { r += ".*"; k++; }
      else if (c === "*") r += "[^/]*";
      else if (c === "?") r += "[^/]";
      else r += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
    return new RegExp("^" + r + "$");
  }
  // Search by scope path and kind ("layer1/bwd/t7/f/sigmoid"): a glob (* within a component, **
  // across, ?), or /a regex/. The steps holding hits are expanded (up to 24 of them; beyond,
  // the window moves to the first).
  function search(q) {
    for (const p of panes) p.hits = [];
    q = (q || "").trim();
    if (!q) return {hits: 0};
    let re;
    try {
      re = q.length > 1 && q.startsWith("/") && q.endsWith("/") ? new RegExp(q.slice(1, -1)) : globRegex(q);
    } catch (err) {
      return {hits: 0, error: String(err.message || err)};
    }
    let total = 0;
    for (const p of panes) {
      for (let i = 0; i < p.n; i++) if (re.test(p.text(i))) p.hits.push(i);
      total += p.hits.length;
    }
    const p = panes[0].hits.length ? panes[0] : panes[panes.length - 1];
    const steps = new Set(p.hits.filter((i) => p.inst[i] >= 0).map((i) => p.inst[i]));
    if (steps.size <= 24) {
      for (const k of steps) state.steps.set(p.instances[k].path, true);
    } else if (p.hits.length) {
      focusNode(p, p.hits[0], false);
    }
    for (const i of p.hits) reveal(p, i);
    return {hits: total};
  }
  // Open whatever hides node i: its row prefixes, its step, its gates.
  function reveal(p, i) {
    const k = p.inst[i] >= 0 ? p.inst[i] : -1;
    const r = k >= 0 ? p.instances[k].row : p.prow[i];
    if (r >= 0) {
      let path = "";
      for (const part of p.rows[r].parts) {
        path = path ? path + "/" + part : part;
        state.closed.delete(path);
      }
    }
    if (k >= 0) {
      const inst = p.instances[k];
      const rel = p.templates[inst.tpl].relPath[p.slot[i]];
      if (rel) {
        let path = "";
        for (const part of rel.split("/")) {
          path = path ? path + "/" + part : part;
          state.closed.delete(inst.path + "/" + path);
        }
      }
    }
  }
  function focusNode(p, i, expand = true) {
    reveal(p, i);
    const k = p.inst[i];
    if (k >= 0) {
      const inst = p.instances[k];
      if (!expand) setWindow(inst.col - Math.floor(state.window / 2));
      else if (!(inst.col >= state.start && inst.col < state.start + state.window))
        state.steps.set(inst.path, true);
    } else if (!Number.isNaN(p.pcol[i])) {
      setWindow(p.steps.indexOf(p.pcol[i]) - Math.floor(state.window / 2));
    }
    const L = layout(p), it = L.items.get(repOf(p, L, i));
    if (it) center(p, it.x + it.w / 2, it.y + it.h / 2);
  }
  function center(p, x, y) {
    const box = p.svg.getBoundingClientRect();
    state.k = Math.max(state.k, 0.8);
    state.tx = box.width / 2 - x * state.k;
    state.ty = box.height / 2 - y * state.k;
  }
  function fit() {
    const p = panes[0], L = layout(p), box = p.svg.getBoundingClientRect();
    state.k = Math.min(box.width / L.width, box.height / L.height, 2);
    state.tx = (box.width - L.width * state.k) / 2;
    state.ty = 10;
  }
  function setColour(mode) {
    state.colour = mode;
    for (const p of panes) p.instFill = null;
    range = scale(mode);
    legend();
    document.getElementById("colour").value = mode;
  }
  function jumpBad() {
    for (const p of panes) {
      if (p.first_bad < 0) continue;
      focusNode(p, p.first_bad);
      p.traced = {node: p.first_bad, set: new Set([p.first_bad]), ancestors: 0, descendants: 0};
      return p.first_bad;
    }
    return -1;
  }

  // ---- the card ---------------------------------------------------------------------------------
  let card = null;
  const g4 = (v) => (v === null ? "—" : Number.isFinite(v) ? Number(v.toPrecision(4)).toString() : String(v));
  function stats(a, i) {
    if (a[3 * i] === null) return null;
    return `min ${g4(a[3 * i])}, max ${g4(a[3 * i + 1])}, norm ${g4(a[3 * i + 2])}`;
  }
  function describe(p, i) {
    const s = p.strings, scope = s[p.scope[i]] || "top level";
    const kind = ["op", "parameter", "input", "constant"][p.cat[i]];
    let text = `<b>${esc(s[p.kind[i]])}</b> ${p.shape[2 * i]}x${p.shape[2 * i + 1]} (${kind} #${i})\nat ${esc(scope)}\nvalue: ${stats(p.val, i)}`;
    const g = stats(p.grad, i);
    if (g) text += `\ngradient: ${g}`;
    if (compare) {
      const j = p.index === 0 ? compare.match[i] : compare.back[i];
      if (j >= 0) {
        const q = panes[1 - p.index];
        text += `\n${esc(q.name)}: gradient ${stats(q.grad, j) || "none"}`;
      }
    }
    return text;
  }
  function describeStep(p, k) {
    const inst = p.instances[k];
    let g = 0;
    for (const i of inst.nodes) if (p.grad[3 * i + 2] !== null) g = Math.max(g, p.grad[3 * i + 2]);
    return `<b>${esc(inst.path)}</b>\n${inst.nodes.length} ops (click to expand)` + (p.grads ? `\nlargest gradient norm ${g4(g)}` : "");
  }

  // ---- the page ---------------------------------------------------------------------------------
  // The search box's example: a glob over this page's own steps (the last sequence with a
  // direction or a name under its layer, a step in its middle), so that it finds something.
  function searchExample() {
    const rows = panes[0].rows.filter((r) => r.steps.length);
    if (!rows.length) return "**/matmul*";
    const nested = rows.filter((r) => r.path.includes("/"));
    const row = (nested.length ? nested : rows)[(nested.length ? nested : rows).length - 1];
    const parts = row.path.split("/");
    const prefix = parts.length > 1 ? parts.slice(0, -1).concat("*").join("/") : row.path;
    return prefix + "/t" + row.steps[Math.floor(row.steps.length / 2)] + "/**";
  }
  function build() {
    document.title = data.title || "rewind graph";
    const bar = document.createElement("div");
    bar.id = "bar";
    bar.innerHTML = `<h1>${esc(data.title || "rewind graph")}</h1>
      <span class="tabs"><button id="tab-unrolled" aria-pressed="true">Unrolled</button><button id="tab-overview" aria-pressed="false">Overview</button></span>
      <label>window <input id="window" type="range" min="0" max="0" step="1" value="0"></label>
      <label><input id="wsize" type="number" min="1" max="50" value="${state.window}"> steps</label>
      <span id="wlabel"></span>
      <label><input id="search" type="search" placeholder="search: ${esc(searchExample())} or /regex/"></label>
      <span id="hits"></span>
      <label>colour <select id="colour"><option value="off">off</option><option value="grad">gradient norm</option><option value="value">value norm</option></select></label>
      <button id="bad">first NaN/Inf</button>
      <button id="gates">collapse gates</button>
      <button id="fit">fit</button>
      <span id="legend"></span>
      <span id="status"></span>`;
    document.body.appendChild(bar);
    const holder = document.createElement("div");
    holder.id = "panes";
    document.body.appendChild(holder);
    const cardEl = document.createElement("div");
    cardEl.id = "card";
    document.body.appendChild(cardEl);
    card = cardEl;
    panes.forEach((p, k) => {
      const el = document.createElement("div");
      el.className = "pane";
      el.id = "pane-" + k;
      if (panes.length > 1) el.innerHTML = `<div class="title">${esc(p.name)}</div>`;
      const svg = document.createElementNS(NS, "svg");
      svg.setAttribute("class", "view");
      svg.innerHTML = `<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="5" markerHeight="5" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#777"/></marker></defs><g class="scene"></g>`;
      el.appendChild(svg);
      const ov = document.createElement("div");
      ov.className = "overview";
      const tpl = document.getElementById("overview-" + k);
      if (tpl) ov.appendChild(tpl.content.cloneNode(true));
      el.appendChild(ov);
      holder.appendChild(el);
      p.el = el;
      p.svg = svg;
      p.scene = svg.querySelector(".scene");
      wire(p, k, ov);
    });
    const ops = panes.reduce((a, p) => a + p.n, 0);
    document.getElementById("status").textContent =
        `${ops} ops, ${panes[0].rows.length} sequences, ${panes[0].templates.length} step layouts` +
        (compare ? `, ${compare.differ[0].length} ops differ by more than ${compare.threshold}×` : "");
  }
  function wire(p, k, ov) {
    const svg = p.svg;
    let drag = null, moved = false;
    svg.addEventListener("mousedown", (e) => { drag = {x: e.clientX, y: e.clientY, tx: state.tx, ty: state.ty}; moved = false; });
    window.addEventListener("mousemove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) moved = true;
      if (!moved) return;
      svg.classList.add("dragging");
      state.tx = drag.tx + dx;
      state.ty = drag.ty + dy;
      applyView();
    });
    window.addEventListener("mouseup", () => { drag = null; svg.classList.remove("dragging"); });
    svg.addEventListener("wheel", (e) => {
      e.preventDefault();
      const box = svg.getBoundingClientRect(), mx = e.clientX - box.left, my = e.clientY - box.top;
      const f = Math.exp(-e.deltaY * 0.0015), k2 = Math.max(0.02, Math.min(8, state.k * f));
      state.tx = mx - (mx - state.tx) * (k2 / state.k);
      state.ty = my - (my - state.ty) * (k2 / state.k);
      state.k = k2;
      applyView();
    }, {passive: false});
    svg.addEventListener("click", (e) => {
      if (moved) return;
      const t = e.target, d = Object.assign({}, t.dataset || {}, boxAt(p, e.clientX, e.clientY, t));
      if (d.i !== undefined) act("trace", () => trace(k, Number(d.i)), "restyle");
      else if (d.step !== undefined) act("step", () => {
        const inst = p.instances[Number(d.step)];
        state.steps.set(inst.path, !stepOpen(inst) || !p.L.open[Number(d.step)]);
      });
      else if (d.gate !== undefined) act("gate", () => {
        const [id, rel] = [d.gate.slice(0, d.gate.indexOf(":")), d.gate.slice(d.gate.indexOf(":") + 1)];
        const path = p.instances[Number(id)].path + "/" + rel;
        if (state.closed.has(path)) state.closed.delete(path); else state.closed.add(path);
      });
      else if (d.row !== undefined) act("row", () => state.closed.add(d.row));
      else if (d.bar !== undefined) act("row", () => state.closed.delete(d.bar));
      else if (d.col !== undefined) act("step", () => setWindow(p.steps.indexOf(Number(d.col)) - Math.floor(state.window / 2)));
      else if (p.traced) act("trace", () => trace(k, null), "restyle");
    });
    svg.addEventListener("mousemove", (e) => {
      const d = Object.assign({}, e.target.dataset || {}, boxAt(p, e.clientX, e.clientY, e.target));
      let html = null;
      if (d.i !== undefined) html = describe(p, Number(d.i));
      else if (d.step !== undefined && e.target.dataset.strip) html = describeStep(p, Number(d.step));
      if (!html) { card.style.display = "none"; return; }
      card.innerHTML = html;
      card.style.display = "block";
      card.style.left = Math.min(window.innerWidth - 320, e.clientX + 14) + "px";
      card.style.top = Math.min(window.innerHeight - 100, e.clientY + 14) + "px";
    });
    svg.addEventListener("mouseout", () => { card.style.display = "none"; });
    ov.addEventListener("click", (e) => {
      const g = e.target.closest("g[id^='ov-']");
      if (!g) return;
      const id = g.id.slice(3);
      showTab("unrolled");
      if (/^n\d+$/.test(id)) act("trace", () => { focusNode(p, Number(id.slice(1))); trace(k, Number(id.slice(1))); });
      else if (id.startsWith("c:")) act("row", () => focusScope(p, id.slice(2)));
    });
  }
  // Scene coordinates of a point in the window, and the folded step or column box under it.
  function toScene(p, cx, cy) {
    const box = p.svg.getBoundingClientRect();
    return {x: (cx - box.left - state.tx) / state.k, y: (cy - box.top - state.ty) / state.k};
  }
  function boxAt(p, cx, cy, target) {
    if (!target || !target.dataset || !target.dataset.strip || !p.L) return {};
    const q = toScene(p, cx, cy);
    for (const it of p.L.items.values()) {
      if ((it.kind !== "step" && it.kind !== "colin") || q.x < it.x || q.x > it.x + it.w || q.y < it.y || q.y > it.y + it.h) continue;
      return it.kind === "step" ? {step: String(it.inst)} : {col: String(it.t)};
    }
    return {};
  }
  // Where an item is on the screen (the tests click there).
  function screenBox(pane, id) {
    const p = panes[pane], it = p.L.items.get(id);
    if (!it) return null;
    const box = p.svg.getBoundingClientRect();
    return {x: box.left + state.tx + it.x * state.k, y: box.top + state.ty + it.y * state.k,
            w: it.w * state.k, h: it.h * state.k};
  }
  // The first node under a scope path, shown.
  function focusScope(p, path) {
    for (let i = 0; i < p.n; i++) {
      const s = p.strings[p.scope[i]];
      if (s === path || s.startsWith(path + "/")) { focusNode(p, i); return i; }
    }
    return -1;
  }
  function showTab(tab) {
    state.tab = tab;
    document.body.classList.toggle("ov", tab === "overview");
    document.getElementById("tab-unrolled").setAttribute("aria-pressed", String(tab === "unrolled"));
    document.getElementById("tab-overview").setAttribute("aria-pressed", String(tab === "overview"));
  }
  function controls() {
    const $ = (id) => document.getElementById(id);
    $("window").addEventListener("input", (e) => act("window", () => setWindow(Number(e.target.value))));
    $("wsize").addEventListener("change", (e) => act("window", () => {
      state.window = Math.max(1, Math.min(50, Number(e.target.value) || 1));
      setWindow(state.start);
    }));
    $("search").addEventListener("keydown", (e) => {
      if (e.key !== "Enter") return;
      const q = e.target.value;
      act("search", () => search(q)).then((r) => {
        $("hits").textContent = r.result.error ? "bad pattern: " + r.result.error : `${r.result.hits} hit${r.result.hits === 1 ? "" : "s"}`;
        const p = panes.find((x) => x.hits.length);
        if (p) { focusNode(p, p.hits[0], false); applyView(); }
      });
    });
    $("colour").addEventListener("change", (e) => act("colour", () => setColour(e.target.value), "restyle"));
    $("bad").addEventListener("click", () => act("bad", jumpBad));
    $("gates").addEventListener("click", () => act("gate", () => toggleAllGates()));
    $("fit").addEventListener("click", () => { fit(); applyView(); });
    $("tab-unrolled").addEventListener("click", () => showTab("unrolled"));
    $("tab-overview").addEventListener("click", () => showTab("overview"));
    window.addEventListener("keydown", (e) => {
      if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
      const step = e.shiftKey ? 10 : 1;
      if (e.key === "ArrowRight") act("window", () => setWindow(state.start + step));
      else if (e.key === "ArrowLeft") act("window", () => setWindow(state.start - step));
      else if (e.key === "f") { fit(); applyView(); }
      else if (e.key === "/") { e.preventDefault(); $("search").focus(); }
      else if (e.key === "Escape") act("trace", () => trace(0, null), "restyle");
    });
  }
  // Collapse (or expand) every gate of the open steps.
  let gatesClosed = false;
  function toggleAllGates() {
    gatesClosed = !gatesClosed;
    for (const p of panes) {
      for (let k = 0; k < p.instances.length; k++) {
        const inst = p.instances[k];
        for (const [pk] of p.templates[inst.tpl].clusters) {
          const rel = p.strings[pk];
          if (rel.includes("/")) continue;  // outermost gates only
          if (gatesClosed) state.closed.add(inst.path + "/" + rel); else state.closed.delete(inst.path + "/" + rel);
        }
      }
    }
    document.getElementById("gates").textContent = gatesClosed ? "expand gates" : "collapse gates";
  }

  build();
  controls();
  setColour(panes.some((p) => p.grads) ? "grad" : "off");
  renderAll();
  fitStart();
  function fitStart() {
    // Open on the first steps at a readable zoom.
    const p = panes[0], box = p.svg.getBoundingClientRect();
    state.k = Math.min(1, Math.max(0.55, box.height / Math.max(p.L.height, 1)));
    state.tx = 10;
    state.ty = 10;
    applyView();
  }
  window.rewind = {
    data: data, panes: panes, state: state, timings: timings,
    act: act, setWindow: setWindow, trace: trace, search: search, setColour: setColour,
    jumpBad: jumpBad, focusNode: (pane, i) => focusNode(panes[pane], i), fit: fit,
    toggleAllGates: toggleAllGates, showTab: showTab, screenBox: screenBox,
    rep: (pane, i) => repOf(panes[pane], panes[pane].L, i),
    stepId: (pane, path) => "s" + panes[pane].instances.findIndex((inst) => inst.path === path),
    traceNodes: (pane) => (panes[pane].traced ? [...panes[pane].traced.set].sort((a, b) => a - b) : []),
    drawn: () => panes.map((p) => p.drawn),
    openSteps: (pane) => panes[pane].instances.filter((inst, k) => panes[pane].L.open[k]).map((inst) => inst.path),
    ready: true, readyAt: performance.now(),
  };
  document.body.setAttribute("data-ready", "1");
})();
