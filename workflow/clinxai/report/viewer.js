// clinxai case viewer: renders one case's MRI, clinical region and heatmaps from the manifest in index.html and
// the files in cases/ (gzip-compressed 8-bit arrays, base64), loaded when first shown. No network, no server.
"use strict";
const M = JSON.parse(document.getElementById("manifest").textContent);
const state = { caseIndex: 0, seed: M.seeds[0], method: M.methods[0], plane: "axial", opacity: 0.55, mask: true,
                slices: [], active: 0, data: null, renders: 0 };
window.viewerState = state;

// planes of a volume: which axis is fixed, which runs down the rows (drawn bottom-up) and across the columns
const PLANES = {
  axial: { fixed: 2, rows: 1, cols: 0, flip: true },
  coronal: { fixed: 1, rows: 2, cols: 0, flip: true },
  sagittal: { fixed: 0, rows: 2, cols: 1, flip: true },
  view: { fixed: 0, rows: 1, cols: 2, flip: false },   // a knee view: a stack of slices, each an image
  slice: { fixed: 2, rows: 1, cols: 0, flip: true },   // a 2-D slice, stored x-by-y like BraTS axial slices
};

function lut(v) {  // jet-like colour map, v in 0..1
  const r = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 3)));
  const g = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 2)));
  const b = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 1)));
  return [255 * r, 255 * g, 255 * b];
}
const LUT = Array.from({ length: 256 }, (_, i) => lut(i / 255));

async function decode(b64) {
  if (b64 === null) return null;
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const promises = {};  // file key -> promise of its payload
const waiting = {};
const decoded = {};
window.clinxaiData = function (payload) {  // called by every file under cases/
  const resolve = waiting[payload.key];
  if (resolve) resolve(payload);
};

function loadScript(key, src) {
  if (!promises[key]) {
    promises[key] = new Promise((resolve, reject) => {
      waiting[key] = resolve;
      const tag = document.createElement("script");
      tag.src = src;
      tag.onerror = () => reject(new Error("could not load " + src));
      document.head.appendChild(tag);
    });
  }
  return promises[key];
}

async function caseImages(i) {
  const key = `${i}/images`;
  if (!decoded[key]) {
    const raw = await loadScript(key, `${M.cases[i].folder}/images.js`);
    decoded[key] = { images: await Promise.all(raw.images.map(decode)), masks: await Promise.all(raw.masks.map(decode)) };
  }
  return decoded[key];
}

async function caseMap(i, seed, method) {
  const key = `${i}/${seed}_${method}`;
  if (!decoded[key]) {
    const raw = await loadScript(key, `${M.cases[i].folder}/${seed}_${method}.js`);
    decoded[key] = await Promise.all(raw.maps.map(decode));
  }
  return decoded[key];
}

async function update() {  // load what the current choice needs (cached), then draw -- unless it changed meanwhile
  const i = state.caseIndex, seed = state.seed, method = state.method;
  const [img, map] = await Promise.all([caseImages(i), caseMap(i, seed, method)]);
  if (i !== state.caseIndex || seed !== state.seed || method !== state.method) return;
  state.data = { images: img.images, masks: img.masks, map: map };
  render();
}

function dims(shape) { return shape.length === 2 ? [shape[0], shape[1], 1] : shape; }
function planeOf() { return M.layout === "views" ? PLANES.view : M.layout === "slice" ? PLANES.slice : PLANES[state.plane]; }
function sliders() { return M.layout === "views" ? M.modalities.length : M.layout === "volume" ? 1 : 0; }

function verdict(c, seed) {
  const m = c.models[seed];
  const right = m.pred === m.label;
  return `model: ${M.classes[m.pred]} ${m.prob.toFixed(2)} — truth: ${M.classes[m.label]} — ` +
         `<span class="${right ? "right" : "wrong"}">${right ? "right" : "wrong"}</span>`;
}

function buildCaseList() {
  const ul = document.getElementById("case-list");
  ul.innerHTML = "";
  M.cases.forEach((c, i) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.dataset.case = c.id;
    b.innerHTML = `<b>${c.id}</b><br>${verdict(c, state.seed)}`;
    b.className = i === state.caseIndex ? "active" : "";
    b.onclick = () => selectCase(i).catch(fail);
    li.appendChild(b);
    ul.appendChild(li);
  });
}

