//! Drawing frames on canvases and saving them as PNG.

use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use ddpm_web::image::{default_cols, grid_rgba, image_rgba, Batch};

fn document() -> Option<web_sys::Document> {
    web_sys::window()?.document()
}

pub fn image_id(i: usize) -> String {
    format!("image-{i}")
}

fn put(canvas: &HtmlCanvasElement, w: usize, h: usize, rgba: &[u8]) -> Option<()> {
    canvas.set_width(w as u32);
    canvas.set_height(h as u32);
    let ctx: CanvasRenderingContext2d = canvas.get_context("2d").ok()??.dyn_into().ok()?;
    let data = web_sys::ImageData::new_with_u8_clamped_array_and_sh(Clamped(rgba), w as u32, h as u32).ok()?;
    ctx.put_image_data(&data, 0.0, 0.0).ok()
}

/// The canvas of image `i`'s prediction x̂_0, beside its x_t.
pub fn x0_id(i: usize) -> String {
    format!("x0-{i}")
}

/// Draws image `i` of `frame` (bytes, NCHW) into the canvas with id `id`, if there is one.
pub fn draw_into(id: &str, frame: &[u8], batch: Batch, i: usize) {
    if let Some(c) = document().and_then(|d| d.get_element_by_id(id)).and_then(|e| e.dyn_into::<HtmlCanvasElement>().ok()) {
        put(&c, batch.w, batch.h, &image_rgba(frame, batch, i));
    }
}

/// Draws every image of `frame` (bytes, NCHW) into the canvases `id(0)`, `id(1)`, ...
pub fn draw_images(frame: &[u8], batch: Batch, id: fn(usize) -> String) {
    for i in 0..batch.n {
        draw_into(&id(i), frame, batch, i);
    }
}

fn download(url: &str, name: &str) {
    let Some(doc) = document() else { return };
    if let Ok(a) = doc.create_element("a") {
        let a: web_sys::HtmlAnchorElement = a.unchecked_into();
        a.set_href(url);
        a.set_download(name);
        a.click();
    }
}

/// Saves the canvas `id` as shown as a PNG file.
pub fn save_image(id: &str, name: &str) {
    let canvas = document().and_then(|d| d.get_element_by_id(id)).and_then(|e| e.dyn_into::<HtmlCanvasElement>().ok());
    if let Some(url) = canvas.and_then(|c| c.to_data_url_with_type("image/png").ok()) {
        download(&url, name);
    }
}

/// Saves the whole batch of `frame` as one PNG grid.
pub fn save_grid(frame: &[u8], batch: Batch, name: &str) {
    let Some(doc) = document() else { return };
    let Some(canvas) = doc.create_element("canvas").ok().and_then(|e| e.dyn_into::<HtmlCanvasElement>().ok()) else { return };
    let (w, h, rgba) = grid_rgba(frame, batch, default_cols(batch.n), 2);
    if put(&canvas, w, h, &rgba).is_some() {
        if let Ok(url) = canvas.to_data_url_with_type("image/png") {
            download(&url, name);
        }
    }
}
