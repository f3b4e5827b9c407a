//! The components: what the user sees, each named for it.

use leptos::prelude::*;

use super::canvas::{draw_images, image_id, save_grid, save_image};
use super::playground::Playground;
use super::plot::SnrPlot;
use super::{Phase, Ui};
use ddpm_web::Variance;

#[component]
pub fn App() -> impl IntoView {
    let ui = Ui::new();
    provide_context(ui);
    ui.load();
    view! {
        <header>
            <h1>"ddpm-web"</h1>
            <p class="tagline">"Denoising diffusion (Ho et al. 2020) running on your own GPU, in WGSL through WebGPU."</p>
        </header>
        <main>
            <section class="panel">
                <ModelPanel />
                <Controls />
            </section>
            <section class="stage">
                <Alerts />
                <Progress />
                <BenchResult />
                <Viewer />
            </section>
        </main>
        <Playground />
    }
}

fn ui() -> Ui {
    expect_context::<Ui>()
}

#[component]
fn Alerts() -> impl IntoView {
    let ui = ui();
    view! {
        {move || ui.error.get().map(|e| view! {
            <div role="alert" class="alert">
                <span>{e}</span>
                <button class="dismiss" aria-label="Dismiss" on:click=move |_| ui.error.set(None)>"×"</button>
            </div>
        })}
        {move || ui.notice.get().map(|m| view! { <p role="status" class="notice">{m}</p> })}
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

#[component]
fn ModelPanel() -> impl IntoView {
    let ui = ui();
    let url = RwSignal::new(ui.model_url.get_untracked());
    let busy = move || matches!(ui.phase.get(), Phase::Loading | Phase::Running);
    view! {
        <div class="model">
            <form class="model-url" on:submit=move |ev| {
                ev.prevent_default();
                ui.model_url.set(url.get_untracked());
                ui.load();
            }>
                <label for="model-url">"Model URL"</label>
                <input id="model-url" type="text" prop:value=move || url.get() on:input=move |ev| url.set(event_target_value(&ev)) />
                <button type="submit" prop:disabled=busy>"Load"</button>
            </form>
            {move || (ui.phase.get() == Phase::Loading).then(|| {
                let (got, total) = ui.download.get();
                view! {
                    <div class="loading">
                        <progress aria-label="Download" max=move || total.unwrap_or(0).max(1) as f64 value=got as f64></progress>
                        <span>{match total { Some(t) => format!("{} of {}", mib(got), mib(t)), None => mib(got) }}</span>
                    </div>
                }
            })}
            {move || ui.info.get().map(|i| view! {
                <dl class="info">
                    <dt>"GPU"</dt><dd data-testid="adapter">{i.adapter}</dd>
                    <dt>"Model"</dt><dd>{format!("{} ({}×{}×{})", i.url, i.image.0, i.image.1, i.image.2)}</dd>
                    <dt>"Parameters"</dt><dd data-testid="parameters">{format!("{:.2} M; {:.2} GFLOP per image per step", i.parameters as f64 / 1e6, i.gflop)}</dd>
                    <dt>"Trained on"</dt><dd>{i.dataset}</dd>
                    <dt>"T"</dt><dd>{i.steps}</dd>
                    <dt>"Kernels"</dt><dd data-testid="kernels">{move || ui.kernels_used.get().unwrap_or_default()}</dd>
                </dl>
            })}
        </div>
    }
}

#[component]
fn Controls() -> impl IntoView {
    let ui = ui();
    let ready = move || ui.phase.get() == Phase::Ready;
    let running = move || ui.phase.get() == Phase::Running;
    let max_n = move || ui.info.get().map_or(64, |i| i.max_batch);
    let total = move || ui.info.get().map_or(1000, |i| i.steps);
    let steps_shown = move || match ui.steps.get() {
        0 => total(),
        s => s,
    };
    view! {
        <form class="controls" on:submit=move |ev| { ev.prevent_default(); ui.generate(); }>
            <label>"Images"
                <input type="number" min="1" max=move || max_n().to_string() prop:value=move || ui.n.get().to_string()
                    on:change=move |ev| { let v = event_target_value(&ev).parse().unwrap_or(1usize); ui.n.set(v.clamp(1, max_n())); } />
            </label>
            <label>"Seed"
                <span class="row">
                    <input type="number" min="0" prop:value=move || ui.seed.get().to_string()
                        on:change=move |ev| ui.seed.set(event_target_value(&ev).parse().unwrap_or(0)) />
                    <button type="button" on:click=move |_| ui.seed.set((js_sys::Math::random() * 1e9) as u64)>"Random"</button>
                </span>
            </label>
            <label>"Steps"
                // 0 until a model loads means "the model's T": shown as the full chain, not as 0.
                <input type="number" min="1" max=move || total().to_string() prop:value=move || steps_shown().to_string()
                    on:change=move |ev| { let v = event_target_value(&ev).parse().unwrap_or(1usize); ui.steps.set(v.clamp(1, total())); } />
                <small>{move || if steps_shown() == total() { "the paper's full chain".to_string() } else { format!("respaced: every {}th timestep", total() / steps_shown().max(1)) }}</small>
            </label>
            <label>"Variance σ²"
                <select prop:value=move || if ui.variance.get() == Variance::Small { "small" } else { "large" }
                    on:change=move |ev| ui.variance.set(if event_target_value(&ev) == "large" { Variance::Large } else { Variance::Small })>
                    <option value="small">"β̃ₜ (posterior)"</option>
                    <option value="large">"βₜ"</option>
                </select>
            </label>
            <label class="check">
                <input type="checkbox" prop:checked=move || ui.clip.get() on:change=move |ev| ui.clip.set(event_target_checked(&ev)) />
                "Clip x̂₀ to [−1, 1] (official code); off: the paper's update"
            </label>
            <div class="actions">
                <button type="submit" class="primary" prop:disabled=move || !ready()>"Generate"</button>
                <button type="button" prop:disabled=move || !running() on:click=move |_| ui.cancel()>"Cancel"</button>
                <button type="button" prop:disabled=move || !ready() on:click=move |_| ui.benchmark()
                    title=format!("Time {} sampler steps at this many images, after a warm-up", ui.bench_steps)>"Benchmark"</button>
            </div>
        </form>
    }
}

#[component]
fn Progress() -> impl IntoView {
    let ui = ui();
    view! {
        {move || ui.run.get().map(|r| {
            let total = r.timesteps.len();
            let secs = r.elapsed_ms / 1e3;
            let rate = if secs > 0.0 { r.done as f64 / secs } else { 0.0 };
            view! {
                <div class="progress">
                    <progress aria-label="Sampling progress" max=total as f64 value=r.done as f64></progress>
                    <span data-testid="progress-text">{format!(
                        "step {} of {total} · {rate:.2} steps/s · {secs:.1} s{}",
                        r.done, if r.cancelled { " · cancelled" } else if r.finished { " · done" } else { "" }
                    )}</span>
                </div>
            }
        })}
    }
}

/// The last benchmark: a one-line summary and the JSON that `?bench` callers read from `#bench-result`.
#[component]
fn BenchResult() -> impl IntoView {
    let ui = ui();
    view! {
        {move || ui.bench_result.get().map(|json| {
            let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
            let summary = format!(
                "Benchmark: {:.1} ms per step at {} images ({:.1} images/s, {:.2} GFLOP/s, {} kernels) on {}; first frame after {:.0} ms",
                v["ms_per_step"].as_f64().unwrap_or(0.0), v["batch"], v["images_per_s"].as_f64().unwrap_or(0.0),
                v["gflops_per_s"].as_f64().unwrap_or(0.0), v["kernels"].as_str().unwrap_or("?"), v["adapter"].as_str().unwrap_or("?"),
                v["first_frame_ms"].as_f64().unwrap_or(0.0)
            );
            view! {
                <section class="bench" aria-label="Benchmark result">
                    <p>{summary}</p>
                    <pre id="bench-result">{json}</pre>
                </section>
            }
        })}
    }
}

#[component]
fn Viewer() -> impl IntoView {
    let ui = ui();
    // Redraw whenever the shown frame, the x̂_0 toggle, or the set of frames changes.
    Effect::new(move |_| {
        let idx = ui.shown.get();
        let x0 = ui.show_x0.get();
        let _ = ui.frame_count.get();
        let Some(run) = ui.run.get() else { return };
        ui.frames.with_value(|f| {
            if let Some(frame) = f.list.get(idx) {
                draw_images(if x0 { &frame.x0 } else { &frame.x }, run.batch);
            }
        });
    });
    let frame_t = move || {
        let _ = ui.frame_count.get();
        let idx = ui.shown.get();
        ui.frames.with_value(|f| f.list.get(idx).map(|fr| (fr.t, fr.t_model)))
    };
    let shown_t = Signal::derive(move || frame_t().map_or(0, |(t, _)| t));
    let save_grid_click = move |_| {
        let Some(run) = ui.run.get_untracked() else { return };
        let (idx, x0) = (ui.shown.get_untracked(), ui.show_x0.get_untracked());
        ui.frames.with_value(|f| {
            if let Some(fr) = f.list.get(idx) {
                let what = if x0 { "x0" } else { "x" };
                save_grid(if x0 { &fr.x0 } else { &fr.x }, run.batch, &format!("ddpm-seed{}-{what}-t{}.png", run.opts.seed, fr.t));
            }
        });
    };
    view! {
        {move || ui.run.get().map(|run| {
            let cols = ddpm_web::image::default_cols(run.batch.n);
            let seed = run.opts.seed;
            view! {
                <div class="grid" style=format!("grid-template-columns: repeat({cols}, 1fr)")>
                    {(0..run.batch.n).map(|i| view! {
                        <canvas id=image_id(i) class="image" role="img" aria-label=format!("image {}", i + 1)
                            title="Click to save this image as PNG"
                            on:click=move |_| save_image(i, &format!("ddpm-seed{seed}-{}-t{}.png", i + 1, shown_t.get_untracked()))></canvas>
                    }).collect_view()}
                </div>
            }
        })}
        {move || (ui.frame_count.get() > 0).then(|| view! {
            <div class="scrub">
                <label for="timestep">"Timestep"</label>
                <input id="timestep" type="range" min="0" aria-label="Timestep"
                    max=move || (ui.frame_count.get().saturating_sub(1)).to_string()
                    prop:value=move || ui.shown.get().to_string()
                    aria-valuetext=move || format!("t = {}", shown_t.get())
                    on:input=move |ev| {
                        let v: usize = event_target_value(&ev).parse().unwrap_or(0);
                        ui.shown.set(v);
                        ui.follow.set(v + 1 >= ui.frame_count.get_untracked());
                    } />
                <output for="timestep" data-testid="timestep-value">{move || format!("t = {}", shown_t.get())}</output>
                <label class="check">
                    <input type="checkbox" prop:checked=move || ui.show_x0.get() on:change=move |ev| ui.show_x0.set(event_target_checked(&ev)) />
                    "Show x̂₀ (prediction)"
                </label>
                <button type="button" on:click=save_grid_click>"Save grid as PNG"</button>
            </div>
            <div class="explain">
                {move || ui.info.get().map(|i| view! { <SnrPlot log_snr=i.log_snr t=shown_t /> })}
                <p class="formula" data-testid="formula">{move || formula(&ui, frame_t())}</p>
            </div>
        })}
    }
}

/// The update that produced the shown frame, with its numbers.
fn formula(ui: &Ui, frame: Option<(usize, Option<usize>)>) -> String {
    let Some((t, t_model)) = frame else { return String::new() };
    let Some((tm, c)) = ui.update_of(t_model) else { return format!("x_T ~ N(0, I): pure noise at t = {t}.") };
    let from = tm + 1;
    if c.clip != 0 {
        format!(
            "x̂₀ = clip({:.4}·x_{from} − {:.4}·ε_θ, −1, 1);  x_{t} = {:.4}·x̂₀ + {:.4}·x_{from} + {:.4}·z",
            c.x0_x, c.x0_eps, c.mean_x0, c.mean_xt, c.sigma
        )
    } else {
        format!("x_{t} = (x_{from} − {:.4}·ε_θ) · {:.4} + {:.4}·z", c.paper_eps / c.paper_x, c.paper_x, c.sigma)
    }
}