function resetSlices() {
  const c = M.cases[state.caseIndex];
  const p = planeOf();
  state.slices = M.modalities.map((_, k) => {
    const d = dims(c.shapes[k]);
    const start = (M.layout === "volume" && state.plane !== "axial") ? Math.floor(d[p.fixed] / 2) : c.start[k];
    return Math.min(d[p.fixed] - 1, Math.max(0, start));
  });
}

function buildPanels() {
  const box = document.getElementById("panels");
  box.innerHTML = "";
  const c = M.cases[state.caseIndex];
  const p = planeOf();
  M.modalities.forEach((name, k) => {
    const d = dims(c.shapes[k]);
    const panel = document.createElement("div");
    panel.className = "panel";
    const canvas = document.createElement("canvas");
    canvas.id = `panel-${k}`;
    canvas.width = d[p.cols];
    canvas.height = d[p.rows];
    panel.innerHTML = `<div><b>${name}</b></div>`;
    panel.appendChild(canvas);
    const perView = M.layout === "views";
    if (sliders() && (perView || k === 0)) {
      const s = document.createElement("input");
      s.type = "range"; s.min = 0; s.max = d[p.fixed] - 1; s.value = state.slices[k];
      s.id = `slice-${k}`;
      s.setAttribute("aria-label", `slice of ${perView ? name : "the volume"}`);
      s.oninput = () => {
        state.active = k;
        if (perView) state.slices[k] = +s.value; else state.slices = state.slices.map(() => +s.value);
        render();
      };
      s.onfocus = () => { state.active = k; };
      const label = document.createElement("div");
      label.id = `slice-label-${k}`;
      panel.appendChild(s);
      panel.appendChild(label);
    }
    box.appendChild(panel);
  });
}

