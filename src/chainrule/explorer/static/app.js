// The explorer page. All the computing is chainrule's own Python, in worker.js; this
// file draws what it answers: graphs (DOT from chainrule's draw_dot, laid out by
// Graphviz in WebAssembly), decision regions, curves and the network.
import { instance as loadViz } from "./vendor/viz/viz.js";

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const PRECISION = 4; // digits after the point, as in the drawings
const fmt = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(PRECISION));

// -- the engine, in a Web Worker ---------------------------------------------------------

const worker = new Worker(new URL("worker.js", import.meta.url), { type: "module" });
const pending = new Map();
let nextId = 1;
let markReady;
const ready = new Promise((resolve) => (markReady = resolve));

worker.onmessage = (event) => {
  const m = event.data;
  if (m.type === "ready") {
    $("status").textContent = "ready";
    $("status-detail").textContent = `${m.version} · engine loaded in ${m.seconds.toFixed(1)} s`;
    markReady();
    return;
  }
  if (m.type === "failed") {
    $("status").textContent = "failed";
    $("status-detail").textContent = m.error;
    return;
  }
  const call = pending.get(m.id);
  pending.delete(m.id);
  if (m.ok) call.resolve(m.result);
  else call.reject(new Error(m.error));
};

function engine(cmd, args = {}) {
  return new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, cmd, args });
  });
}

// -- the URL hash: #expr=...&at=... or #view=train&dataset=...&layers=...&lr=... -----------

function readHash() {
  const out = {};
  for (const part of location.hash.replace(/^#/, "").split("&")) {
    if (!part) continue;
    const i = part.indexOf("=");
    const key = i < 0 ? part : part.slice(0, i);
    const value = i < 0 ? "" : part.slice(i + 1);
    try {
      out[decodeURIComponent(key)] = decodeURIComponent(value);
    } catch {
      // a malformed escape: ignore that part
    }
  }
  return out;
}

function writeHash(state) {
  const enc = (v) => encodeURIComponent(v).replace(/%2C/gi, ",").replace(/%3D/gi, "=");
  const text = Object.entries(state)
    .filter(([, v]) => v !== "" && v !== undefined && v !== null)
    .map(([k, v]) => `${k}=${enc(String(v))}`)
    .join("&");
  history.replaceState(null, "", `#${text}`);
}

// -- tabs --------------------------------------------------------------------------------

const tabs = { expr: $("tab-expr"), train: $("tab-train") };
let view = "expr";

function showView(name, { focus = false } = {}) {
  view = name;
  for (const [key, tab] of Object.entries(tabs)) {
    const on = key === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    document.getElementById(tab.getAttribute("aria-controls")).hidden = !on;
    if (on && focus) tab.focus();
  }
}

for (const [key, tab] of Object.entries(tabs)) {
  tab.addEventListener("click", () => {
    showView(key);
    if (key === "train") startTraining();
    else saveExprHash();
  });
  tab.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    const other = key === "expr" ? "train" : "expr";
    tabs[other].click();
    tabs[other].focus();
  });
}

// -- expression view -----------------------------------------------------------------------

const DEFAULT_EXPR = "tanh(x1*w1 + x2*w2 + b)";
const DEFAULT_AT = "x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432";
const exprInput = $("expr-input");
const atInput = $("at-input");
let vizPromise = null;
let stepping = null; // {total, taken, visited: Set}

function viz() {
  vizPromise ??= loadViz();
  return vizPromise;
}

async function drawGraph(dot, current = null, visited = new Set()) {
  const svg = (await viz()).renderSVGElement(dot);
  for (const g of svg.querySelectorAll("g.node")) {
    const id = g.querySelector("title")?.textContent ?? "";
    if (id.endsWith("_op")) {
      g.setAttribute("class", "op"); // an operation's oval: not a Value
      g.dataset.id = id.slice(0, -3);
    } else {
      g.dataset.id = id;
    }
    if (id === current) g.classList.add("current");
    else if (visited.has(g.dataset.id)) g.classList.add("visited");
  }
  $("graph").replaceChildren(svg);
}

function saveExprHash() {
  writeHash({ expr: exprInput.value, at: atInput.value });
}

function showExprError(error) {
  $("expr-error").textContent = error ? String(error.message ?? error) : "";
}

