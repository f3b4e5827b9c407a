//! Fetching a model folder over HTTP with progress in bytes, and making the GPU context.

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use ddpm_web::model::{CONFIG_FILE, SCHEDULER_FILE, WEIGHTS_FILE};

fn js_err(v: JsValue) -> String {
    v.as_string()
        .or_else(|| v.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())))
        .unwrap_or_else(|| format!("{v:?}"))
}

/// `base` joined with `file` ("models/x" + "config.json" → "models/x/config.json").
pub fn join(base: &str, file: &str) -> String {
    if base.ends_with('/') { format!("{base}{file}") } else { format!("{base}/{file}") }
}

/// GETs `url`; Ok(None) on 404 when `optional`. `progress(received, total)` is called as bytes arrive.
pub async fn fetch_bytes(url: &str, optional: bool, mut progress: impl FnMut(u64, Option<u64>)) -> Result<Option<Vec<u8>>, String> {
    let window = web_sys::window().ok_or("no window")?;
    // fetch rejects only when no response can be read at all; the browser hides why (CORS and network
    // failures look alike to the page), so name both.
    let resp = JsFuture::from(window.fetch_with_str(url)).await.map_err(|e| {
        format!(
            "could not download {url}: the browser could not reach it or was not allowed to read it ({}): a network \
             error, or a server on another site that does not allow cross-origin requests (CORS)",
            js_err(e)
        )
    })?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| "fetch did not return a Response".to_string())?;
    if resp.status() == 404 && optional {
        return Ok(None);
    }
    if !resp.ok() {
        return Err(format!("could not download {url}: the server answered {} {}", resp.status(), resp.status_text()));
    }
    let total = resp.headers().get("content-length").ok().flatten().and_then(|v| v.parse().ok());
    let Some(body) = resp.body() else {
        let buf = JsFuture::from(resp.array_buffer().map_err(js_err)?).await.map_err(js_err)?;
        return Ok(Some(Uint8Array::new(&buf).to_vec()));
    };
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut out = Vec::with_capacity(total.unwrap_or(0) as usize);
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(|e| format!("download of {url} broke off: {}", js_err(e)))?;
        if Reflect::get(&chunk, &"done".into()).map(|d| d.is_truthy()).unwrap_or(true) {
            break;
        }
        let value: Uint8Array = Reflect::get(&chunk, &"value".into()).map_err(js_err)?.unchecked_into();
        let start = out.len();
        out.resize(start + value.length() as usize, 0);
        value.copy_to(&mut out[start..]);
        progress(out.len() as u64, total);
    }
    Ok(Some(out))
}

/// The two small files of a model folder: (config.json, scheduler_config.json if present). They come first
/// so a config that cannot fit is refused before the weights are downloaded.
pub async fn fetch_configs(base: &str) -> Result<(String, Option<String>), String> {
    let text = |b: Vec<u8>, f: &str| String::from_utf8(b).map_err(|_| format!("{f} is not UTF-8 text"));
    let config = fetch_bytes(&join(base, CONFIG_FILE), false, |_, _| {}).await?.unwrap_or_default();
    let config = text(config, CONFIG_FILE)?;
    let scheduler = match fetch_bytes(&join(base, SCHEDULER_FILE), true, |_, _| {}).await? {
        Some(b) => Some(text(b, SCHEDULER_FILE)?),
        None => None,
    };
    Ok((config, scheduler))
}

/// The safetensors bytes of a model folder.
pub async fn fetch_weights(base: &str, progress: impl FnMut(u64, Option<u64>)) -> Result<Vec<u8>, String> {
    Ok(fetch_bytes(&join(base, WEIGHTS_FILE), false, progress).await?.unwrap_or_default())
}

/// Whether the browser exposes WebGPU at all (`navigator.gpu`).
pub fn has_webgpu() -> bool {
    web_sys::window()
        .and_then(|w| Reflect::get(&w.navigator(), &"gpu".into()).ok())
        .is_some_and(|g| !g.is_undefined() && !g.is_null())
}

pub const NO_WEBGPU: &str = "This browser does not offer WebGPU, which ddpm-web needs to run the model on your GPU. \
Use a recent Chrome or Edge (113 or later) on Windows, macOS, ChromeOS or Android, Safari 26 or later, or Firefox 141 \
or later on Windows. On Linux, Chromium needs --enable-unsafe-webgpu (and --enable-features=Vulkan), or \
--use-webgpu-adapter=swiftshader to run on the CPU.";

pub const NO_ADAPTER: &str = "This browser offers WebGPU but has no graphics adapter for it: WebGPU may be switched \
off in its settings or blocked for this graphics driver, or the machine has no GPU the browser can use. Recent Chrome, \
Edge and Safari run it on most machines.";

/// Resolves after the browser has had a turn (setTimeout 0), so the page repaints between steps.
pub async fn next_tick() {
    sleep_ms(0).await
}

/// Resolves after `ms` milliseconds (setTimeout).
pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Milliseconds since the page loaded.
pub fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}
