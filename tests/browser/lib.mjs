// What every browser test shares: where the site is, where screenshots go, Chromium's flags (SwiftShader
// WebGPU, or none: navigator.gpu without an adapter), launching it, and the two assertion helpers.
import { chromium } from 'playwright-core';

export const BASE = process.env.BASE_URL ?? 'http://127.0.0.1:8080';
export const OUT = new URL('../out/', import.meta.url).pathname;
export const COMMON = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'];
export const WEBGPU = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'];

/// Debian's headless Chromium (CHROMIUM overrides the path) with WebGPU on SwiftShader unless `webgpu` is false.
export function launch(webgpu = true) {
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: webgpu ? [...WEBGPU, ...COMMON] : COMMON, headless: true });
}

/// Fails the test with `what` unless `ok`; prints it otherwise.
export function check(ok, what) {
  if (!ok) throw new Error(`FAILED: ${what}`);
  console.log(`ok - ${what}`);
}

/// Polls `fn` every `every` ms until it is truthy (a throw counts as not yet); fails after `ms`.
export async function until(fn, what, ms = 60_000, every = 200) {
  const end = Date.now() + ms;
  for (;;) {
    try { if (await fn()) return; } catch { /* not there yet */ }
    if (Date.now() > end) throw new Error(`FAILED: timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
