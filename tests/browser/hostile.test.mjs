// Hostile input and faults in a real browser (Debian's headless Chromium, WebGPU on SwiftShader). What it adds
// to page.test.mjs: each bad model folder run.sh makes (an HTML page or 0 bytes in place of the weights, a
// config whose activations exceed the adapter, a bad scheduler_config.json, a bad config.json) and a
// cross-origin server without CORS give an alert naming the problem, and the good model then loads without a
// reload; ?model= refuses javascript:, data: and file: URLs; the page runs under its Content-Security-Policy
// with no violation; ?debug=1's ddpmDebug.stats() sees a run's buffers and returns to the same count after each
// Generate/Cancel cycle; destroyDevice() mid-run is reported and the next Generate works. Exits non-zero on the
// first failed check.
import { BASE, check, launch, until } from './lib.mjs';

const browser = await launch();
const pageErrors = [];
const cspConsole = [];
const dialogs = [];
const requests = [];

async function open(query) {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => {
    if (/Content Security Policy|Content-Security-Policy/i.test(m.text())) cspConsole.push(m.text());
    if (m.type() === 'error') console.log(`  [console] ${m.text()}`);
  });
  // Violations as the page itself sees them (an init script is not subject to the policy).
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(`${BASE}/${query}`);
  return page;
}

const alertText = (page) => page.getByRole('alert').textContent();

