//! The forward process explorer: x_0 (a real Fashion-MNIST test image, a drawing, or an image file) beside
//! q(x_t | x_0) at the chosen t. z is one Philox draw per noise seed, kept while t and x_0 change, so scrubbing
//! t moves one sample continuously from the image (t = 0) to noise (t = T); the GPU recomputes x_t (one
//! dispatch and a 784-byte read-back) on each change.

use std::cell::Cell;
use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;

use ddpm_web::diffusion::forward::{alpha_bar_at, frame_on_host, ForwardNoise, Noiser};
use ddpm_web::image::Batch;
use ddpm_web::GpuContext;

use super::canvas::draw_into;
use super::draw::DrawPad;
use super::likelihood::Likelihood;
use super::plot::SnrPlot;
use super::{loader, Phase, Ui};

const SIDE: u32 = 28;
const PIXELS: usize = (SIDE * SIDE) as usize;
/// The shipped test images (scripts/make-test-images.py writes them).
const DATA: &str = "data/fashion-mnist-test/";
const XT_ID: &str = "forward-xt";

#[derive(serde::Deserialize)]
struct LabelsFile {
    classes: Vec<String>,
    images: Vec<Entry>,
}

#[derive(serde::Deserialize, Clone, Copy)]
struct Entry {
    index: usize,
    label: usize,
}

/// The shipped images: (option text, pixels) each.
async fn fetch_test_images() -> Result<Vec<(String, Vec<u8>)>, String> {
    let json = loader::fetch_bytes(&format!("{DATA}labels.json"), false, |_, _| {}).await?.unwrap_or_default();
    let labels: LabelsFile = serde_json::from_slice(&json).map_err(|e| format!("{DATA}labels.json is not valid: {e}"))?;
    let pixels = loader::fetch_bytes(&format!("{DATA}images.u8"), false, |_, _| {}).await?.unwrap_or_default();
    if pixels.len() != labels.images.len() * PIXELS {
        return Err(format!("{DATA}images.u8 has {} bytes, not {} images of 28x28", pixels.len(), labels.images.len()));
    }
    Ok(labels
        .images
        .iter()
        .zip(pixels.chunks_exact(PIXELS))
        .map(|(e, px)| (format!("{} (test image {})", labels.classes.get(e.label).map_or("?", |s| s.as_str()), e.index), px.to_vec()))
        .collect())
}

/// Display bytes to model range [−1, 1], as the model's training data was scaled.
/// The 2x2 average of a SIDE x SIDE image (super-resolution's low-resolution source).
fn pool2(x: &[f32]) -> Vec<f32> {
    let (s, h) = (SIDE as usize, SIDE as usize / 2);
    (0..h * h).map(|b| {
        let (r, c) = (2 * (b / h), 2 * (b % h));
        (x[r * s + c] + x[r * s + c + 1] + x[(r + 1) * s + c] + x[(r + 1) * s + c + 1]) / 4.0
    }).collect()
}

pub(super) fn to_model(grey: &[u8]) -> Vec<f32> {
    grey.iter().map(|&b| b as f32 / 127.5 - 1.0).collect()
}

/// The frame of the reverse run nearest to paper t, so the run's slider follows this one.
fn nearest_frame(ui: &Ui, t: usize) -> Option<usize> {
    ui.frames.with_value(|f| f.list.iter().enumerate().min_by_key(|(_, fr)| fr.t.abs_diff(t)).map(|(i, _)| i))
}

/// The GPU side: one noiser per (device, noise seed), reused while x_0 and t change.
#[derive(Clone, Default)]
struct Gpu {
    noiser: Option<(Rc<GpuContext>, u64, Rc<Noiser>)>,
}

