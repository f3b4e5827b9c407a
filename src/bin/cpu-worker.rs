//! The page's CPU worker: a Web Worker running its own wasm instance of the CPU executor
//! ([`ddpm_web::cpu::worker::WorkerState`]), so the page stays responsive while it computes. Trunk builds it
//! (`data-type="worker"` in index.html); the page starts a few and splits each batch between them.
//!
//! Message in: `{ json, bytes? }` (a [`Request`] as JSON, the weights as a Uint8Array beside it).
//! Message out: a [`Reply`] as a JSON string.

#[cfg(not(target_arch = "wasm32"))]
fn main() {}

#[cfg(target_arch = "wasm32")]
fn main() {
    use std::cell::RefCell;

    use ddpm_web::cpu::worker::{Reply, Request, WorkerState};
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;

    console_error_panic_hook::set_once();
    let scope: web_sys::DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let state = RefCell::new(WorkerState::default());
    let reply_to = scope.clone();
    let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
        let data = event.data();
        let json = js_sys::Reflect::get(&data, &"json".into()).ok().and_then(|v| v.as_string()).unwrap_or_default();
        let bytes = js_sys::Reflect::get(&data, &"bytes".into()).ok().filter(|v| v.is_instance_of::<js_sys::Uint8Array>()).map(|v| v.unchecked_into::<js_sys::Uint8Array>().to_vec());
        let reply = match serde_json::from_str::<Request>(&json) {
            Ok(request) => state.borrow_mut().handle(request, bytes.as_deref()),
            Err(e) => Reply::Failed(format!("internal: the CPU worker got a message it cannot read ({e})")),
        };
        let text = serde_json::to_string(&reply).unwrap_or_else(|e| format!("{{\"Failed\":\"internal: {e}\"}}"));
        let _ = reply_to.post_message(&JsValue::from_str(&text));
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    let ready = serde_json::to_string(&Reply::Ready).unwrap_or_default();
    let _ = scope.post_message(&JsValue::from_str(&ready));
}
