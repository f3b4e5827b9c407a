// Times session.run on the exported U-Net (eps = unet(sample, timestep)) after two warm-up runs, with the EP
// and layout from the URL, and writes {ep, layout, batch, steps, ms_per_pass} into #result. The output is
// read back to the CPU every run, as the page reads every frame back.
import * as ort from '/ort/ort.all.min.mjs';

const q = new URLSearchParams(location.search);
const ep = q.get('ep') ?? 'webgpu';
const layout = q.get('layout') ?? 'NCHW';
const n = Number(q.get('n') ?? 4);
const steps = Number(q.get('steps') ?? 3);
const out = document.getElementById('result');
try {
  ort.env.wasm.wasmPaths = '/ort/';
  ort.env.wasm.numThreads = 1;
  const provider = ep === 'webgpu' ? { name: 'webgpu', preferredLayout: layout } : { name: 'wasm' };
  const session = await ort.InferenceSession.create('/ort-bench/unet.onnx', { executionProviders: [provider] });
  const sample = new ort.Tensor('float32', Float32Array.from({ length: n * 28 * 28 }, (_, i) => Math.sin(i)), [n, 1, 28, 28]);
  const timestep = new ort.Tensor('float32', new Float32Array(n).fill(500), [n]);
  const run = async () => {
    const r = await session.run({ sample, timestep });
    await r.eps.getData();
  };
  await run();
  await run();
  const start = performance.now();
  for (let i = 0; i < steps; i++) await run();
  const ms = (performance.now() - start) / steps;
  out.textContent = JSON.stringify({ who: `onnxruntime-web ${ort.env.versions?.web ?? ''} ${ep}${ep === 'webgpu' ? ' ' + layout : ''}`, ep, layout, batch: n, steps, ms_per_pass: ms });
} catch (e) {
  out.textContent = JSON.stringify({ ep, layout, batch: n, error: String(e) });
}