async function evaluateExpression() {
  showExprError(null);
  let state;
  try {
    // a narrow screen gets the graph top to bottom, a wide one left to right (the lecture's)
    const rankdir = matchMedia("(max-width: 700px)").matches ? "TB" : "LR";
    state = await engine("expr_set", { text: exprInput.value, at: atInput.value, rankdir });
  } catch (error) {
    showExprError(error);
    return;
  }
  atInput.value = state.at;
  if (view === "expr") saveExprHash();
  $("value").textContent = fmt(state.value);
  const rows = state.names.map((name) => {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = name;
    const value = document.createElement("td");
    value.textContent = fmt(state.values[name]);
    const grad = document.createElement("td");
    grad.dataset.testid = `grad-${name}`;
    grad.textContent = fmt(state.grads[name]);
    tr.append(th, value, grad);
    return tr;
  });
  $("variables").replaceChildren(...rows);
  const select = $("nudge-variable");
  select.replaceChildren(...state.names.map((n) => new Option(n, n)));
  $("nudge").disabled = state.names.length === 0;
  $("nudge-result").textContent = "";
  stepping = null;
  $("step-explain").replaceChildren();
  $("step-progress").textContent = `${state.nodes} Values`;
  $("step-backward").textContent = "Step backward";
  await drawGraph(state.dot);
}

async function stepBackward() {
  try {
    if (stepping === null || stepping.done) {
      const begun = await engine("expr_begin");
      stepping = { total: begun.total, taken: 0, visited: new Set(), done: false };
      $("step-explain").replaceChildren();
    }
    const step = await engine("expr_step");
    if (step.done) {
      stepping.done = true;
      return;
    }
    stepping.taken += 1;
    const explain = $("step-explain");
    const block = document.createElement("div");
    block.className = "step";
    block.dataset.node = step.id;
    const head = document.createElement("strong");
    head.textContent = `${stepping.taken}. ${step.name}: grad ${fmt(step.grad)}`;
    block.append(head);
    for (const line of step.lines) {
      const p = document.createElement("div");
      p.textContent = line;
      block.append(p);
    }
    explain.replaceChildren(block);
    await drawGraph(step.dot, step.id, stepping.visited);
    stepping.visited.add(step.id);
    const finished = stepping.taken === stepping.total;
    $("step-progress").textContent = `node ${stepping.taken} of ${stepping.total}`;
    if (finished) {
      stepping.done = true;
      const end = document.createElement("div");
      end.className = "done";
      end.textContent = "Every node visited: each gradient is now final, as backward() leaves it.";
      block.append(end);
      $("step-backward").textContent = "Start again";
    } else {
      $("step-backward").textContent = "Step backward";
    }
  } catch (error) {
    showExprError(error);
  }
}

async function restartSteps() {
  stepping = null;
  $("step-explain").replaceChildren();
  $("step-backward").textContent = "Step backward";
  try {
    const begun = await engine("expr_begin");
    stepping = { total: begun.total, taken: 0, visited: new Set(), done: false };
    $("step-progress").textContent = `node 0 of ${begun.total}`;
    await drawGraph(begun.dot);
  } catch (error) {
    showExprError(error);
  }
}

async function nudge() {
  const name = $("nudge-variable").value;
  const h = Number($("nudge-h").value);
  try {
    const r = await engine("expr_nudge", { name, h });
    $("nudge-result").textContent =
      `(f(${name}+h) − f(${name}−h)) / 2h = ${r.numeric.toPrecision(10)}; ` +
      `backward() gives ${r.analytic.toPrecision(10)}; they differ by ${r.difference.toExponential(2)}`;
  } catch (error) {
    showExprError(error);
  }
}

document.getElementById("expr-form").addEventListener("submit", (event) => {
  event.preventDefault();
  evaluateExpression();
});
$("step-backward").addEventListener("click", stepBackward);
$("step-restart").addEventListener("click", restartSteps);
$("nudge").addEventListener("click", nudge);

// -- training view -------------------------------------------------------------------------

const trainForm = $("train-reset").form;
const canvas = $("train-canvas");
const chart = $("train-chart");
let training = null; // the last answer of the engine: points, grid, weights, history
let network = Promise.resolve(); // settles once the network asked for last exists (or failed)
let playing = false;
let run = 0; // which play loop may go on: each Play and each pause starts a new one
let chunk = 1; // steps per request while playing, tuned to keep the page lively
let addClass = 0;
let cursor = null; // keyboard cursor on the canvas, in data coordinates

