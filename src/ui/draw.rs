//! A small grey image a person draws with the mouse (or a finger), or fills by dropping or opening an image
//! file: the forward explorer's x_0, and the input of the applications that start from a picture.
//!
//! The canvas itself is the image (28x28 pixels scaled up by CSS), so strokes are rasterised by the browser's
//! 2-D context, antialiased, and read back as bytes; a file is decoded by the browser (`createImageBitmap`), so
//! no image decoder ships in the wasm.

use leptos::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

/// Brush width in image pixels: about a Fashion-MNIST outline's thickness.
const BRUSH: f64 = 2.2;

fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok()??.dyn_into().ok()
}

/// Grey bytes (0 = black) of the whole canvas, as luma of its pixels composited over black.
fn read_grey(canvas: &HtmlCanvasElement) -> Option<Vec<u8>> {
    let (w, h) = (canvas.width(), canvas.height());
    let data = context(canvas)?.get_image_data(0.0, 0.0, w as f64, h as f64).ok()?.data();
    Some(
        data.chunks_exact(4)
            .map(|p| {
                let luma = 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
                (luma * p[3] as f64 / 255.0).round().clamp(0.0, 255.0) as u8
            })
            .collect(),
    )
}

fn put_grey(canvas: &HtmlCanvasElement, grey: &[u8]) {
    let (w, h) = (canvas.width(), canvas.height());
    if grey.len() != (w * h) as usize {
        return;
    }
    let rgba: Vec<u8> = grey.iter().flat_map(|&g| [g, g, g, 255]).collect();
    if let (Some(ctx), Ok(data)) = (context(canvas), web_sys::ImageData::new_with_u8_clamped_array_and_sh(wasm_bindgen::Clamped(&rgba), w, h)) {
        let _ = ctx.put_image_data(&data, 0.0, 0.0);
    }
}

fn js_message(v: &JsValue) -> String {
    v.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).or_else(|| v.as_string()).unwrap_or_else(|| format!("{v:?}"))
}

/// Decodes an image file in the browser and scales it, aspect kept and centred on black, to w x h grey bytes.
async fn decode_file(file: &web_sys::File, w: u32, h: u32) -> Result<Vec<u8>, String> {
    let name = file.name();
    let window = web_sys::window().ok_or("no window")?;
    let promise = window.create_image_bitmap_with_blob(file).map_err(|e| js_message(&e))?;
    let bitmap: web_sys::ImageBitmap = JsFuture::from(promise)
        .await
        .map_err(|e| format!("{name} is not an image this browser can decode ({})", js_message(&e)))?
        .unchecked_into();
    let (bw, bh) = (bitmap.width() as f64, bitmap.height() as f64);
    if bw < 1.0 || bh < 1.0 {
        return Err(format!("{name} has no pixels"));
    }
    let doc = window.document().ok_or("no document")?;
    let canvas: HtmlCanvasElement = doc.create_element("canvas").map_err(|e| js_message(&e))?.unchecked_into();
    canvas.set_width(w);
    canvas.set_height(h);
    let ctx = context(&canvas).ok_or("no 2-D canvas context")?;
    ctx.set_fill_style_str("#000");
    ctx.fill_rect(0.0, 0.0, w as f64, h as f64);
    let scale = (w as f64 / bw).min(h as f64 / bh);
    let (dw, dh) = (bw * scale, bh * scale);
    ctx.draw_image_with_image_bitmap_and_dw_and_dh(&bitmap, (w as f64 - dw) / 2.0, (h as f64 - dh) / 2.0, dw, dh).map_err(|e| js_message(&e))?;
    bitmap.close();
    read_grey(&canvas).ok_or_else(|| "the decoded image could not be read".into())
}

