// The page where WebGPU is missing, in a real browser (Debian's headless Chromium): what it adds to
// forward.test.mjs run with NO_WEBGPU=1 (every application on the CPU path) is the two ways WebGPU can be
// missing (no navigator.gpu at all; navigator.gpu without an adapter) and what the page says for each, the CPU
// defaults, the Steps field before a model loads, ?backend=gpu without an adapter (an alert), the Benchmark on
// the CPU path, a walk between two generated images, the default declining a software adapter, and
// ?backend=cpu giving the GPU path's images from the same seed. Screenshots go to tests/out/.
import { BASE, OUT, check, launch, until } from './lib.mjs';

const done = (page) => until(async () => (await page.getByTestId('progress-text').textContent()).includes('done'), 'the run to finish', 120_000);

// The grey values of every image canvas.
const images = (page) => page.evaluate(() => [...document.querySelectorAll('canvas.image')].map((c) =>
  Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data.filter((_, i) => i % 4 === 0))));

const pageErrors = [];
async function open(browser, query, init) {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().includes('404')) console.log(`  [console] ${m.text()}`); });
  if (init) await page.addInitScript(init);
  await page.goto(`${BASE}/${query}`);
  return page;
}

// 1. navigator.gpu with no adapter (Chromium without the WebGPU flags): the CPU path, said in plain words.
let browser = await launch(false);
try {
  // Before any model loads, the Steps field shows a number, not 0.
  const early = await open(browser, '?model=models/does-not-exist/');
  await until(() => early.getByRole('alert').count().then((n) => n === 1), 'the missing model\'s alert');
  check((await early.getByRole('spinbutton', { name: /^Steps/ }).inputValue()) === '1000', 'the Steps field shows its default (1000) before a model loads');

  const page = await open(browser, '?model=models/tiny/');
  const generate = page.getByRole('button', { name: 'Generate' });
  await until(() => generate.isEnabled(), 'Generate to be enabled on the CPU path');
  const why = await page.getByTestId('fallback').textContent();
  check(/no graphics adapter/.test(why) && /runs on the CPU instead/.test(why), `a status line says why the CPU runs ("${why.slice(0, 70)}…")`);
  check(!/requested|wgpu|adapter found/.test(why), 'the reason has no wgpu internals');
  check(await page.getByRole('status').filter({ hasText: 'runs on the CPU instead' }).count() === 1, 'the reason is a role=status line');
  check((await page.getByTestId('run-on').textContent()) === 'Run on: CPU', 'the indicator says Run on: CPU');
  check(await page.getByRole('alert').count() === 0, 'falling back is not an error');
  check((await page.getByRole('spinbutton', { name: 'Images' }).inputValue()) === '4' && (await page.getByRole('spinbutton', { name: /^Steps/ }).inputValue()) === '50', 'the CPU path starts with 4 images and 50 steps');
  check(/^the CPU: \d+ Web Workers? running WebAssembly$/.test(await page.getByTestId('adapter').textContent()), 'the info panel names the CPU path');
  await page.getByRole('spinbutton', { name: /^Steps/ }).fill('8');
  await page.getByRole('spinbutton', { name: /^Steps/ }).dispatchEvent('change');
  await generate.click();
  await done(page);
  check((await page.getByTestId('progress-text').textContent()).startsWith('step 8 of 8'), 'a run on the CPU path makes its 8 steps');
  const drawn = await images(page);
  check(drawn.length === 4 && drawn.every((px) => new Set(px).size > 10), 'four images are drawn, none flat');
  await page.screenshot({ path: `${OUT}/cpu-run.png`, fullPage: true });
  // The Benchmark button times CPU steps.
  await page.getByRole('button', { name: 'Benchmark' }).click();
  await until(() => page.locator('#bench-result').count().then((n) => n === 1), 'the CPU benchmark', 120_000);
  const r = JSON.parse(await page.locator('#bench-result').textContent());
  check(r.device_type === 'Cpu' && r.kernels === 'cpu' && r.batch === 4 && r.ms_per_step > 0 && r.gflops_per_s > 0 && r.cpu_gemm_peak_gflops_per_s > r.gflops_per_s / 4,
    `the Benchmark runs on the CPU path (${r.ms_per_step.toFixed(0)} ms per step at batch 4, ${r.gflops_per_s.toFixed(1)} GFLOP/s; one worker's GEMM ${r.cpu_gemm_peak_gflops_per_s.toFixed(1)} GFLOP/s)`);

  // ?backend=gpu where there is no adapter: an alert that says so and how to run anyway.
  const gpu = await open(browser, '?model=models/tiny/&backend=gpu');
  await until(() => gpu.getByRole('alert').count().then((n) => n === 1), 'the alert for ?backend=gpu');
  const alert = await gpu.getByRole('alert').textContent();
  check(/no graphics adapter/.test(alert) && /backend=gpu/.test(alert), `?backend=gpu without an adapter is an alert naming the setting ("${alert.slice(0, 60)}…")`);
  check(!(await gpu.getByRole('button', { name: 'Generate' }).isEnabled()), 'and nothing runs');
} finally {
  await browser.close();
}

