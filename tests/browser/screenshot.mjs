// Screenshot of the page with the default model for the README (not part of the test suite: SwiftShader
// runs the real model slowly). Serve dist/ first (bash scripts/serve.sh), then:
//   node tests/browser/screenshot.mjs [URL] [OUT.png]
import { chromium } from 'playwright-core';

const url = process.argv[2] ?? 'http://127.0.0.1:8080/?n=9&steps=50&seed=2';
const out = process.argv[3] ?? 'docs/screenshot.png';
const args = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--no-sandbox', '--disable-background-networking',
  '--disable-component-update', '--no-first-run', '--disable-sync'];
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args, headless: true });
const page = await browser.newPage({ viewport: { width: 1180, height: 860 } });
await page.goto(url);
const generate = page.getByRole('button', { name: 'Generate' });
await generate.waitFor();
for (let i = 0; i < 600 && !(await generate.isEnabled()); i++) await page.waitForTimeout(500);
await generate.click();
const start = Date.now();
while (!(await page.getByTestId('progress-text').textContent()).includes('done')) {
  await page.waitForTimeout(2000);
  if ((Date.now() - start) % 60_000 < 2100) console.log(await page.getByTestId('progress-text').textContent());
  if (Date.now() - start > 30 * 60_000) throw new Error('the run did not finish in 30 minutes');
}
await page.screenshot({ path: out, fullPage: true });
console.log(`${out}: ${await page.getByTestId('progress-text').textContent()}`);
await browser.close();
