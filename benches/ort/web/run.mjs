// In one headless Chromium on its SwiftShader WebGPU adapter: the page's ?bench and onnxruntime-web (WebGPU
// EP in both layouts, wasm EP with one thread) on the same network and batch, one after another, then the
// page's CPU path with one worker (?backend=cpu&workers=1) against the wasm EP's one thread; prints a JSON line
// per run. BASE_URL serves dist/ with the ORT harness under /ort-bench/ (scripts/bench-vs-ort.sh).
// ONLY_CPU=1 skips the WebGPU runs (minutes each on SwiftShader).
import { chromium } from 'playwright-core';

const BASE = process.env.BASE_URL;
const batches = (process.env.BATCHES ?? '4').split(' ').map(Number);
const steps = Number(process.env.STEPS ?? 3);
const ARGS = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--no-sandbox', '--disable-background-networking',
  '--disable-component-update', '--no-first-run', '--disable-sync'];
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ARGS, headless: true });

async function result(url, selector) {
  const page = await browser.newPage();
  await page.goto(url);
  const el = page.locator(selector);
  await el.waitFor({ state: 'attached', timeout: 1_800_000 });
  for (;;) {
    const text = (await el.textContent()).trim();
    if (text) { await page.close(); return JSON.parse(text); }
    await new Promise((r) => setTimeout(r, 500));
  }
}

try {
  for (const n of batches) {
    const cpu = await result(`${BASE}/?model=models/fashion-mnist/&bench&n=${n}&steps=${steps}&backend=cpu&workers=1`, '#bench-result');
    console.log(JSON.stringify({ who: 'ddpm-web ?bench&backend=cpu&workers=1', batch: n, ms_per_step: cpu.ms_per_step, gflops_per_s: cpu.gflops_per_s, gemm_peak_gflops_per_s: cpu.cpu_gemm_peak_gflops_per_s, adapter: cpu.adapter }));
    const wasm = await result(`${BASE}/ort-bench/index.html?ep=wasm&layout=NCHW&n=${n}&steps=${steps}`, '#result');
    console.log(JSON.stringify({ ...wasm, ours_cpu_over_theirs: wasm.ms_per_pass ? cpu.ms_per_step / wasm.ms_per_pass : null }));
    if (process.env.ONLY_CPU === '1') continue;
    const ours = await result(`${BASE}/?model=models/fashion-mnist/&bench&n=${n}&steps=${steps}&kernels=${process.env.KERNELS ?? 'auto'}&backend=gpu`, '#bench-result');
    console.log(JSON.stringify({ who: `ddpm-web ?bench (${ours.kernels})`, batch: n, ms_per_step: ours.ms_per_step, adapter: ours.adapter }));
    for (const [ep, layout] of [['webgpu', 'NCHW'], ['webgpu', 'NHWC'], ['wasm', 'NCHW']]) {
      const r = await result(`${BASE}/ort-bench/index.html?ep=${ep}&layout=${layout}&n=${n}&steps=${steps}`, '#result');
      console.log(JSON.stringify({ ...r, ours_over_theirs: r.ms_per_pass ? ours.ms_per_step / r.ms_per_pass : null }));
    }
  }
} finally {
  await browser.close();
}
