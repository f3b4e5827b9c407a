// In one headless Chromium on its SwiftShader WebGPU adapter: the page's ?bench and onnxruntime-web (WebGPU
// EP in both layouts, wasm EP with one thread) on the same network and batch, one after another; prints a
// JSON line per run. BASE_URL serves dist/ with the ORT harness under /ort-bench/ (scripts/bench-vs-ort.sh).
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
    const ours = await result(`${BASE}/?model=models/fashion-mnist/&bench&n=${n}&steps=${steps}&kernels=${process.env.KERNELS ?? 'auto'}`, '#bench-result');
    console.log(JSON.stringify({ who: `ddpm-web ?bench (${ours.kernels})`, batch: n, ms_per_step: ours.ms_per_step, adapter: ours.adapter }));
    for (const [ep, layout] of [['webgpu', 'NCHW'], ['webgpu', 'NHWC'], ['wasm', 'NCHW']]) {
      const r = await result(`${BASE}/ort-bench/index.html?ep=${ep}&layout=${layout}&n=${n}&steps=${steps}`, '#result');
      console.log(JSON.stringify({ ...r, ours_over_theirs: r.ms_per_pass ? ours.ms_per_step / r.ms_per_pass : null }));
    }
  }
} finally {
  await browser.close();
}