function trainOptions() {
  const f = trainForm.elements;
  const layers = f.layers.value.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  const batch = f.batch.value.trim();
  return {
    dataset: f.dataset.value,
    layers,
    activation: f.activation.value,
    optimizer: f.optimizer.value,
    lr: Number(f.lr.value),
    batch_size: batch ? Number(batch) : null,
  };
}

function saveTrainHash() {
  const f = trainForm.elements;
  writeHash({
    view: "train",
    dataset: f.dataset.value,
    layers: f.layers.value.replace(/\s+/g, ""),
    activation: f.activation.value,
    optimizer: f.optimizer.value,
    lr: f.lr.value,
    batch: f.batch.value.trim(),
  });
}

function showTrainError(error) {
  $("train-error").textContent = error ? String(error.message ?? error) : "";
}

// A new network: Play and Step wait for it (a click as the page opens is not lost).
function startTraining() {
  pause();
  saveTrainHash();
  showTrainError(null);
  network = buildNetwork(trainOptions());
  return network;
}

async function buildNetwork(options) {
  if (options.layers.some((n) => !Number.isInteger(n) || n < 1)) {
    showTrainError("hidden layers: whole numbers above 0, separated by commas, like 16,16");
    return;
  }
  await ready;
  try {
    training = await engine("train_new", options);
  } catch (error) {
    showTrainError(error);
    return;
  }
  renderClasses(training.colors);
  showTraining(training);
}

function showTraining(state) {
  $("train-step-count").textContent = String(state.step);
  $("train-loss").textContent = fmt(state.loss);
  $("train-accuracy").textContent = (100 * state.accuracy).toFixed(1);
  if (state.X) $("train-points").textContent = String(state.X.length);
  if (state.grid) {
    training = state;
    drawRegions();
    drawNetwork(state.weights);
  }
  if (state.history) drawChart(state.history);
}

async function trainSteps(n, withView) {
  const answer = await engine("train_step", { n, view: withView, lr: trainOptions().lr });
  if (!withView) {
    training.history.loss.push(...answer.losses);
    training.history.accuracy.push(...answer.accuracies);
    answer.history = training.history;
  }
  showTraining(answer);
  return answer;
}

function pause() {
  playing = false;
  run += 1;
  $("train-play").textContent = "Play";
  $("train-play").setAttribute("aria-pressed", "false");
}

async function play() {
  if (playing) {
    pause();
    return;
  }
  playing = true;
  const me = ++run;
  $("train-play").textContent = "Pause";
  $("train-play").setAttribute("aria-pressed", "true");
  await network; // a network still being built: play as soon as it exists
  if (me !== run) return; // paused, or a new network asked for, meanwhile
  if (training === null) {
    pause(); // no network: the reason is on the page already
    return;
  }
  let lastView = 0;
  while (me === run) {
    const t0 = performance.now();
    const withView = t0 - lastView > 500;
    try {
      await trainSteps(chunk, withView);
    } catch (error) {
      if (me === run) {
        showTrainError(error);
        pause();
      }
      break;
    }
    const ms = performance.now() - t0;
    if (withView) lastView = performance.now();
    else chunk = Math.max(1, Math.min(50, Math.round((chunk * 150) / Math.max(ms, 1))));
  }
}

async function stepOnce() {
  pause();
  await network;
  if (training === null) return;
  try {
    await trainSteps(1, true);
  } catch (error) {
    showTrainError(error);
  }
}

trainForm.addEventListener("submit", (event) => {
  event.preventDefault();
  startTraining();
});
for (const name of ["dataset", "activation", "optimizer"]) {
  trainForm.elements[name].addEventListener("change", startTraining);
}
trainForm.elements.lr.addEventListener("change", saveTrainHash);
$("train-play").addEventListener("click", play);
$("train-step").addEventListener("click", stepOnce);

function renderClasses(colors) {
  // the class colours come from chainrule (chainrule.colors), as in every plot
  const k = colors.length;
  const group = $("train-classes");
  addClass = Math.min(addClass, k - 1);
  group.replaceChildren(
    ...Array.from({ length: k }, (_, c) => {
      const label = document.createElement("label");
      const radio = document.createElement("input");
      radio.type = "radio";
      radio.name = "add-class";
      radio.value = String(c);
      radio.checked = c === addClass;
      radio.addEventListener("change", () => (addClass = c));
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colors[c];
      label.append(radio, swatch, ` class ${c}`);
      return label;
    }),
  );
}

