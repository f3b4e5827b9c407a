import { launch, until } from './lib.mjs';
const browser = await launch();
for (const port of [8765, 8766, 8765, 8766]) {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${port}/?model=models/fashion-mnist/&bench&n=4&steps=2&kernels=blocked`);
  const r = page.locator('#bench-result');
  await until(() => r.count().then((n) => n === 1), 'bench', 600_000);
  const j = JSON.parse(await r.textContent());
  const f = j.gpu_ms_per_family;
  console.log(port === 8765 ? 'WG 256' : 'WG 64 ', j.ms_per_step.toFixed(0), 'ms/step; GroupNorm', f.GroupNorm.toFixed(0), 'of', Object.values(f).reduce((a, b) => a + b, 0).toFixed(0));
  await page.close();
}
await browser.close();
