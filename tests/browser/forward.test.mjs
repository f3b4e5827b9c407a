// The forward process explorer in a real browser (Debian's headless Chromium, WebGPU on SwiftShader, the tiny
// test model for its schedule and a short run). What it adds to page.test.mjs: the shipped test images load and
// reach the GPU kernel unchanged (t = 0 is the image byte for byte), t = T is noise, one fixed z makes a small
// step in t a small change in x_t, the drawing pad and a bad file, and the forward and reverse sliders moving
// together with x̂₀ beside x_t. Exits non-zero on the first failed check; the screenshot goes to tests/out/.
import { BASE, OUT, check, launch, until } from './lib.mjs';

// NO_WEBGPU=1: the same checks with Chromium's WebGPU left without an adapter, so every application runs on
// the page's CPU path (Web Workers) instead.
const CPU = process.env.NO_WEBGPU === '1';

// The red channel of a canvas (the pictures are grey), as a plain array.
const grey = (page, selector) => page.evaluate((selector) => {
  const c = document.querySelector(selector);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  return Array.from(d.filter((_, i) => i % 4 === 0));
}, selector);
const maxDiff = (a, b) => (a.length === b.length ? a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0) : Infinity);
const meanDiff = (a, b) => a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / a.length;
const stats = (a) => {
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  return { mean, std: Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length) };
};
const XT = '#forward-xt';
const PAD = '.drawpad canvas';