// 2. No navigator.gpu at all (as in browsers without WebGPU): the message names the browsers that have it.
browser = await launch(false);
try {
  const page = await open(browser, '?model=models/tiny/&steps=4&n=2&sampler=ddim&eta=0', () => { delete Navigator.prototype.gpu; });
  const generate = page.getByRole('button', { name: 'Generate' });
  await until(() => generate.isEnabled(), 'Generate to be enabled without navigator.gpu');
  const why = await page.getByTestId('fallback').textContent();
  check(/does not offer WebGPU/.test(why) && /Chrome/.test(why) && /Safari/.test(why), `without navigator.gpu the status line names the browsers that have it ("${why.slice(0, 60)}…")`);
  check((await page.getByTestId('run-on').textContent()) === 'Run on: CPU', 'and the model runs on the CPU');
  check((await page.getByRole('spinbutton', { name: 'Images' }).inputValue()) === '2' && (await page.getByRole('spinbutton', { name: /^Steps/ }).inputValue()) === '4', 'numbers given in the address are kept');
  await generate.click();
  await done(page);
  const pair = await images(page);
  check(pair.length === 2, 'the run draws its 2 images');
  // A walk between them: 8 images whose ends are the two (DDIM with η = 0 from the same x_T).
  await page.getByRole('button', { name: 'Walk (8 images)' }).click();
  await until(async () => /^step 4 of 4 .*done/.test(await page.getByTestId('progress-text').textContent()) && (await images(page)).length === 8, 'the walk to finish');
  const walk = await images(page);
  const apart = (p, q) => Math.max(...p.map((v, j) => Math.abs(v - q[j])));
  const mean = (p, q) => p.reduce((a, v, j) => a + Math.abs(v - q[j]), 0) / p.length;
  check(apart(walk[0], pair[0]) <= 2 && apart(walk[7], pair[1]) <= 2, `the walk's ends are images 1 and 2 (max ${apart(walk[0], pair[0])} and ${apart(walk[7], pair[1])} of 255 apart)`);
  check(mean(walk[3], pair[0]) > 1 && mean(walk[3], pair[1]) > 1, `its middle is neither end (mean ${mean(walk[3], pair[0]).toFixed(1)} and ${mean(walk[3], pair[1]).toFixed(1)} from them)`);
  await page.screenshot({ path: `${OUT}/walk.png`, fullPage: true });
} finally {
  await browser.close();
}

// 3. With WebGPU on SwiftShader: the default (auto) declines a software adapter for the CPU path and says
// why; ?backend=cpu runs on the CPU, and its images are the GPU path's from the same seed (the same programs
// and Philox noise; the two differ by float rounding only).
browser = await launch();
try {
  const auto = await open(browser, '?model=models/tiny/&n=1&steps=2');
  await until(() => auto.getByRole('button', { name: 'Generate' }).isEnabled(), 'Generate with the default backend', 120_000);
  check((await auto.getByTestId('run-on').textContent()) === 'Run on: CPU', 'by default (auto) the software adapter gives way to the CPU path (Run on: CPU)');
  const why = await auto.getByTestId('fallback').textContent();
  check(/only WebGPU adapter is software/.test(why) && /backend=gpu/.test(why), `a status line says why, and how to use the adapter anyway ("${why.slice(0, 70)}…")`);
  await auto.close();

  const run = async (backend) => {
    const page = await open(browser, `?model=models/tiny/&n=2&steps=6&seed=9&sampler=ddpm&backend=${backend}`);
    const generate = page.getByRole('button', { name: 'Generate' });
    await until(() => generate.isEnabled(), `Generate on ${backend}`, 120_000);
    check((await page.getByTestId('run-on').textContent()) === `Run on: ${backend.toUpperCase()}`, `?backend=${backend} runs on the ${backend.toUpperCase()}`);
    if (backend === 'gpu') {
      const adapter = await page.getByTestId('adapter').textContent();
      check(/software adapter/.test(adapter) && /backend=cpu/.test(adapter), `on SwiftShader (WebGPU's fallback adapter) the info panel points to the CPU path ("${adapter.slice(0, 60)}…")`);
    }
    await generate.click();
    await done(page);
    const px = await images(page);
    await page.close();
    return px;
  };
  const [gpu, cpu] = [await run('gpu'), await run('cpu')];
  let worst = 0;
  gpu.forEach((img, i) => img.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - cpu[i][j])); }));
  check(gpu.length === 2 && worst <= 2, `?backend=cpu draws the GPU path's images from the same seed (max ${worst} of 255 apart)`);
  check(pageErrors.length === 0, `no uncaught errors in the pages (${pageErrors.join('; ')})`);
} finally {
  await browser.close();
}
console.log('CPU path test passed');
