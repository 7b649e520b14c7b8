// The explorer's engine: chainrule itself, running on Pyodide inside this Web Worker,
// so the page stays responsive while it computes. Requests come as
// {id, cmd, args}; each is answered as {id, ok, result | error, ms} by
// chainrule.explorer.session.call, which takes and gives JSON.
import { loadPyodide } from "./vendor/pyodide/pyodide.mjs";

const here = new URL(".", import.meta.url);
let call = null;

async function start() {
  const t0 = performance.now();
  const pyodide = await loadPyodide({ indexURL: new URL("vendor/pyodide/", here).href });
  // chainrule's own source: the installed package's files, zipped by the server.
  const response = await fetch(new URL("chainrule.zip", here));
  if (!response.ok) throw new Error(`chainrule.zip: HTTP ${response.status}`);
  pyodide.unpackArchive(await response.arrayBuffer(), "zip", { extractDir: "/chainrule" });
  pyodide.runPython("import sys; sys.path.insert(0, '/chainrule')");
  call = pyodide.pyimport("chainrule.explorer.session").call;
  const version = pyodide.runPython(
    "import chainrule, sys; f'chainrule {chainrule.__version__}, Python {sys.version.split()[0]}'",
  );
  postMessage({ type: "ready", seconds: (performance.now() - t0) / 1000, version });
}

const started = start().catch((error) => {
  postMessage({ type: "failed", error: String(error) });
});

onmessage = async (event) => {
  await started;
  const { id, cmd, args } = event.data;
  if (call === null) {
    postMessage({ id, ok: false, error: "the engine did not load" });
    return;
  }
  const t0 = performance.now();
  const answer = JSON.parse(call(JSON.stringify({ cmd, args })));
  postMessage({ id, ...answer, ms: performance.now() - t0 });
};