function drawPanel(k) {
  const c = M.cases[state.caseIndex];
  const data = state.data;
  const d = dims(c.shapes[k]);
  const p = planeOf();
  const canvas = document.getElementById(`panel-${k}`);
  const ctx = canvas.getContext("2d");
  const w = d[p.cols], h = d[p.rows];
  const img = ctx.createImageData(w, h);
  const vol = data.images[k];
  const map = data.map[k];
  const mask = state.mask ? data.masks[k] : null;
  const idx = (pt) => (pt[0] * d[1] + pt[1]) * d[2] + pt[2];
  const at = (r, col) => {
    const pt = [0, 0, 0];
    pt[p.fixed] = state.slices[k];
    pt[p.rows] = p.flip ? h - 1 - r : r;
    pt[p.cols] = col;
    return idx(pt);
  };
  for (let r = 0; r < h; r++) {
    for (let col = 0; col < w; col++) {
      const i = at(r, col);
      let px = [vol[i], vol[i], vol[i]];
      const v = map[i];
      if (v > 12) {  // below 5 % of the map's strongest value: left transparent
        const a = state.opacity, colour = LUT[v];
        px = px.map((g, j) => (1 - a) * g + a * colour[j]);
      }
      if (mask && mask[i]) {
        const edge = r === 0 || col === 0 || r === h - 1 || col === w - 1 || !mask[at(r - 1, col)] ||
                     !mask[at(r + 1, col)] || !mask[at(r, col - 1)] || !mask[at(r, col + 1)];
        if (edge) px = [40, 230, 70];
      }
      const o = 4 * (r * w + col);
      img.data[o] = px[0]; img.data[o + 1] = px[1]; img.data[o + 2] = px[2]; img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  const label = document.getElementById(`slice-label-${k}`);
  if (label) label.textContent = `slice ${state.slices[k] + 1} of ${d[p.fixed]}`;
}

function fmt(v) { return v === null || v === undefined ? "—" : Number(v).toFixed(3); }

function renderScores() {
  const c = M.cases[state.caseIndex];
  const s = ((M.scores[state.seed] || {})[state.method] || {})[c.id] || {};
  const rows = Object.keys(M.metrics).filter((m) => m in s)
    .map((m) => `<tr><td>${M.metrics[m].label}</td><td>${fmt(s[m])}</td><td>${M.metrics[m].means}</td></tr>`);
  document.getElementById("scores").innerHTML = rows.length
    ? `<b>Scores of this map</b><table><tr><th>score</th><th>value</th><th>what it says</th></tr>${rows.join("")}</table>`
    : "<i>No scores for this map.</i>";
}

function render() {
  if (!state.data) return;
  const c = M.cases[state.caseIndex];
  document.getElementById("case-title").innerHTML = `<h2>Case ${c.id}</h2><p>${verdict(c, state.seed)}</p>`;
  const status = c.status[state.seed][state.method];
  document.getElementById("status").textContent = `${state.method}, model ${state.seed}: map ${status === "ok" ?
    "computed" : status === "all_zero" ? "is empty (no voxel has positive weight)" : "failed (not finite)"}`;
  M.modalities.forEach((_, k) => drawPanel(k));
  for (let k = 0; k < M.modalities.length; k++) {
    const s = document.getElementById(`slice-${k}`);
    if (s) s.value = state.slices[k];
  }
  renderScores();
  state.renders += 1;
  document.body.dataset.renders = String(state.renders);
}

async function selectCase(i) {
  state.caseIndex = i;
  buildCaseList();
  state.data = null;
  resetSlices();
  buildPanels();
  await update();
  document.body.dataset.ready = "1";
}

function fail(err) { document.getElementById("status").textContent = String(err); throw err; }

function setup() {
  const kind = M.phantom ? "These are phantom (simulated) data, not patient scans. " : "";
  document.getElementById("banner").innerHTML = `<b>Research use only — not for diagnosis.</b> ${kind}` +
    "Heatmaps show what an explanation method estimates the model relied on; they can be wrong.";
  document.getElementById("title").textContent = `${M.title}: heatmaps over the MRI (${M.task})`;
  const seed = document.getElementById("seed");
  M.seeds.forEach((s) => seed.add(new Option(`seed ${s}`, s)));
  seed.onchange = () => { state.seed = seed.value; buildCaseList(); update().catch(fail); };
  const method = document.getElementById("method");
  M.methods.forEach((m) => method.add(new Option(m, m)));
  method.onchange = () => { state.method = method.value; update().catch(fail); };
  const plane = document.getElementById("plane");
  if (M.layout === "volume") {
    ["axial", "coronal", "sagittal"].forEach((p) => plane.add(new Option(p, p)));
    plane.onchange = () => { state.plane = plane.value; resetSlices(); buildPanels(); render(); };
  } else {
    document.getElementById("plane-box").style.display = "none";
  }
  const opacity = document.getElementById("opacity");
  opacity.oninput = () => { state.opacity = opacity.value / 100; render(); };
  const mask = document.getElementById("mask");
  mask.disabled = !M.has_mask;
  mask.checked = M.has_mask;
  state.mask = M.has_mask;
  mask.onchange = () => { state.mask = mask.checked; render(); };
  const bar = document.getElementById("colourbar").getContext("2d");
  const grad = bar.createImageData(256, 1);
  LUT.forEach((c, i) => { grad.data.set([c[0], c[1], c[2], 255], 4 * i); });
  bar.putImageData(grad, 0, 0);
  document.addEventListener("keydown", (e) => {
    const step = { ArrowUp: 1, ArrowRight: 1, ArrowDown: -1, ArrowLeft: -1 }[e.key];
    if (!step || !sliders() || !state.data || e.target.tagName === "SELECT") return;
    e.preventDefault();
    const c = M.cases[state.caseIndex];
    const p = planeOf();
    const move = (k) => {
      const n = dims(c.shapes[k])[p.fixed];
      state.slices[k] = Math.min(n - 1, Math.max(0, state.slices[k] + step));
    };
    if (M.layout === "views") move(state.active); else M.modalities.forEach((_, k) => move(k));
    render();
  });
  if (!M.cases.length) {
    document.getElementById("status").textContent = "No cases were chosen (config heatmaps.export.cases).";
    document.body.dataset.ready = "1";
    return;
  }
  selectCase(0).catch(fail);
}

setup();