#[component]
pub fn ForwardExplorer() -> impl IntoView {
    let ui = expect_context::<Ui>();
    let images = RwSignal::new(Vec::<(String, Vec<u8>)>::new());
    let choice = RwSignal::new(String::from("draw"));
    let x0 = RwSignal::new(vec![0u8; PIXELS]);
    // Inpainting's mask: white where the person paints = the region the sampler fills.
    let mask = RwSignal::new(vec![0u8; PIXELS]);
    let resample = RwSignal::new(1usize);
    // Interpolation's other end: a shipped image.
    let other = RwSignal::new(5usize);
    let noise_seed = RwSignal::new(ui.seed.get_untracked());
    let gpu = StoredValue::new_local(Gpu::default());
    let (busy, again) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));

    spawn_local(async move {
        match fetch_test_images().await {
            Ok(list) => {
                if let Some((_, px)) = list.first() {
                    x0.set(px.clone());
                    choice.set("0".into());
                }
                images.set(list);
            }
            Err(e) => ui.error.set(Some(format!("The shipped test images could not be loaded: {e}. You can still draw or open an image."))),
        }
    });

    // x_t for the current (x_0, t, seed) once a model's schedule is there. Changes that arrive while the GPU
    // is busy collapse into one more run with the latest values, so a fast drag never queues up work.
    let refresh = move || {
        if busy.get() {
            again.set(true);
            return;
        }
        busy.set(true);
        let (busy, again) = (busy.clone(), again.clone());
        spawn_local(async move {
            loop {
                again.set(false);
                let Some(engine) = ui.engine.get_value() else { break };
                let (t, seed, grey) = (ui.forward_t.get_untracked(), noise_seed.get_untracked(), x0.get_untracked());
                let alpha_bar = alpha_bar_at(&engine.schedule, t);
                let result = match engine.gpu() {
                    Some((ctx, _)) => {
                        async {
                            let noiser = match gpu.get_value().noiser {
                                Some((c, s, n)) if Rc::ptr_eq(&c, &ctx) && s == seed => n,
                                _ => {
                                    let n = Rc::new(Noiser::new(&ctx, &to_model(&grey), ForwardNoise::Seed(seed))?);
                                    gpu.set_value(Gpu { noiser: Some((ctx.clone(), seed, n.clone())) });
                                    n
                                }
                            };
                            noiser.set_x0(&ctx, &to_model(&grey))?;
                            noiser.frame(&ctx, alpha_bar).await
                        }
                        .await
                    }
                    // The CPU path: 784 values, the same Philox z as the GPU's.
                    None => Ok(frame_on_host(&to_model(&grey), alpha_bar, seed)),
                };
                match result {
                    Ok(bytes) => draw_into(XT_ID, &bytes, Batch { n: 1, c: 1, h: SIDE as usize, w: SIDE as usize }, 0),
                    Err(e) => {
                        ui.error.set(Some(format!("The forward process could not run: {e}")));
                        break;
                    }
                }
                if !again.get() {
                    break;
                }
            }
            busy.set(false);
        });
    };
    Effect::new(move |_| {
        let _ = (ui.forward_t.get(), x0.get(), noise_seed.get(), ui.info.get());
        refresh();
    });
    // A stroke or a file over a shipped image makes it the person's own: the list says so.
    Effect::new(move |_| {
        let edited = x0.with(|px| {
            choice.with_untracked(|c| c.parse::<usize>().ok()).is_some_and(|i| images.with_untracked(|l| l.get(i).is_some_and(|(_, s)| s != px)))
        });
        if edited {
            choice.set("draw".into());
        }
    });

    let total = move || ui.info.get().map_or(0, |i| i.steps);
    let t_now = Signal::derive(move || ui.forward_t.get().min(total()));
    let formula = move || {
        let t = t_now.get();
        let ab = ui.engine.with_value(|e| e.as_ref().map(|e| alpha_bar_at(&e.schedule, t)))?;
        Some(if t == 0 {
            "t = 0: ᾱ₀ = 1, so x₀ itself.".to_string()
        } else {
            format!("x_{t} = √ᾱ_{t}·x₀ + √(1 − ᾱ_{t})·z = {:.4}·x₀ + {:.4}·z   (ᾱ_{t} = {ab:.5})", ab.sqrt(), (1.0 - ab).sqrt())
        })
    };
    let on_slider = move |ev: web_sys::Event| {
        let v: usize = event_target_value(&ev).parse().unwrap_or(0);
        let t = total().saturating_sub(v);
        ui.forward_t.set(t);
        let count = ui.frame_count.get_untracked();
        if count > 0 {
            if let Some(i) = nearest_frame(&ui, t) {
                ui.shown.set(i);
                ui.follow.set(i + 1 >= count);
            }
        }
    };
    let pick = move |ev: web_sys::Event| {
        let v = event_target_value(&ev);
        match v.parse::<usize>().ok().and_then(|i| images.with_untracked(|l| l.get(i).map(|(_, px)| px.clone()))) {
            Some(px) => x0.set(px),
            None => x0.set(vec![0; PIXELS]),
        }
        choice.set(v);
    };

    view! {
        <section class="forward" aria-label="Forward process">
            <h2>"Forward process q(x_t | x₀)"</h2>
            <p class="hint">"Pick a Fashion-MNIST test image, draw one, or drop an image file on the left square; the slider adds noise: x_t = √ᾱ_t·x₀ + √(1 − ᾱ_t)·z, with one fixed draw of z."</p>
            <label>"Start from"
                <select prop:value=move || choice.get() on:change=pick>
                    <option value="draw">"your own drawing or image file"</option>
                    {move || images.get().into_iter().enumerate().map(|(i, (name, _))| view! { <option value=i.to_string()>{name}</option> }).collect_view()}
                </select>
            </label>
            <div class="pair">
                // Captions on top: the pad has its buttons underneath.
                <figure>
                    <figcaption>"x₀ (draw here)"</figcaption>
                    <DrawPad image=x0 label="x₀ (draw here)" on_error=Callback::new(move |e| ui.error.set(Some(e))) />
                </figure>
                <figure>
                    <figcaption>{move || match ui.info.get() {
                        Some(_) => format!("x_{} ~ q(x_t | x₀)", t_now.get()),
                        None => "x_t ~ q(x_t | x₀)".into(),
                    }}</figcaption>
                    <canvas id=XT_ID class="pad" width=SIDE height=SIDE role="img" aria-label="x_t, the noised image"></canvas>
                </figure>
            </div>
            {move || match ui.info.get() {
                None => view! { <p class="hint">"x_t appears once a model, and so its noise schedule, has loaded."</p> }.into_any(),
                Some(info) => view! {
                    <div class="scrub">
                        <label for="forward-t">"Forward t"</label>
                        <input id="forward-t" type="range" min="0" max=info.steps.to_string()
                            prop:value=move || (total() - t_now.get()).to_string()
                            aria-valuetext=move || format!("t = {}", t_now.get())
                            on:input=on_slider />
                        <output for="forward-t" data-testid="forward-t-value">{move || format!("t = {}", t_now.get())}</output>
                        <button type="button" on:click=move |_| noise_seed.set((js_sys::Math::random() * 1e9) as u64)>"New noise"</button>
                    </div>
                    <div class="explain">
                        <SnrPlot log_snr=info.log_snr t=t_now />
                        <p class="formula" data-testid="forward-formula">{formula}</p>
                    </div>
                    <p class="row">
                        <button type="button" prop:disabled=move || ui.phase.get() != Phase::Ready
                            title="Start the chosen sampler from x₀ noised to this t (SDEdit): how much of the image survives?"
                            on:click=move |_| ui.generate_from(to_model(&x0.get_untracked()), t_now.get_untracked())>"Noise to t and denoise"</button>
                    </p>
                    <Likelihood x0=x0 />
                    <h3>"Interpolation"</h3>
                    <p class="row">
                        <label>"to"
                            <select prop:value=move || other.get().to_string() on:change=move |ev| other.set(event_target_value(&ev).parse().unwrap_or(0))>
                                {move || images.get().into_iter().enumerate().map(|(i, (name, _))| view! { <option value=i.to_string()>{name}</option> }).collect_view()}
                            </select>
                        </label>
                        <button type="button" prop:disabled=move || ui.phase.get() != Phase::Ready
                            title="x₀ and the other image, noised to Forward t with one z, mixed spherically into 8 starts and denoised together"
                            on:click=move |_| {
                                let b = images.with_untracked(|l| l.get(other.get_untracked()).map(|(_, px)| to_model(px)));
                                if let Some(b) = b {
                                    ui.interpolate(to_model(&x0.get_untracked()), b, t_now.get_untracked(), 8);
                                }
                            }>"Interpolate (8 images)"</button>
                    </p>
                    <h3>"Super-resolution"</h3>
                    <p class="row">
                        <button type="button" prop:disabled=move || ui.phase.get() != Phase::Ready
                            title="x₀ averaged to 14x14, then images at 28x28 whose 2x2 averages are it (ILVR): the sampler invents the detail"
                            on:click=move |_| ui.upscale(pool2(&to_model(&x0.get_untracked())))>"Upscale x₀ from 14x14"</button>
                    </p>
                    <h3>"Inpainting"</h3>
                    <p class="hint">"Paint over the part of x₀ to replace; the chosen sampler fills it while, after every step, the rest is set to x₀ noised to that step's level (replacement). RePaint's resampling goes back up the chain and down again to blend the seam (ddpm, ddim, sde)."</p>
                    <div class="pair">
                        <figure>
                            <figcaption>"mask (paint the region to fill)"</figcaption>
                            <DrawPad image=mask label="inpainting mask" class="maskpad" on_error=Callback::new(move |e| ui.error.set(Some(e))) />
                        </figure>
                        <figure class="stack">
                            <label>"RePaint resampling (1 = off)"
                                <input type="number" min="1" max="20" prop:value=move || resample.get().to_string()
                                    on:change=move |ev| resample.set(event_target_value(&ev).parse().unwrap_or(1usize).clamp(1, 20)) />
                            </label>
                            <button type="button" on:click=move |_| mask.set((0..PIXELS).map(|i| if i % SIDE as usize >= SIDE as usize / 2 { 255 } else { 0 }).collect())>"Mask the right half"</button>
                            <button type="button" prop:disabled=move || ui.phase.get() != Phase::Ready
                                on:click=move |_| {
                                    let known: Vec<f32> = mask.get_untracked().iter().map(|&m| if m >= 128 { 0.0 } else { 1.0 }).collect();
                                    ui.inpaint(to_model(&x0.get_untracked()), known, resample.get_untracked());
                                }>"Inpaint"</button>
                        </figure>
                    </div>
                }.into_any(),
            }}
        </section>
    }
}
