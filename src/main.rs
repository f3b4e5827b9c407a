//! The page: a Leptos app (client-side rendered, built by Trunk from index.html) over the ddpm_web engine.
//! Natively this binary only says how to build the page; the native tool is `ddpm` (src/bin/ddpm.rs).

#[cfg(target_arch = "wasm32")]
mod ui;

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(ui::App);
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    println!("ddpm-web is a web page: build and serve it with `bash scripts/serve.sh` (trunk build --release).");
    println!("The native command-line tool is `ddpm` (cargo run --bin ddpm -- --help).");
}
