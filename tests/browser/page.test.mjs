// The page in a real browser: Debian's headless Chromium with WebGPU on its SwiftShader adapter (a CPU
// rasteriser, so a tiny untrained model from tests/models/tiny and 10 steps). Uses roles and labels.
// Exits non-zero on the first failed check; screenshots go to tests/out/.
import { BASE, OUT, check, launch, until as untilWithin } from './lib.mjs';
// A page test's waits are longer: SwiftShader runs its seven samplers.
const until = (fn, what, ms = 120_000) => untilWithin(fn, what, ms);

// Pixels of every image canvas (x_t; `canvas.prediction` for x̂₀), and how noisy each is (mean |difference| of
// horizontal neighbours).
const pixels = (page, selector = 'canvas.image') => page.evaluate((selector) => [...document.querySelectorAll(selector)].map((c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let rough = 0;
  for (let y = 0; y < c.height; y++) for (let x = 1; x < c.width; x++) rough += Math.abs(d[4 * (y * c.width + x)] - d[4 * (y * c.width + x - 1)]);
  return { key: Array.from(d.filter((_, i) => i % 4 === 0)).join(','), rough: rough / (c.height * (c.width - 1)) };
}), selector);

const browser = await launch();
const pageErrors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') console.log(`  [console] ${m.text()}`); });

  await page.goto(`${BASE}/?model=models/tiny/&n=4&steps=10&seed=3&backend=gpu`);
  const generate = page.getByRole('button', { name: 'Generate' });
  await until(() => generate.isEnabled(), 'the Generate button to be enabled after loading');
  check(await page.getByTestId('adapter').textContent().then((t) => t.length > 0), 'the adapter name is shown');
  check(await page.getByTestId('parameters').textContent().then((t) => t.includes('M')), 'the parameter count is shown');
  check(await page.getByRole('alert').count() === 0, 'no alert after a good load');
  const kernels = await page.getByTestId('kernels').textContent();
  // All four families timed (the windowed kernels in f32, which SwiftShader runs), or (when this machine is
  // slow enough that one blocked pass takes over 2 s) blocked kept with the reason.
  check(/^(blocked|tiled|fused|windowed), the faster here at 4 images \(blocked \d+ ms, tiled \d+ ms, fused \d+ ms, windowed \d+ ms per pass\)$/.test(kernels)
    || /^(blocked|windowed) \(about [\d.]+ s per pass at 4 images here: too slow to also time the GPU kernels\)$/.test(kernels), `the info panel says which kernels were measured faster (${kernels})`);
  // ?precision defaults to auto: f16 only where the adapter has shader-f16 (SwiftShader has not).
  const precision = await page.getByTestId('precision').textContent();
  check(/^(f32 \(this GPU has no shader-f16\)|f16 weights and activations, sums in f32 \(this GPU has shader-f16\))$/.test(precision), `the info panel says which precision auto chose and why (${precision})`);

  await generate.click();
  await until(async () => (await page.getByTestId('progress-text').textContent()).includes('done'), 'the run to finish', 180_000);
  const progress = await page.getByTestId('progress-text').textContent();
  check(progress.startsWith('step 10 of 10'), `the progress says all steps ran (${progress})`);
  check(await page.getByRole('img', { name: /^image \d+$/ }).count() === 4, 'four images are drawn');
  await page.screenshot({ path: `${OUT}/run-finished.png`, fullPage: true });

  const slider = page.getByRole('slider', { name: 'Timestep' });
  await slider.focus();
  await page.keyboard.press('Home');
  check((await page.getByTestId('timestep-value').textContent()) === 't = 1000', 'Home on the slider shows t = T');
  const atT = await pixels(page);
  check(atT.every((p) => p.rough > 40), `x_T looks like noise (neighbour difference ${atT[0].rough.toFixed(0)} of 255)`);
  await page.keyboard.press('End');
  check((await page.getByTestId('timestep-value').textContent()) === 't = 0', 'End on the slider shows t = 0');
  const at0 = await pixels(page);
  check(at0.every((p, i) => p.key !== atT[i].key), 'every image differs between t = T and t = 0');
  await page.screenshot({ path: `${OUT}/slider-t0.png`, fullPage: true });

  await page.keyboard.press('Home');
  for (let i = 0; i < 5; i++) await page.keyboard.press('ArrowRight');
  const tMid = await page.getByTestId('timestep-value').textContent();
  check(tMid === 't = 401', `the arrow keys step through the run (${tMid})`);
  const xMid = await pixels(page);
  const x0Mid = await pixels(page, 'canvas.prediction');
  check(x0Mid.length === 4 && x0Mid.every((p, i) => p.key !== xMid[i].key), 'x̂₀ is drawn beside x_t, and is another image');
  check((await page.getByTestId('formula').textContent()).includes('x̂₀ = clip('), 'the update formula is shown with its coefficients');
  await page.screenshot({ path: `${OUT}/x0-mid.png`, fullPage: true });

  // Cancel: a 1000-step run stops when asked, keeps its frames, and Generate is usable again.
  const steps = page.getByRole('spinbutton', { name: /^Steps/ });
  await steps.fill('1000');
  await steps.press('Tab');
  await generate.click();
  await until(async () => /^step [1-9]\d* of 1000/.test(await page.getByTestId('progress-text').textContent()), 'a 1000-step run to start');
  await page.getByRole('button', { name: 'Cancel', exact: true }).click();
  await until(() => generate.isEnabled(), 'Generate after Cancel', 60_000);
  const stopped = await page.getByTestId('progress-text').textContent();
  check(/of 1000/.test(stopped) && !/^step 1000 /.test(stopped) && /cancelled/.test(stopped), `Cancel stops a run part-way (${stopped})`);
  check(await page.getByRole('status').filter({ hasText: 'Cancelled' }).count() === 1, 'the page says the run was cancelled');
  await steps.fill('10');
  await steps.press('Tab');

  // A corrupt model: a clear alert, and the loaded model stays usable.
  const modelUrl = page.getByLabel('Model URL');
  await modelUrl.fill('models/corrupt/');
  await page.getByRole('button', { name: 'Load' }).click();
  await until(() => page.getByRole('alert').count().then((n) => n > 0), 'an alert for the corrupt model');
  const alert = await page.getByRole('alert').textContent();
  check(/safetensors/i.test(alert), `the alert names the problem: "${alert.slice(0, 120)}"`);
  await page.screenshot({ path: `${OUT}/corrupt-alert.png`, fullPage: true });
  await until(() => generate.isEnabled(), 'Generate to stay usable after a failed load', 10_000);

  // A missing model folder.
  await modelUrl.fill('models/does-not-exist/');
  await page.getByRole('button', { name: 'Load' }).click();
  await until(async () => /404/.test(await page.getByRole('alert').textContent()), 'an alert for a missing model (404)');
  const missing = await page.getByRole('alert').textContent();
  check(/does-not-exist/.test(missing) && /404/.test(missing), `a missing model folder is reported with its address and the server's answer ("${missing.slice(0, 100)}")`);

  // The good model again, and a second run.
  await modelUrl.fill('models/tiny/');
  await page.getByRole('button', { name: 'Load' }).click();
  await until(async () => (await page.getByRole('alert').count()) === 0 && (await generate.isEnabled()), 'the tiny model to load again');
  await generate.click();
  await until(async () => (await page.getByTestId('progress-text').textContent()).includes('done'), 'a second run after the errors', 180_000);
  check((await page.getByTestId('progress-text').textContent()).startsWith('step 10 of 10'), 'a good model loads and runs all its steps after the failures');
  check(page.url().includes('n=4') && page.url().includes('steps=10'), `the URL holds the run's settings (${page.url()})`);

  // Every sampler from the Sampler select, 3 noise levels each: the run makes the passes its program says
  // (Heun 2K−1, pc K + (K−1)·corrector steps), ends away from x_T, and the formula names its update.
  const sampler = page.getByLabel('Sampler');
  await steps.fill('3');
  await steps.press('Tab');
  for (const [name, passes, formula] of [['ddim', 3, 'x̂₀'], ['euler', 3, 'ε_θ'], ['heun', 5, 'Heun'], ['sde', 3, 'z'], ['langevin', 3, 'Langevin'], ['pc', 5, 'Langevin']]) {
    await sampler.selectOption(name);
    if (name === 'ddim') {
      await page.getByRole('spinbutton', { name: /^η/ }).fill('0.5');
      await page.getByRole('spinbutton', { name: /^η/ }).press('Tab');
    }
    await generate.click();
    await until(async () => (await page.getByTestId('progress-text').textContent()).includes('done'), `the ${name} run to finish`, 180_000);
    const done = await page.getByTestId('progress-text').textContent();
    check(done.startsWith(`step ${passes} of ${passes}`), `the ${name} sampler runs its ${passes} passes (${done})`);
    check(page.url().includes(`sampler=${name}`) && (name !== 'ddim' || page.url().includes('eta=0.5')), `the URL holds the sampler (${page.url()})`);
    await slider.focus();
    await page.keyboard.press('End');
    const last = await pixels(page);
    // The pass before the last: Heun's second stage, pc's corrector, a noise-adding SDE step.
    await page.keyboard.press('ArrowLeft');
    const shownFormula = await page.getByTestId('formula').textContent();
    check(shownFormula.includes(formula), `the ${name} update is written out ("${shownFormula.slice(0, 110)}")`);
    await page.keyboard.press('Home');
    const first = await pixels(page);
    check(last.every((p, i) => p.key !== first[i].key), `${name}: the images at t = 0 differ from x_T`);
    if (name === 'heun') await page.screenshot({ path: `${OUT}/sampler-heun.png`, fullPage: true });
  }
  check(await page.getByRole('alert').count() === 0, 'no alert after running every sampler');
  // A sampler chosen in the URL is selected when the page opens.
  const linked = await browser.newPage();
  linked.on('pageerror', (e) => pageErrors.push(String(e)));
  await linked.goto(`${BASE}/?model=models/tiny/&sampler=ddim&eta=0.25&steps=2&n=1&backend=gpu`);
  await until(() => linked.getByRole('button', { name: 'Generate' }).isEnabled(), 'the linked page to load');
  check(await linked.getByLabel('Sampler').inputValue() === 'ddim' && await linked.getByRole('spinbutton', { name: /^η/ }).inputValue() === '0.25', '?sampler=ddim&eta=0.25 selects DDIM with η = 0.25');
  await linked.close();
  await sampler.selectOption('ddpm');
  await steps.fill('10');
  await steps.press('Tab');

  // ?bench: after loading, the page times sampler steps and writes JSON into #bench-result; the Benchmark
  // button does the same again.
  const bench = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  bench.on('pageerror', (e) => pageErrors.push(String(e)));
  await bench.goto(`${BASE}/?model=models/tiny/&bench&n=2&steps=3&kernels=fused&precision=f32&backend=gpu`);
  const result = bench.locator('#bench-result');
  await until(() => result.count().then((n) => n === 1), 'the ?bench result', 120_000);
  const r = JSON.parse(await result.textContent());
  check(r.batch === 2 && r.steps === 3 && r.ms_per_step > 0 && typeof r.adapter === 'string', `?bench writes its figures (${r.ms_per_step.toFixed(0)} ms per step at batch 2)`);
  check(r.kernels === 'fused' && (await bench.getByTestId('kernels').textContent()).startsWith('fused'), '?kernels=fused runs the tiled convolutions and fused attention, and the info panel says so');
  check(r.precision === 'f32' && (await bench.getByTestId('precision').textContent()) === 'f32 (chosen in the address)', '?precision=f32 runs in f32, and the benchmark and the info panel say so');
  check(Math.abs(r.images_per_s - 2000 / r.ms_per_step) < 1e-6 * r.images_per_s && r.gflop_per_pass > 0, 'the figures agree with each other');
  check(r.first_frame_ms > 0 && r.gpu_bytes > 0, `the first frame came ${r.first_frame_ms.toFixed(0)} ms after the run began; the run holds ${r.gpu_bytes} bytes of GPU memory`);
  const families = r.gpu_ms_per_family;
  check(families === null || (families.ConvTiled > 0 && families.Attention > 0), `GPU time per kernel family where the adapter has timestamps (${JSON.stringify(families)})`);
  const perKernel = r.gpu_ms_per_kernel;
  check((families === null) === (perKernel === null) && (perKernel === null || perKernel.AttnFused > 0), `and per kernel (${JSON.stringify(perKernel)})`);
  await bench.screenshot({ path: `${OUT}/bench.png`, fullPage: true });
  const benchButton = bench.getByRole('button', { name: 'Benchmark' });
  await benchButton.click();
  await until(() => result.count().then((n) => n === 0), 'the Benchmark button to start a new benchmark', 10_000);
  await until(() => result.count().then((n) => n === 1), 'the Benchmark button\'s result', 120_000);
  check(JSON.parse(await result.textContent()).batch === 2, 'the Benchmark button times the chosen number of images');

  // ?kernels=windowed: the convolutions read their weights through uniform-buffer windows (the plan's copies,
  // bound at 256-byte offsets on this adapter), and run.
  const windowed = await browser.newPage();
  windowed.on('pageerror', (e) => pageErrors.push(String(e)));
  await windowed.goto(`${BASE}/?model=models/tiny/&bench&n=2&steps=2&kernels=windowed&precision=f32&backend=gpu`);
  const wResult = windowed.locator('#bench-result');
  await until(() => wResult.count().then((n) => n === 1), 'the ?kernels=windowed benchmark', 120_000);
  const wr = JSON.parse(await wResult.textContent());
  check(wr.kernels === 'windowed' && wr.ms_per_step > 0 && (await windowed.getByTestId('kernels').textContent()).startsWith('windowed'), `?kernels=windowed runs (${wr.ms_per_step.toFixed(0)} ms per step at batch 2) and the info panel says so`);
  check(await windowed.getByRole('alert').count() === 0, 'the windowed kernels raise no GPU error');
  await windowed.close();

  // ?precision=f16 on an adapter without shader-f16: a status line says so and the model runs in f32; the
  // page stays usable (Generate completes). Where the adapter has shader-f16, the run is in f16.
  const half = await browser.newPage();
  half.on('pageerror', (e) => pageErrors.push(String(e)));
  await half.goto(`${BASE}/?model=models/tiny/&n=1&steps=2&kernels=blocked&precision=f16&backend=gpu`);
  const halfGenerate = half.getByRole('button', { name: 'Generate' });
  await until(() => halfGenerate.isEnabled(), 'the model to load with ?precision=f16');
  const halfPrecision = await half.getByTestId('precision').textContent();
  if (halfPrecision.startsWith('f16')) {
    check(halfPrecision === 'f16 weights and activations, sums in f32 (chosen in the address)', `?precision=f16 runs in f16 on an adapter with shader-f16 (${halfPrecision})`);
  } else {
    check(halfPrecision === 'f32 (the address asks for f16, but this GPU has no shader-f16)', `?precision=f16 without shader-f16 runs in f32 and the panel says why (${halfPrecision})`);
    const notice = await half.getByRole('status').filter({ hasText: 'shader-f16' }).textContent();
    check(notice === 'The address asks for f16 (?precision=f16), but this GPU has no shader-f16: the model runs in f32.', `a status line explains it (${notice})`);
    check(await half.getByRole('alert').count() === 0, 'that is a note, not an error');
  }
  await halfGenerate.click();
  await until(async () => (await half.getByTestId('progress-text').textContent()).includes('done'), 'the ?precision=f16 run to finish');
  await half.screenshot({ path: `${OUT}/precision-f16.png`, fullPage: true });
  await half.close();

  // With no model loaded (its folder is missing), the Steps field shows its default, not 0.
  const empty = await browser.newPage();
  await empty.goto(`${BASE}/?model=models/does-not-exist/`);
  await until(() => empty.getByRole('alert').count().then((n) => n > 0), 'the alert for a missing default model');
  const stepsValue = await empty.getByRole('spinbutton', { name: /^Steps/ }).inputValue();
  check(stepsValue === '1000' && (await empty.getByText("the paper's full chain").count()) === 1, `Steps shows the full chain before any model loads (${stepsValue})`);
  await empty.close();
  check(pageErrors.length === 0, `no uncaught errors in the page (${pageErrors.join('; ')})`);
} finally {
  await browser.close();
}
console.log('browser test passed');
