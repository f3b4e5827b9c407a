// The 2-D playground in a real browser (the same headless Chromium and flags as page.test.mjs; the
// playground itself needs no WebGPU). Finds it by role and label, checks that it draws, runs particles
// with three samplers, adds a mixture component by clicking, and saves tests/out/playground.png.
// Exits non-zero on the first failed check.
import { BASE, OUT, check, launch, until } from './lib.mjs';

// The playground canvas's pixels: how many distinct colours, how many particle (#5fd3ff) and trail
// (greenish) pixels, and a key to compare two pictures.
const pixels = (canvas) => canvas.evaluate((c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const colours = new Set();
  let particles = 0; let trails = 0;
  for (let i = 0; i < d.length; i += 4) {
    colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    if (d[i] === 0x5f && d[i + 1] === 0xd3 && d[i + 2] === 0xff) particles++;
    if (d[i + 1] > 150 && d[i + 1] > d[i] + 40 && d[i + 1] > d[i + 2] + 20) trails++;
  }
  let key = 0;
  for (let i = 0; i < d.length; i++) key = (key * 31 + d[i]) >>> 0;
  return { colours: colours.size, particles, trails, key };
});

// Brightness (R + G + B) of the canvas pixel at a point of the plane [−3, 3]², y up.
const brightnessAt = (canvas, x, y) => canvas.evaluate((c, [x, y]) => {
  const px = Math.round((x + 3) / 6 * c.width); const py = Math.round((3 - y) / 6 * c.height);
  const d = c.getContext('2d').getImageData(px, py, 1, 1).data;
  return d[0] + d[1] + d[2];
}, [x, y]);

