//! `?debug=1`: `window.ddpmDebug`, the hooks the browser tests use to fault the page and to watch its GPU
//! memory. `stats()` → `{buffers, bytes}`: what the engine's objects hold now (`ddpm_web::gpu::live`);
//! `destroyDevice()` destroys the GPU device as a driver reset would, so device-lost recovery can be tested.

use js_sys::{Object, Reflect};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;

use super::Ui;

pub fn install(ui: Ui) {
    let Some(window) = web_sys::window() else { return };
    let hooks = Object::new();
    let stats = Closure::<dyn Fn() -> JsValue>::new(|| {
        let (buffers, bytes) = ddpm_web::gpu::live::totals();
        let o = Object::new();
        let _ = Reflect::set(&o, &"buffers".into(), &(buffers as f64).into());
        let _ = Reflect::set(&o, &"bytes".into(), &(bytes as f64).into());
        o.into()
    });
    let destroy = Closure::<dyn Fn() -> bool>::new(move || {
        ui.gpu.with_value(|g| g.as_ref().map(|g| g.device.destroy()).is_some())
    });
    let _ = Reflect::set(&hooks, &"stats".into(), stats.as_ref());
    let _ = Reflect::set(&hooks, &"destroyDevice".into(), destroy.as_ref());
    let _ = Reflect::set(&window, &"ddpmDebug".into(), &hooks);
    // The hooks live as long as the page.
    stats.forget();
    destroy.forget();
}