function toData(px, py) {
  const [x0, x1, y0, y1] = training.grid.extent;
  return [x0 + (px / canvas.width) * (x1 - x0), y1 - (py / canvas.height) * (y1 - y0)];
}

function toPixels(x, y) {
  const [x0, x1, y0, y1] = training.grid.extent;
  return [((x - x0) / (x1 - x0)) * canvas.width, ((y1 - y) / (y1 - y0)) * canvas.height];
}

function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function drawRegions() {
  const ctx = canvas.getContext("2d");
  const { size, classes, scores } = training.grid;
  const k = training.classes;
  const image = new ImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    const [r, g, b] = hexToRgb(training.colors[classes[i]]);
    // how sure the model is: the margin's tanh for two classes (hinge loss), the softmax
    // share above chance for more
    const s = scores[i];
    const sure = k > 2 ? (s - 1 / k) / (1 - 1 / k) : Math.tanh(Math.abs(s));
    const a = 0.15 + 0.33 * Math.max(0, Math.min(1, sure));
    image.data.set([r * a + 255 * (1 - a), g * a + 255 * (1 - a), b * a + 255 * (1 - a), 255], 4 * i);
  }
  const small = new OffscreenCanvas(size, size);
  small.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
  training.X.forEach(([x, y], i) => {
    const [px, py] = toPixels(x, y);
    ctx.beginPath();
    ctx.arc(px, py, 5, 0, 2 * Math.PI);
    ctx.fillStyle = training.colors[training.y[i]];
    ctx.fill();
    ctx.lineWidth = 1;
    ctx.strokeStyle = "rgba(0, 0, 0, 0.65)";
    ctx.stroke();
  });
  if (cursor !== null) {
    const [px, py] = toPixels(...cursor);
    ctx.strokeStyle = "#111";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.moveTo(px - 9, py);
    ctx.lineTo(px + 9, py);
    ctx.moveTo(px, py - 9);
    ctx.lineTo(px, py + 9);
    ctx.stroke();
  }
}

async function editPoints(cmd, args) {
  try {
    await engine(cmd, args);
    const state = await engine("train_view");
    training = state;
    showTraining(state);
  } catch (error) {
    showTrainError(error);
  }
}

function radius() {
  const [x0, x1] = training.grid.extent;
  return (12 / canvas.width) * (x1 - x0);
}

canvas.addEventListener("click", (event) => {
  if (training === null) return;
  const box = canvas.getBoundingClientRect();
  const px = ((event.clientX - box.left) / box.width) * canvas.width;
  const py = ((event.clientY - box.top) / box.height) * canvas.height;
  const [x, y] = toData(px, py);
  if (event.shiftKey) editPoints("train_remove", { x, y, radius: radius() });
  else editPoints("train_add", { x, y, label: addClass });
});

canvas.addEventListener("keydown", (event) => {
  if (training === null) return;
  const [x0, x1, y0, y1] = training.grid.extent;
  cursor ??= [(x0 + x1) / 2, (y0 + y1) / 2];
  const dx = (x1 - x0) / 40;
  const dy = (y1 - y0) / 40;
  const moves = { ArrowLeft: [-dx, 0], ArrowRight: [dx, 0], ArrowUp: [0, dy], ArrowDown: [0, -dy] };
  if (event.key in moves) {
    cursor = [cursor[0] + moves[event.key][0], cursor[1] + moves[event.key][1]];
    drawRegions();
  } else if (event.key === "Enter" || event.key === " ") {
    editPoints("train_add", { x: cursor[0], y: cursor[1], label: addClass });
  } else if (event.key === "Delete" || event.key === "Backspace") {
    editPoints("train_remove", { x: cursor[0], y: cursor[1], radius: radius() });
  } else {
    return;
  }
  event.preventDefault();
});