try {
  // The policy is in the served page, with Trunk's loader allowed by a hash, not by 'unsafe-inline'.
  const html = await (await fetch(`${BASE}/`)).text();
  const csp = html.match(/http-equiv="Content-Security-Policy" content="([^"]*)"/)?.[1] ?? '';
  check(/script-src 'self' 'wasm-unsafe-eval' 'sha256-[A-Za-z0-9+/=]{44}'/.test(csp) && !/unsafe-inline'[^;]*;/.test(csp.split('script-src')[1].split(';')[0] + ';')
    && !/'unsafe-eval'/.test(csp), `the built page states its CSP with the loader's hash and no eval (${csp.slice(0, 90)}…)`);
  check(/connect-src 'self' http: https:/.test(csp) && /worker-src 'self' blob:/.test(csp), 'connect-src is open to http(s), workers come from self and blob:');

  // Refused schemes: an alert, no fetch of that address, no dialog, and the page is still there.
  for (const bad of ['javascript:alert(1)', 'data:application/json,{}', 'file:///etc/', 'JavaScript:alert(2)']) {
    const page = await open(`?model=${encodeURIComponent(bad)}&debug=1`);
    await until(() => page.getByRole('alert').count().then((n) => n > 0), `an alert for ?model=${bad}`);
    const a = await alertText(page);
    check(/refused/.test(a) && /http\(s\)/.test(a), `?model=${bad} is refused with a clear alert ("${a.slice(0, 90)}…")`);
    check(await page.getByRole('button', { name: 'Load' }).isEnabled(), '  and the Model URL field stays usable');
    await page.close();
  }
  check(dialogs.length === 0, 'no refused address ran script (no dialog opened)');

  const page = await open('?model=models/tiny/&n=2&steps=4&seed=3&debug=1&backend=gpu');
  const generate = page.getByRole('button', { name: 'Generate' });
  const modelUrl = page.getByLabel('Model URL');
  const load = page.getByRole('button', { name: 'Load' });
  await until(() => generate.isEnabled(), 'the tiny model to load', 120_000);

  // Each bad folder: an alert naming the problem; the model loaded before stays usable.
  const port = new URL(BASE).port;
  const cases = [
    ['models/html-weights/', /HTML page/, 'an HTML error page served as the weights'],
    ['models/empty-weights/', /empty \(0 bytes\)/, 'a 0-byte weights file'],
    ['models/huge/', /too large for this GPU/, 'a config whose activations exceed the adapter'],
    ['models/bad-scheduler/', /scheduler_config\.json.*beta_end/, 'a scheduler_config.json with β ≥ 1'],
    ['models/bad-config/', /block_out_channels/, 'a config.json with a zero width'],
    [`http://localhost:${port}/models/tiny/`, /CORS/, 'a server on another origin without CORS headers'],
  ];
  for (const [url, pattern, what] of cases) {
    await modelUrl.fill(url);
    await load.click();
    await until(async () => pattern.test(await alertText(page)), `the alert for ${what}`, 60_000);
    const a = await alertText(page);
    check(pattern.test(a), `${what}: "${a.slice(0, 140)}"`);
    await until(() => generate.isEnabled(), 'Generate to stay usable after a failed load', 20_000);
  }
  check(!requests.some((u) => u.includes('/models/huge/diffusion_pytorch_model')), 'the oversized model was refused before its weights were downloaded');

  // The good model again, without a reload, and a run to the end.
  await modelUrl.fill('models/tiny/');
  await load.click();
  await until(async () => (await page.getByRole('alert').count()) === 0 && await generate.isEnabled(), 'the good model to load again');
  await generate.click();
  await until(async () => /^step 4 of 4/.test(await page.getByTestId('progress-text').textContent()), 'a 4-step run after the failures', 120_000);
  check(await page.getByRole('alert').count() === 0 && /^step 4 of 4/.test(await page.getByTestId('progress-text').textContent()),
    'the good model loads and runs after every failure, without a reload');

  // Buffers: a run adds its own, and every Generate/Cancel cycle gives them all back.
  const stats = () => page.evaluate(() => window.ddpmDebug.stats());
  await until(() => generate.isEnabled(), 'the run to finish');
  const base = await stats();
  check(base.buffers > 0 && base.bytes > 0, `ddpmDebug.stats() counts the loaded model's buffers (${base.buffers} buffers, ${base.bytes} bytes)`);
  const steps = page.getByRole('spinbutton', { name: /^Steps/ });
  await steps.fill('1000');
  await steps.press('Tab');
  const after = [];
  let during = null;
  for (let i = 0; i < 4; i++) {
    await generate.click();
    await until(async () => /^step [1-9]\d* of 1000/.test(await page.getByTestId('progress-text').textContent()), `cycle ${i + 1} to start`);
    during ??= await stats();
    await page.getByRole('button', { name: 'Cancel', exact: true }).click();
    await until(() => generate.isEnabled(), `Generate after cancel ${i + 1}`);
    after.push(await stats());
  }
  check(during.buffers > base.buffers && during.bytes > base.bytes, `a running sampler's buffers are counted (${during.buffers} buffers, ${during.bytes} bytes while running)`);
  check(after.every((s) => s.buffers === base.buffers && s.bytes === base.bytes),
    `buffers and bytes are flat across 4 Generate/Cancel cycles (${after.map((s) => `${s.buffers}/${s.bytes}`).join(', ')})`);

  // A lost device mid-run: said so, recreated, and the next Generate works without a reload.
  await generate.click();
  await until(async () => /^step [1-9]\d* of 1000/.test(await page.getByTestId('progress-text').textContent()), 'a run to destroy the device under');
  check(await page.evaluate(() => window.ddpmDebug.destroyDevice()), 'ddpmDebug.destroyDevice() destroyed the device');
  await until(async () => /lost/i.test(await page.locator('.alert, .notice').allTextContents().then((t) => t.join(' '))), 'the page to say the device was lost');
  await until(async () => /new GPU device/.test(await page.getByRole('status').allTextContents().then((t) => t.join(' '))) && await generate.isEnabled(),
    'the page to recreate the device and reload the model', 120_000);
  const recoveredText = (await page.getByRole('status').allTextContents()).join(' ');
  check(/lost/i.test(recoveredText) && /new GPU device/.test(recoveredText) && await generate.isEnabled() && await page.getByRole('alert').count() === 0,
    `the lost device is reported and recovered: "${recoveredText.slice(0, 160)}"`);
  await steps.fill('4');
  await steps.press('Tab');
  await generate.click();
  await until(async () => /^step 4 of 4/.test(await page.getByTestId('progress-text').textContent()), 'a run on the new device', 120_000);
  const recovered = await stats();
  check(recovered.buffers === base.buffers && recovered.bytes === base.bytes, `the new device holds what the old one did (${recovered.buffers} buffers)`);

  const violations = await page.evaluate(() => window.__csp);
  check(violations.length === 0 && cspConsole.length === 0, `no CSP violation reported (${violations.concat(cspConsole).join('; ') || 'none'})`);
  check(pageErrors.length === 0, `no page errors (${pageErrors.join('; ') || 'none'})`);
} finally {
  await browser.close();
}