const browser = await launch();
const pageErrors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') console.log(`  [console] ${m.text()}`); });
  await page.goto(`${BASE}/?model=models/tiny/&n=4&steps=10&backend=gpu`);

  const canvas = page.getByRole('img', { name: '2-D playground' });
  await canvas.waitFor();
  // Let the page finish loading the tiny model (its kernel timing keeps both cores busy) before frame rates are read.
  const generate = page.getByRole('button', { name: 'Generate' });
  await until(() => generate.isEnabled(), 'the page to load the tiny model', 180_000);
  const section = page.getByRole('region', { name: /2-D playground/ });
  const status = page.getByTestId('playground-status');
  const tOut = page.getByTestId('playground-t');
  await until(async () => (await pixels(canvas)).colours > 50, 'the playground to draw its density');
  const first = await pixels(canvas);
  check(first.colours > 50 && first.particles === 0, `the canvas shows the density and arrows before any run (${first.colours} colours)`);

  const sampler = page.getByLabel('Move particles with');
  const run = page.getByRole('button', { name: 'Run particles' });
  const fps = [];
  const runToEnd = async (what) => {
    await run.click();
    // A new run starts again from move 0, so the last run's "move 1000 of 1000" is not taken for this one's.
    await until(async () => /move (\d|[1-9]\d\d?) of 1000/.test(await status.textContent()), `${what} to start moving particles`, 10_000);
    const started = Date.now();
    // The browser's frame rate while particles run (requestAnimationFrame callbacks in one second).
    fps.push(await page.evaluate(() => new Promise((done) => {
      let n = 0; const end = performance.now() + 1000;
      const tick = (now) => { n++; if (now < end) requestAnimationFrame(tick); else done(n); };
      requestAnimationFrame(tick);
    })));
    await until(async () => /move 1000 of 1000/.test(await status.textContent()), `${what} to finish`, 120_000);
    return (Date.now() - started) / 1000;
  };

  // The probability-flow ODE: the cloud ends at t = 0 with its trajectories drawn, and lands on the
  // same points when run again from the same start (no noise).
  await sampler.selectOption('ode');
  check(await sampler.inputValue() === 'ode', 'the particle sampler can be changed to the probability-flow ODE');
  const odeSecs = await runToEnd('the ODE');
  check(/^t = 0 /.test(await tOut.textContent()), `the playground t followed the run down to 0 (${await tOut.textContent()})`);
  const ode1 = await pixels(canvas);
  check(ode1.particles > 500 && ode1.trails > 100, `particles (${ode1.particles} px) and ODE trajectories (${ode1.trails} px) are drawn`);
  // The wasm build's maths: the ODE's cloud has the mixture's proportions (2,000 particles: a share's
  // standard error is ≤ 1.1 points, the native test sees the ODE within 0.5 points; 5 points allowed).
  const shareText = await page.getByTestId('playground-shares').textContent();
  const [got, want] = shareText.split(';').map((part) => [...part.matchAll(/(\d+)%/g)].map((m) => Number(m[1])));
  check(got.length === 4 && want.length === 4 && got.every((g, i) => Math.abs(g - want[i]) <= 5), `the ODE cloud's shares match the weights (${shareText})`);
  console.log(`  ODE run of 1000 moves: ${odeSecs.toFixed(1)} s; ${await status.textContent()}`);
  await section.screenshot({ path: `${OUT}/playground.png` });
  await runToEnd('a second ODE run');
  check((await pixels(canvas)).key === ode1.key, 'a second ODE run from the same start draws exactly the same picture');

  // DDPM adds noise: two runs end differently.
  await sampler.selectOption('ddpm');
  await runToEnd('DDPM');
  const ddpm1 = await pixels(canvas);
  await runToEnd('a second DDPM run');
  const ddpm2 = await pixels(canvas);
  // A few particles blended over the heat map pass for trail colour; ODE trajectories make ~30x more.
  check(ddpm1.trails < ode1.trails / 5 && ddpm2.key !== ddpm1.key, `two DDPM runs end on different points and draw no trajectories (${ddpm1.trails} trail-coloured px)`);

  // Plain Langevin stays at the slider's t.
  await sampler.selectOption('langevin');
  await page.getByRole('slider', { name: 'Playground t' }).fill('10');
  check(/^t = 10 /.test(await tOut.textContent()), 'the Playground t slider sets t');
  await runToEnd('plain Langevin');
  check(/^t = 10 /.test(await tOut.textContent()), 'plain Langevin samples at the slider\'s t and leaves it there');
  console.log(`  plain Langevin at t = 10: ${await page.getByTestId('playground-shares').textContent()}`);

  // Clicking adds a component: at t = 0 the density at an empty spot becomes bright.
  await page.getByRole('button', { name: 'Reset mixture' }).click();
  await page.getByRole('slider', { name: 'Playground t' }).fill('0');
  // A corner of the arrow grid (17 cells across [−3, 3]), where no arrow is drawn, in an empty part of the plane.
  const spot = [-3 + 15 * 6 / 17, -3 + 6 / 17];
  const before = await brightnessAt(canvas, ...spot);
  const box = await canvas.boundingBox();
  await canvas.click({ position: { x: (spot[0] + 3) / 6 * box.width, y: (3 - spot[1]) / 6 * box.height } });
  await until(async () => (await brightnessAt(canvas, ...spot)) > before + 200, 'the clicked component to show in the density', 5_000);
  const after = await brightnessAt(canvas, ...spot);
  check(after > before + 200, `a click adds a mixture component where it lands (brightness ${before} → ${after})`);
  check((await pixels(canvas)).particles === 0, 'Reset mixture clears the particles');

  // The page's Timestep slider (there after an image run) moves the playground's t with it.
  await generate.click();
  await until(async () => (await page.getByTestId('progress-text').textContent()).includes('done'), 'the image run to finish', 180_000);
  const timestep = page.getByRole('slider', { name: 'Timestep' });
  await timestep.focus();
  await page.keyboard.press('Home');
  await until(async () => /^t = 1000 /.test(await tOut.textContent()), 'the playground t to follow the Timestep slider to T', 5_000);
  await page.keyboard.press('ArrowRight');
  const pageT = await page.getByTestId('timestep-value').textContent();
  const followed = await tOut.textContent();
  check(pageT !== 't = 1000' && followed.startsWith(`${pageT} `), `the playground t follows the page's Timestep slider (t = 1000, then page ${pageT}, playground ${followed})`);
  await page.screenshot({ path: `${OUT}/playground-page.png`, fullPage: true });

  console.log(`  frames per second while particles ran: ${fps.join(', ')}`);
  check(pageErrors.length === 0, `no uncaught page errors (${pageErrors.join('; ')})`);
} finally {
  await browser.close();
}