function drawChart({ loss, accuracy }) {
  const ctx = chart.getContext("2d");
  const w = chart.width;
  const h = chart.height;
  const pad = { left: 46, right: 40, top: 10, bottom: 22 };
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#555";
  ctx.strokeStyle = "#ccc";
  ctx.lineWidth = 1;
  ctx.strokeRect(pad.left, pad.top, w - pad.left - pad.right, h - pad.top - pad.bottom);
  const n = loss.length;
  if (n === 0) return;
  const maxLoss = Math.max(...loss, 1e-12);
  const xs = (i) => pad.left + (n === 1 ? 0 : (i / (n - 1)) * (w - pad.left - pad.right));
  const line = (values, top, color) => {
    ctx.beginPath();
    values.forEach((v, i) => {
      const y = pad.top + (1 - v / top) * (h - pad.top - pad.bottom);
      if (i === 0) ctx.moveTo(xs(i), y);
      else ctx.lineTo(xs(i), y);
    });
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.6;
    ctx.stroke();
  };
  line(loss, maxLoss, "#0072B2");
  line(accuracy, 1, "#009E73");
  ctx.fillStyle = "#0072B2";
  ctx.fillText(`loss ${maxLoss.toPrecision(3)}`, 2, pad.top + 9);
  ctx.fillText("0", pad.left - 10, h - pad.bottom);
  ctx.fillStyle = "#009E73";
  ctx.fillText("100%", w - pad.right + 4, pad.top + 9);
  ctx.fillText("acc", w - pad.right + 4, pad.top + 22);
  ctx.fillStyle = "#555";
  ctx.fillText(`step ${n}`, w - pad.right - 44, h - 6);
}

const SVG = "http://www.w3.org/2000/svg";

function drawNetwork(weights) {
  const sizes = [weights[0][0].length - 1, ...weights.map((layer) => layer.length)];
  const width = 640;
  const gap = Math.min(16, 260 / Math.max(...sizes));
  const height = Math.max(120, gap * Math.max(...sizes) + 24);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `The network: layer sizes ${sizes.join(", ")}`);
  const x = (l) => 30 + (l * (width - 60)) / (sizes.length - 1);
  const y = (l, i) => height / 2 + (i - (sizes[l] - 1) / 2) * gap;
  let biggest = 1e-12;
  for (const layer of weights) for (const row of layer) for (const w of row.slice(0, -1)) biggest = Math.max(biggest, Math.abs(w));
  weights.forEach((layer, l) => {
    layer.forEach((row, j) => {
      row.slice(0, -1).forEach((w, i) => {
        const edge = document.createElementNS(SVG, "line");
        edge.setAttribute("x1", x(l));
        edge.setAttribute("y1", y(l, i));
        edge.setAttribute("x2", x(l + 1));
        edge.setAttribute("y2", y(l + 1, j));
        edge.setAttribute("stroke", w >= 0 ? "#0072B2" : "#D55E00");
        edge.setAttribute("stroke-width", (0.3 + 3.2 * Math.abs(w) / biggest).toFixed(2));
        edge.setAttribute("stroke-opacity", (0.25 + 0.6 * Math.abs(w) / biggest).toFixed(2));
        svg.append(edge);
      });
    });
  });
  sizes.forEach((count, l) => {
    for (let i = 0; i < count; i++) {
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", x(l));
      dot.setAttribute("cy", y(l, i));
      dot.setAttribute("r", Math.max(2.5, Math.min(5, gap / 3)));
      dot.setAttribute("class", l === 0 ? "input" : l === sizes.length - 1 ? "output" : "hidden");
      svg.append(dot);
    }
  });
  $("train-network").replaceChildren(svg);
}

// -- start -----------------------------------------------------------------------------

function applyHash() {
  const h = readHash();
  if (h.view === "train") {
    const f = trainForm.elements;
    for (const [key, name] of [["dataset", "dataset"], ["layers", "layers"], ["activation", "activation"], ["optimizer", "optimizer"], ["lr", "lr"], ["batch", "batch"]]) {
      if (h[key] !== undefined) f[name].value = h[key];
    }
    showView("train");
    startTraining();
  } else {
    exprInput.value = h.expr ?? DEFAULT_EXPR;
    atInput.value = h.at ?? (h.expr === undefined ? DEFAULT_AT : "");
    showView("expr");
    ready.then(evaluateExpression);
  }
}

window.addEventListener("hashchange", applyHash);
ready.then(() => {
  for (const id of ["expr-go", "step-backward", "step-restart", "train-reset", "train-play", "train-step"]) {
    $(id).disabled = false;
  }
});
applyHash();
