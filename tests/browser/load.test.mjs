// An impatient person, 100 times over (issue 18), in headless Chromium on SwiftShader WebGPU: each cycle loads
// the other of two model folders (the tiny model and a copy, no reload of the page), presses Generate, scrubs
// the Timestep slider while the run goes on, and cancels it mid-run. Checks: no page error; the frames shown
// are the current run's (x_T on screen equals the x_T this seed gave on its first run, and the progress counts
// this run's steps); the engine's buffers (?debug=1's ddpmDebug.stats()) are the same after every cycle.
// CYCLES overrides the count. Exits non-zero on the first failed check.
import { BASE, check, launch, until as untilEvery } from './lib.mjs';
// Polled often: each of the 100 cycles waits several times.
const until = (fn, what, ms = 60_000) => untilEvery(fn, what, ms, 50);

const CYCLES = Number(process.env.CYCLES ?? 100);

const shown = (page) => page.evaluate(() => Array.from(document.querySelector('canvas.image').getContext('2d')
  .getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0)).join(','));

const browser = await launch();
const pageErrors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  // Blocked kernels: a model change then needs no timing of the kernel families.
  await page.goto(`${BASE}/?model=models/tiny/&n=1&steps=1000&seed=1&kernels=blocked&debug=1&backend=gpu`);
  const generate = page.getByRole('button', { name: 'Generate' });
  const cancel = page.getByRole('button', { name: 'Cancel', exact: true });
  const slider = page.getByRole('slider', { name: 'Timestep' });
  const seed = page.getByRole('spinbutton', { name: 'Seed' });
  const modelUrl = page.getByRole('textbox', { name: 'Model URL' });
  const load = page.getByRole('button', { name: 'Load' });
  const progress = () => page.getByTestId('progress-text').textContent();
  await until(() => generate.isEnabled(), 'the first model to load');
  const stats = () => page.evaluate(() => window.ddpmDebug.stats());
  const base = await stats();
  const xT = new Map();
  const after = [];
  let scrubbed = 0;
  for (let i = 0; i < CYCLES; i++) {
    // A change of model (the tiny model and its copy in turn), then this cycle's seed.
    await modelUrl.fill(i % 2 ? 'models/tiny/' : 'models/tiny-copy/');
    await load.click();
    await until(async () => (await page.getByTestId('model-info-url').textContent()).startsWith(i % 2 ? 'models/tiny/' : 'models/tiny-copy/') && await generate.isEnabled(), `cycle ${i}: the model to load`);
    const s = String(1 + (i % 3));
    await seed.fill(s);
    await seed.press('Tab');
    await generate.click();
    // Mid-run: a few steps in, scrub back to x_T (this run's, never the previous run's) and forward again.
    await until(async () => /^step ([3-9]|\d\d+) of 1000/.test(await progress()), `cycle ${i}: the run to be under way`);
    await slider.focus();
    await slider.press('Home');
    const first = await shown(page);
    if (!xT.has(s)) xT.set(s, first);
    check(first === xT.get(s), `cycle ${i}: the frame at t = T is this run's x_T (seed ${s})`);
    await slider.press('ArrowRight');
    scrubbed++;
    await cancel.click();
    await until(() => generate.isEnabled(), `cycle ${i}: Generate after Cancel`);
    const p = await progress();
    check(/ of 1000 · .* · cancelled$/.test(p) || / of 1000 .*cancelled/.test(p), `cycle ${i}: the progress is this run's, cancelled (${p})`);
    after.push(await stats());
  }
  check(after.every((s) => s.buffers === base.buffers && s.bytes === base.bytes),
    `buffers and bytes are flat across ${CYCLES} cycles of model change, Generate, scrub and Cancel (${base.buffers} buffers, ${base.bytes} bytes before; after: ${[...new Set(after.map((s) => `${s.buffers}/${s.bytes}`))].join(', ')})`);
  check(scrubbed === CYCLES && xT.size === Math.min(3, CYCLES), `every cycle scrubbed during its run (${scrubbed}), three seeds' x_T compared`);
  check(pageErrors.length === 0, `no page errors over ${CYCLES} cycles (${pageErrors.join('; ') || 'none'})`);
} finally {
  await browser.close();
}
console.log('load test passed');