/// The drawing pad. `image` holds w x h grey bytes (0 = black): what the pad shows, replaced by each stroke,
/// by Clear and by a dropped or opened file; set it from outside to show another picture. `on_error` gets a
/// sentence when a file cannot be used.
#[component]
pub fn DrawPad(
    image: RwSignal<Vec<u8>>,
    #[prop(default = 28)] width: u32,
    #[prop(default = 28)] height: u32,
    /// The canvas's accessible name.
    #[prop(into)]
    label: String,
    #[prop(into)] on_error: Callback<String>,
    /// The wrapper's class: "drawpad" for the picture pad, another for a second pad on the page (a mask).
    #[prop(default = "drawpad")]
    class: &'static str,
) -> impl IntoView {
    let canvas_ref = NodeRef::<leptos::html::Canvas>::new();
    // The last pointer position while a stroke is under way, in image pixels.
    let last = StoredValue::new_local(None::<(f64, f64)>);
    let drag_over = RwSignal::new(false);

    Effect::new(move |_| {
        let grey = image.get();
        if let Some(c) = canvas_ref.get() {
            put_grey(&c, &grey);
        }
    });

    let at = move |ev: &web_sys::PointerEvent| -> Option<(HtmlCanvasElement, f64, f64)> {
        let c = canvas_ref.get_untracked()?;
        let r = c.get_bounding_client_rect();
        if r.width() <= 0.0 || r.height() <= 0.0 {
            return None;
        }
        let x = (ev.client_x() as f64 - r.left()) * width as f64 / r.width();
        let y = (ev.client_y() as f64 - r.top()) * height as f64 / r.height();
        Some((c, x, y))
    };
    let stroke = move |c: &HtmlCanvasElement, from: (f64, f64), to: (f64, f64)| {
        let Some(ctx) = context(c) else { return };
        ctx.set_stroke_style_str("#fff");
        ctx.set_fill_style_str("#fff");
        ctx.set_line_width(BRUSH);
        ctx.set_line_cap("round");
        ctx.set_line_join("round");
        ctx.begin_path();
        if from == to {
            let _ = ctx.arc(to.0, to.1, BRUSH / 2.0, 0.0, std::f64::consts::TAU);
            ctx.fill();
        } else {
            ctx.move_to(from.0, from.1);
            ctx.line_to(to.0, to.1);
            ctx.stroke();
        }
        if let Some(grey) = read_grey(c) {
            image.set(grey);
        }
    };
    let down = move |ev: web_sys::PointerEvent| {
        let Some((c, x, y)) = at(&ev) else { return };
        ev.prevent_default();
        let _ = c.set_pointer_capture(ev.pointer_id());
        last.set_value(Some((x, y)));
        stroke(&c, (x, y), (x, y));
    };
    let moved = move |ev: web_sys::PointerEvent| {
        let Some(from) = last.get_value() else { return };
        let Some((c, x, y)) = at(&ev) else { return };
        last.set_value(Some((x, y)));
        stroke(&c, from, (x, y));
    };
    let up = move |_: web_sys::PointerEvent| last.set_value(None);

    let load_file = move |file: Option<web_sys::File>| {
        let Some(file) = file else { return };
        leptos::task::spawn_local(async move {
            match decode_file(&file, width, height).await {
                Ok(grey) => image.set(grey),
                Err(e) => on_error.run(format!("The image could not be used: {e}.")),
            }
        });
    };
    let drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        drag_over.set(false);
        load_file(ev.data_transfer().and_then(|d| d.files()).and_then(|f| f.get(0)));
    };
    let open = move |ev: web_sys::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        load_file(input.files().and_then(|f| f.get(0)));
        // Opening the same file again after a Clear must fire `change` again.
        input.set_value("");
    };

    view! {
        <div class=class class:drag-over=move || drag_over.get()
            on:dragover=move |ev: web_sys::DragEvent| { ev.prevent_default(); drag_over.set(true); }
            on:dragleave=move |_| drag_over.set(false)
            on:drop=drop>
            <canvas node_ref=canvas_ref class="pad" width=width height=height role="img" aria-label=label
                title="Draw with the mouse, or drop an image file here"
                on:pointerdown=down on:pointermove=moved on:pointerup=up on:pointercancel=up></canvas>
            <div class="pad-actions">
                <button type="button" on:click=move |_| image.set(vec![0; (width * height) as usize])>"Clear"</button>
                <label class="file">"Open image…"
                    <input type="file" accept="image/png,image/*" on:change=open />
                </label>
            </div>
        </div>
    }
}
