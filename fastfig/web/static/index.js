// The page: "/" shows every figure the server has (and follows the list as figures come
// and go); "/figure/<id>" shows one figure filling the window.

import { FigureViewer } from "./viewer.js";
import { PNG_DECODER } from "./packet.js";

const params = new URLSearchParams(location.search);
const token = params.get("token") || "";
const fit = params.get("fit") !== "0";
const single = location.pathname.match(/^\/figure\/([A-Za-z0-9_.-]{1,64})$/);
const main = document.getElementById("ff-figures");
const list = document.getElementById("ff-list");
const status = document.getElementById("ff-page-status");
const q = (path) => (token ? `${path}?token=${encodeURIComponent(token)}` : path);

// Tests and benchmarks look here.
window.fastfig = { viewers: new Map(), token, pngDecoder: PNG_DECODER };

document.getElementById("ff-home").href = q("/");

function show(id, options) {
  if (window.fastfig.viewers.has(id)) return;
  window.fastfig.viewers.set(id, new FigureViewer(main, id, token, options));
}

function renderList(figures) {
  list.textContent = "";
  for (const f of figures) {
    const a = document.createElement("a");
    a.href = q(`/figure/${encodeURIComponent(f.id)}`);
    a.textContent = f.title || `Figure ${f.id}`;
    list.appendChild(a);
  }
}

async function refresh() {
  let r;
  try {
    r = await fetch(q("/api/figures"), { cache: "no-store" });
  } catch (_) {
    status.textContent = "server unreachable — retrying…";
    return;
  }
  if (r.status === 403) {
    status.textContent = (await r.text()).trim();
    return "refused";
  }
  if (!r.ok) return;
  const data = await r.json();
  status.textContent = data.server ? "" : "waiting for the figure server…";
  renderList(data.figures);
  if (!single) {
    const ids = new Set(data.figures.map((f) => f.id));
    for (const f of data.figures) show(f.id, { fit: false });
    for (const [id, v] of window.fastfig.viewers) {
      if (!ids.has(id)) {
        v.close();
        window.fastfig.viewers.delete(id);
      }
    }
    if (!data.figures.length) status.textContent = "no figures yet";
  }
}

if (single) {
  document.body.classList.add("ff-single");
  show(single[1], { fit });
}
(async function poll() {
  const result = await refresh();
  if (result !== "refused") setTimeout(poll, 2000);
})();