const browser = await launch(!CPU);
const pageErrors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') console.log(`  [console] ${m.text()}`); });
  await page.goto(`${BASE}/?model=models/tiny/&n=2&steps=4&seed=5${CPU ? '' : '&backend=gpu'}`);
  await until(() => page.getByTestId('run-on').count().then((n) => n === 1), 'the page to say where the model runs');
  check((await page.getByTestId('run-on').textContent()) === `Run on: ${CPU ? 'CPU' : 'GPU'}`, `the model runs on the ${CPU ? 'CPU (no WebGPU adapter)' : 'GPU'}`);

  // The shipped images, as the page fetches them.
  const labels = await (await fetch(`${BASE}/data/fashion-mnist-test/labels.json`)).json();
  const shipped = new Uint8Array(await (await fetch(`${BASE}/data/fashion-mnist-test/images.u8`)).arrayBuffer());
  check(labels.images.length === 20 && shipped.length === 20 * 784 && new Set(labels.images.map((e) => e.label)).size === 10,
    'Trunk copied the 20 shipped test images (two of each class) into the site');
  const pick = 3;
  const image = Array.from(shipped.slice(pick * 784, (pick + 1) * 784));
  const name = `${labels.classes[labels.images[pick].label]} (test image ${labels.images[pick].index})`;

  const select = page.getByRole('combobox', { name: 'Start from' });
  await until(async () => (await select.locator('option').count()) === 21, 'the image list to load');
  const slider = page.getByRole('slider', { name: 'Forward t' });
  await until(() => slider.isVisible(), 'the Forward t slider (after the model, and so its schedule, loads)');
  await select.selectOption({ label: name });

  // t = 0 (the slider's right end, as the Timestep slider's): x_t is x_0, byte for byte up to rounding.
  await slider.focus();
  await page.keyboard.press('End');
  check((await page.getByTestId('forward-t-value').textContent()) === 't = 0', 'End on the Forward t slider is t = 0');
  await until(async () => maxDiff(await grey(page, XT), image) <= 1, 'x_t at t = 0 to be the chosen image', 20_000);
  check(maxDiff(await grey(page, PAD), image) <= 1, `x₀ shows the shipped bytes of "${name}"`);
  const d0 = maxDiff(await grey(page, XT), image);
  check(d0 <= 1, `x_t at t = 0 equals the shipped image (max difference ${d0} of 255)`);

  // t = T: noise. N(0, 1) clipped to [−1, 1] has mean mid-grey and a standard deviation near 0.8 x 127.5.
  await page.keyboard.press('Home');
  check((await page.getByTestId('forward-t-value').textContent()) === 't = 1000', 'Home on the Forward t slider is t = T');
  await until(async () => meanDiff(await grey(page, XT), image) > 40, 'x_t at t = T to be drawn');
  const noise = stats(await grey(page, XT));
  check(Math.abs(noise.mean - 127.5) < 15 && noise.std > 70, `x_t at t = T is noise (mean ${noise.mean.toFixed(1)}, std ${noise.std.toFixed(1)} of 255)`);
  check((await page.getByTestId('forward-formula').textContent()).includes('0.0064·x₀'), 'the formula shows √ᾱ_T of the linear schedule (0.0064)');

  // One fixed z: one step of t barely moves x_t; new noise at the same t moves it a lot.
  await slider.fill('500');
  await until(async () => (await page.getByTestId('forward-t-value').textContent()) === 't = 500', 'the slider at t = 500');
  await page.waitForTimeout(500);
  const at500 = await grey(page, XT);
  await page.keyboard.press('ArrowRight');
  check((await page.getByTestId('forward-t-value').textContent()) === 't = 499', 'ArrowRight steps t down by one');
  await until(async () => maxDiff(await grey(page, XT), at500) > 0, 'x_t at t = 499 to be drawn');
  const at499 = await grey(page, XT);
  await page.getByRole('button', { name: 'New noise' }).click();
  await until(async () => meanDiff(await grey(page, XT), at499) > 20, 'x_t with new noise');
  const fresh = await grey(page, XT);
  check(meanDiff(at500, at499) < 3 && meanDiff(fresh, at499) > 20,
    `scrubbing is continuous: t 500 → 499 changes x_t by ${meanDiff(at500, at499).toFixed(2)} per pixel, new noise by ${meanDiff(fresh, at499).toFixed(1)}`);

  // Drawing: a stroke across the cleared pad shows in x₀ and, at t = 0, in x_t.
  await select.selectOption('draw');
  await until(async () => (await grey(page, PAD)).every((v) => v === 0), 'the pad to clear');
  await slider.focus();
  await page.keyboard.press('End');
  const box = await page.locator(PAD).boundingBox();
  await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.3);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.8, box.y + box.height * 0.7, { steps: 12 });
  await page.mouse.up();
  const drawn = await grey(page, PAD);
  const lit = drawn.filter((v) => v > 128).length;
  check(lit >= 15 && lit < 200, `the mouse stroke is drawn on the pad (${lit} bright pixels)`);
  await until(async () => maxDiff(await grey(page, XT), drawn) <= 1, 'x_t at t = 0 to show the drawing', 20_000);
  check(maxDiff(await grey(page, XT), drawn) <= 1, 'x_t at t = 0 is the drawing');
  await page.locator('.drawpad').getByRole('button', { name: 'Clear' }).click();
  await until(async () => (await grey(page, PAD)).every((v) => v === 0), 'Clear to empty the pad', 5_000);
  check((await grey(page, PAD)).every((v) => v === 0), 'Clear empties the pad');

  // Dropping a PNG: a 56x28 picture, left half white, made and encoded by the browser, is decoded, scaled to fit
  // 28x28 with its aspect kept (28x14, centred) and turned grey.
  const dropped = await page.evaluateHandle(async () => {
    const c = document.createElement('canvas');
    [c.width, c.height] = [56, 28];
    const g = c.getContext('2d');
    g.fillStyle = '#000'; g.fillRect(0, 0, 56, 28);
    g.fillStyle = '#fff'; g.fillRect(0, 0, 28, 28);
    const blob = await new Promise((r) => c.toBlob(r, 'image/png'));
    const dt = new DataTransfer();
    dt.items.add(new File([blob], 'half.png', { type: 'image/png' }));
    return dt;
  });
  await page.dispatchEvent('.drawpad', 'drop', { dataTransfer: dropped });
  await until(async () => (await grey(page, PAD)).some((v) => v > 200), 'the dropped PNG on the pad', 10_000);
  const pad = await grey(page, PAD);
  const at = (x, y) => pad[y * 28 + x];
  check(at(5, 3) === 0 && at(5, 24) === 0 && at(5, 14) > 240 && at(10, 10) > 240 && at(22, 14) < 10,
    `a dropped PNG fills the pad, aspect kept (row 3 ${at(5, 3)}, row 14 left ${at(5, 14)} right ${at(22, 14)})`);
  await until(async () => maxDiff(await grey(page, XT), pad) <= 1, 'x_t at t = 0 to show the dropped image', 20_000);
  check(maxDiff(await grey(page, XT), pad) <= 1, 'x_t at t = 0 is the dropped image');

  // A file the browser cannot decode: a sentence in the alert, no exception.
  await page.locator('.drawpad input[type=file]').setInputFiles({ name: 'broken.png', mimeType: 'image/png', buffer: Buffer.from('this is not a PNG') });
  await until(() => page.getByRole('alert').count().then((n) => n > 0), 'an alert for a broken image file', 10_000);
  const alert = await page.getByRole('alert').textContent();
  check(/broken\.png/.test(alert) && /could not be used/.test(alert), `a broken image file is reported ("${alert.slice(0, 110)}")`);
  await page.getByRole('button', { name: 'Dismiss' }).click();

  // A stroke over a shipped image makes it the person's own picture, and the list says so.
  await select.selectOption({ label: name });
  await until(async () => maxDiff(await grey(page, PAD), image) === 0, 'the shipped image back on the pad', 5_000);
  await page.mouse.move(box.x + box.width * 0.1, box.y + box.height * 0.1);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.1, { steps: 4 });
  await page.mouse.up();
  await until(async () => (await select.inputValue()) === 'draw', 'the list to switch to the own drawing', 5_000);
  check((await select.inputValue()) === 'draw', 'drawing over a shipped image turns the list to "your own drawing"');
  await select.selectOption({ label: name });
  await slider.fill('600');

  // A short run: x̂₀ beside x_t at once, and the two sliders move together.
  const generate = page.getByRole('button', { name: 'Generate' });
  await until(() => generate.isEnabled(), 'Generate to be enabled');
  await generate.click();
  await until(async () => (await page.getByTestId('progress-text').textContent()).includes('done'), 'the run to finish', 180_000);
  const timestep = page.getByRole('slider', { name: 'Timestep' });
  await timestep.focus();
  await page.keyboard.press('Home');
  await page.keyboard.press('ArrowRight');
  const runT = await page.getByTestId('timestep-value').textContent();
  check(runT !== 't = 1000' && (await page.getByTestId('forward-t-value').textContent()) === runT, `the Forward t slider follows the Timestep slider (${runT})`);
  const images = page.getByRole('img', { name: /^image \d$/ });
  const predictions = page.getByRole('img', { name: /^prediction \d$/ });
  check((await images.count()) === 2 && (await predictions.count()) === 2 && (await images.nth(1).isVisible()) && (await predictions.nth(1).isVisible()),
    'x_t and x̂₀ of both images are on screen at once');
  const [x1, p1] = [await grey(page, '#image-0'), await grey(page, '#x0-0')];
  check(meanDiff(x1, p1) > 5, `x̂₀ is another picture than x_t (mean difference ${meanDiff(x1, p1).toFixed(1)})`);
  await slider.focus();
  await page.keyboard.press('End');
  check((await page.getByTestId('timestep-value').textContent()) === 't = 0', 'the Timestep slider follows the Forward t slider to t = 0');
  await slider.fill('750'); // t = 250: the image still shows through the noise
  await page.waitForTimeout(1000);
  await page.screenshot({ path: `${OUT}/forward${CPU ? '-cpu' : ''}.png`, fullPage: true });

  // "Noise to t and denoise" (SDEdit): the run starts from the pad's image noised to the first of its steps
  // at or below Forward t (steps=4: 750, 500, 250, 0, so t = 300 starts at diffusers' 250, the paper's 251),
  // makes only the passes from there, and its first frame still shows the image.
  await slider.fill('700');
  const padNow = await grey(page, PAD);
  await page.getByRole('button', { name: 'Noise to t and denoise' }).click();
  await until(async () => (await page.getByTestId('progress-text').textContent()).includes('done'), 'the SDEdit run to finish', 180_000);
  const sdedit = await page.getByTestId('progress-text').textContent();
  check(sdedit.startsWith('step 2 of 2'), `the SDEdit run makes the 2 passes below t = 300 (${sdedit})`);
  await timestep.focus();
  await page.keyboard.press('Home');
  check((await page.getByTestId('timestep-value').textContent()) === 't = 251', 'its first frame is x_251');
  const start = await grey(page, '#image-0');
  const corr = (a, b) => {
    const m = (v) => v.reduce((s, x) => s + x, 0) / v.length;
    const [ma, mb] = [m(a), m(b)];
    let [ab, aa, bb] = [0, 0, 0];
    for (let i = 0; i < a.length; i++) { ab += (a[i] - ma) * (b[i] - mb); aa += (a[i] - ma) ** 2; bb += (b[i] - mb) ** 2; }
    return ab / Math.sqrt(aa * bb);
  };
  const c = corr(start, padNow);
  check(c > 0.5, `the noised start still shows the image (correlation ${c.toFixed(2)} with x₀; √ᾱ = 0.72 at t = 251)`);
  await page.screenshot({ path: `${OUT}/sdedit${CPU ? '-cpu' : ''}.png`, fullPage: true });

  // Inpainting: a mouse stroke on the mask pad paints it; with the right half masked, the run keeps the left
  // half of x₀ exactly (at t = 0, byte for byte) and fills the right; RePaint's resampling adds its passes.
  const maskPad = page.getByRole('img', { name: 'inpainting mask' });
  await maskPad.scrollIntoViewIfNeeded();
  const mbox = await maskPad.boundingBox();
  await page.mouse.move(mbox.x + mbox.width * 0.2, mbox.y + mbox.height * 0.5);
  await page.mouse.down();
  await page.mouse.move(mbox.x + mbox.width * 0.4, mbox.y + mbox.height * 0.5, { steps: 4 });
  await page.mouse.up();
  const MASK = '.maskpad canvas';
  const stroked = (await grey(page, MASK)).filter((v) => v > 128).length;
  check(stroked > 10, `a mouse stroke paints the inpainting mask (${stroked} pixels)`);
  await page.getByRole('button', { name: 'Mask the right half' }).click();
  const mask = await grey(page, MASK);
  const source = await grey(page, PAD);
  await page.getByRole('button', { name: 'Inpaint', exact: true }).click();
  await until(async () => (await page.getByTestId('progress-text').textContent()).includes('done'), 'the inpainting run to finish', 180_000);
  check((await page.getByTestId('progress-text').textContent()).startsWith('step 4 of 4'), 'inpainting runs the 4 steps');
  await timestep.focus();
  await page.keyboard.press('End');
  const filled = await grey(page, '#image-0');
  const keptDiff = Math.max(...filled.map((v, i) => (mask[i] < 128 ? Math.abs(v - source[i]) : 0)));
  check(keptDiff === 0, `the unmasked region is x₀ itself at t = 0 (max difference ${keptDiff} of 255)`);
  const holeDiff = filled.reduce((a, v, i) => a + (mask[i] >= 128 ? Math.abs(v - source[i]) : 0), 0) / mask.filter((m) => m >= 128).length;
  check(holeDiff > 5, `the masked region is generated, not copied (mean difference ${holeDiff.toFixed(1)})`);
  await page.screenshot({ path: `${OUT}/inpaint${CPU ? '-cpu' : ''}.png`, fullPage: true });
  await page.getByRole('spinbutton', { name: /RePaint resampling/ }).fill('2');
  await page.getByRole('spinbutton', { name: /RePaint resampling/ }).press('Tab');
  await page.getByRole('button', { name: 'Inpaint', exact: true }).click();
  await until(async () => (await page.getByTestId('progress-text').textContent()).includes('done'), 'the RePaint run to finish', 180_000);
  const repaint = await page.getByTestId('progress-text').textContent();
  check(repaint.startsWith('step 12 of 12'), `RePaint's resampling twice, jumping back one step at a time: 4 steps twice and 4 jumps (${repaint})`);

  // Interpolation: x₀ and another shipped image, noised to Forward t (300: the run starts at 251), mixed into
  // a strip of 8 that forms together; its ends differ, neighbours differ less than the ends.
  await page.getByRole('button', { name: 'Interpolate (8 images)' }).click();
  await until(async () => (await page.getByTestId('progress-text').textContent()).includes('done'), 'the interpolation to finish', 180_000);
  check((await page.getByTestId('progress-text').textContent()).startsWith('step 2 of 2'), 'the strip runs the 2 steps below t = 300');
  check(await page.getByRole('img', { name: /^image \d+$/ }).count() === 8, 'the strip has 8 images');
  await timestep.focus();
  await page.keyboard.press('End');
  const strip = [];
  for (let k = 0; k < 8; k++) strip.push(await grey(page, `#image-${k}`));
  const mean = (a, b) => a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / a.length;
  const ends = mean(strip[0], strip[7]);
  const steps = [...Array(7).keys()].map((k) => mean(strip[k], strip[k + 1]));
  check(ends > 10 && Math.max(...steps) < ends, `the strip goes from one image to the other in smaller steps (ends ${ends.toFixed(1)}, largest neighbour step ${Math.max(...steps).toFixed(1)})`);
  await page.screenshot({ path: `${OUT}/interpolate${CPU ? '-cpu' : ''}.png`, fullPage: true });

  // Super-resolution: the pad's image averaged to 14x14, then 28x28 images whose 2x2 averages are it.
  await page.getByRole('button', { name: 'Upscale x₀ from 14x14' }).click();
  await until(async () => (await page.getByTestId('progress-text').textContent()).includes('done'), 'the upscaling to finish', 180_000);
  await timestep.focus();
  await page.keyboard.press('End');
  const high = await grey(page, '#image-0');
  const padNow2 = await grey(page, PAD);
  // Blocks with a pixel clipped to 0 or 255 on screen cannot show their mean; the others must.
  let pooledOff = 0;
  let detail = 0;
  let blocks = 0;
  for (let b = 0; b < 196; b++) {
    const [r, c] = [2 * Math.floor(b / 14), 2 * (b % 14)];
    const idx = [r * 28 + c, r * 28 + c + 1, (r + 1) * 28 + c, (r + 1) * 28 + c + 1];
    if (idx.some((i) => high[i] === 0 || high[i] === 255)) continue;
    blocks++;
    const m = idx.reduce((a, i) => a + high[i], 0) / 4;
    const want = idx.reduce((a, i) => a + padNow2[i], 0) / 4;
    pooledOff = Math.max(pooledOff, Math.abs(m - want));
    detail = Math.max(detail, ...idx.map((i) => Math.abs(high[i] - m)));
  }
  check(blocks >= 5 && pooledOff <= 1 && detail > 5, `the upscaled image averages back to x₀'s 14x14 (${blocks} unclipped blocks, max ${pooledOff.toFixed(2)} of 255 off in 8-bit pixels) with detail inside the blocks (${detail.toFixed(0)})`);

  // Likelihood of the pad's image: Cancel stops it; a full run draws one bar per computed term (the first 10
  // and one in 10 above: 10 + 99 = 109 of T = 1000) and states the bound.
  const compute = page.getByRole('button', { name: 'Compute bits/dim' });
  await compute.click();
  await until(() => page.getByRole('progressbar', { name: 'Likelihood progress' }).count().then((n) => n === 1), 'the likelihood progress bar');
  await page.getByRole('button', { name: 'Cancel likelihood' }).click();
  await until(() => page.getByRole('status').filter({ hasText: 'likelihood was cancelled' }).count().then((n) => n === 1), 'the likelihood to stop', 60_000);
  check((await page.getByTestId('nll-chart').count()) === 0, 'Cancel stops the likelihood without a chart');
  await until(() => compute.isEnabled(), 'Compute bits/dim to be usable again', 30_000);
  await compute.click();
  await until(() => page.getByTestId('nll-result').count().then((n) => n === 1), 'the likelihood result', 180_000);
  const bars = await page.locator('[data-testid=nll-chart] rect.term').count();
  const nll = await page.getByTestId('nll-result').textContent();
  check(bars === 109 && /^\d+\.\d+ bits\/dim/.test(nll), `the likelihood chart has a bar per computed term (${bars}): "${nll.slice(0, 80)}"`);
  await page.getByTestId('nll-chart').scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${OUT}/likelihood${CPU ? '-cpu' : ''}.png`, fullPage: true });
  check(pageErrors.length === 0, `no uncaught errors in the page (${pageErrors.join('; ')})`);
} finally {
  await browser.close();
}
console.log(`forward explorer test passed (${CPU ? 'CPU path' : 'WebGPU'})`);
