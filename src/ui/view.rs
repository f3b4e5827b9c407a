//! The components: what the user sees, each named for it.

use leptos::prelude::*;

use super::canvas::{draw_images, image_id, save_grid, save_image, x0_id};
use super::forward::ForwardExplorer;
use super::playground::Playground;
use super::plot::SnrPlot;
use super::{Phase, RunOn, Ui};
use ddpm_web::diffusion::samplers::{Pass, Update};
use ddpm_web::{SamplerKind, Variance};

#[component]
pub fn App() -> impl IntoView {
    let ui = Ui::new();
    provide_context(ui);
    ui.load();
    view! {
        <header>
            <h1>"ddpm-web"</h1>
            <p class="tagline">"Denoising diffusion (Ho et al. 2020) running on your own GPU, in WGSL through WebGPU, or on your CPU in WebAssembly where WebGPU is missing."</p>
            <RunOnIndicator />
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
                <div class="views">
                    <div class="reverse"><Viewer /></div>
                    <ForwardExplorer />
                </div>
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
        {move || ui.fallback.get().map(|m| view! { <p role="status" class="notice fallback" data-testid="fallback">{m}</p> })}
    }
}

/// Which path runs the model, always in view: "GPU" (WebGPU) or "CPU" (WebAssembly in Web Workers).
#[component]
fn RunOnIndicator() -> impl IntoView {
    let ui = ui();
    view! {
        {move || ui.run_on.get().map(|on| {
            let (label, title) = match on {
                RunOn::Gpu => ("GPU", "The network runs on your GPU through WebGPU."),
                RunOn::Cpu => ("CPU", "The network runs on your CPU in WebAssembly, in Web Workers."),
            };
            view! { <p class="run-on" data-testid="run-on" title=title>"Run on: " <strong>{label}</strong></p> }
        })}
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
                    <dt>"Runs on"</dt><dd data-testid="adapter">{i.adapter}</dd>
                    <dt>"Model"</dt><dd data-testid="model-info-url">{format!("{} ({}×{}×{})", i.url, i.image.0, i.image.1, i.image.2)}</dd>
                    <dt>"Parameters"</dt><dd data-testid="parameters">{format!("{:.2} M; {:.2} GFLOP per image per step", i.parameters as f64 / 1e6, i.gflop)}</dd>
                    <dt>"Trained on"</dt><dd>{i.dataset}</dd>
                    <dt>"T"</dt><dd>{i.steps}</dd>
                    <dt>"Kernels"</dt><dd data-testid="kernels">{move || ui.kernels_used.get().unwrap_or_default()}</dd>
                    <dt>"Precision"</dt><dd data-testid="precision">{move || ui.precision_used.get().unwrap_or_default()}</dd>
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
            <label>"Sampler"
                <select prop:value=move || ui.sampler.get().name()
                    on:change=move |ev| {
                        let Ok(k) = event_target_value(&ev).parse::<SamplerKind>() else { return };
                        // The ODE samplers and DDIM are meant for few steps: start them at 50, not T.
                        if matches!(k, SamplerKind::Ddim | SamplerKind::Euler | SamplerKind::Heun) && steps_shown() == total() {
                            ui.steps.set(50.min(total()));
                        }
                        ui.sampler.set(k);
                    }>
                    {SamplerKind::ALL.iter().map(|k| view! { <option value=k.name() title=k.describe()>{k.label()}</option> }).collect_view()}
                </select>
                <small>{move || ui.sampler.get().describe()}</small>
            </label>
            <label>"Steps"
                // 0 until a model loads means "the model's T": shown as the full chain, not as 0.
                <input type="number" min="1" max=move || total().to_string() prop:value=move || steps_shown().to_string()
                    on:change=move |ev| { let v = event_target_value(&ev).parse().unwrap_or(1usize); ui.steps.set(v.clamp(1, total())); } />
                <small>{move || if steps_shown() == total() { "the paper's full chain".to_string() } else { format!("respaced: every {}th timestep", total() / steps_shown().max(1)) }}</small>
            </label>
            <SamplerSettings />
            <div class="actions">
                <button type="submit" class="primary" prop:disabled=move || !ready()>"Generate"</button>
                <button type="button" prop:disabled=move || !running() on:click=move |_| ui.cancel()>"Cancel"</button>
                <button type="button" prop:disabled=move || !ready() on:click=move |_| ui.benchmark()
                    title=format!("Time {} sampler steps at this many images, after a warm-up", ui.bench_steps)>"Benchmark"</button>
            </div>
        </form>
    }
}

/// The settings of the chosen sampler, and only those.
#[component]
fn SamplerSettings() -> impl IntoView {
    let ui = ui();
    move || match ui.sampler.get() {
        SamplerKind::Ddpm => view! {
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
        }
        .into_any(),
        SamplerKind::Ddim => view! {
            <label>"η (0: deterministic, 1: DDPM's noise)"
                <input type="number" min="0" max="1" step="0.1" prop:value=move || ui.eta.get().to_string()
                    on:change=move |ev| ui.eta.set(event_target_value(&ev).parse().unwrap_or(0.0)) />
            </label>
        }
        .into_any(),
        SamplerKind::Langevin | SamplerKind::Pc => view! {
            <label>{move || if ui.sampler.get() == SamplerKind::Pc { "Corrector steps per level" } else { "Langevin steps per level" }}
                <input type="number" min="1" max="100" prop:value=move || ui.langevin_steps.get().to_string()
                    on:change=move |ev| ui.langevin_steps.set(event_target_value(&ev).parse().unwrap_or(1)) />
            </label>
            <label>"Signal-to-noise ratio r (step size 2α(r‖z‖/‖s‖)²)"
                <input type="number" min="0.01" max="1" step="0.01" prop:value=move || ui.snr.get().to_string()
                    on:change=move |ev| ui.snr.set(event_target_value(&ev).parse().unwrap_or(0.16)) />
            </label>
        }
        .into_any(),
        SamplerKind::Euler | SamplerKind::Heun | SamplerKind::Sde => view! {
            <p class="hint">{move || match ui.sampler.get() {
                SamplerKind::Sde => "dx = [−½β x − β ∇log pₜ(x)] dt + √β dw̄, stepped by Euler–Maruyama; ∇log pₜ ≈ −ε_θ/√(1−ᾱₜ).",
                SamplerKind::Heun => "dx_σ/dσ = ε_θ: each step averages the slope at both ends (two network passes).",
                _ => "dx_σ/dσ = ε_θ: the deterministic probability-flow ODE, one network pass per step.",
            }}</p>
        }
        .into_any(),
    }
}

#[component]
fn Progress() -> impl IntoView {
    let ui = ui();
    view! {
        {move || ui.run.get().map(|r| {
            let total = r.passes.len();
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

/// After a run from noise: a walk between two of its images through latent space (their x_T interpolated on
/// the great circle, then denoised together; section 1.9 of the notes).
#[component]
fn WalkBetween() -> impl IntoView {
    let ui = ui();
    let from = RwSignal::new(1usize);
    let to = RwSignal::new(2usize);
    let ready = move || ui.phase.get() == Phase::Ready;
    view! {
        {move || ui.run.get().filter(|r| r.walkable && r.finished && r.batch.n >= 2).map(|r| {
            let n = r.batch.n;
            let pick = move |sig: RwSignal<usize>| move |ev: leptos::ev::Event| sig.set(event_target_value(&ev).parse().unwrap_or(1usize).clamp(1, n));
            view! {
                <div class="walk">
                    <label>"Walk from image" <input type="number" min="1" max=n.to_string() prop:value=move || from.get().to_string() on:change=pick(from) /></label>
                    <label>"to image" <input type="number" min="1" max=n.to_string() prop:value=move || to.get().to_string() on:change=pick(to) /></label>
                    <button type="button" prop:disabled=move || !ready() on:click=move |_| ui.walk(from.get_untracked() - 1, to.get_untracked() - 1, 8)>"Walk (8 images)"</button>
                    <p class="hint">"Their x_T, interpolated on the great circle, denoised by the current sampler with one shared noise; with DDIM (η = 0), Euler or Heun and this run's settings the ends are these two images."</p>
                </div>
            }
        })}
    }
}

#[component]
fn Viewer() -> impl IntoView {
    let ui = ui();
    // Redraw x_t and x̂_0 whenever the shown frame or the set of frames changes.
    Effect::new(move |_| {
        let idx = ui.shown.get();
        let _ = ui.frame_count.get();
        let Some(run) = ui.run.get() else { return };
        ui.frames.with_value(|f| {
            if let Some(frame) = f.list.get(idx) {
                draw_images(&frame.x, run.batch, image_id);
                draw_images(&frame.x0, run.batch, x0_id);
            }
        });
    });
    let frame_t = move || {
        let _ = ui.frame_count.get();
        let idx = ui.shown.get();
        ui.frames.with_value(|f| f.list.get(idx).map(|fr| (fr.t, fr.index)))
    };
    let shown_t = Signal::derive(move || frame_t().map_or(0, |(t, _)| t));
    let save_grid_click = move |x0: bool| {
        let Some(run) = ui.run.get_untracked() else { return };
        let idx = ui.shown.get_untracked();
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
            // x_t and the model's x̂_0 at once, so a person sees what the network believes behind the noise.
            view! {
                <div class="pair-grids">
                    <figure>
                        <div class="grid" style=format!("grid-template-columns: repeat({cols}, 1fr)")>
                            {(0..run.batch.n).map(|i| view! {
                                <canvas id=image_id(i) class="image" role="img" aria-label=format!("image {}", i + 1)
                                    title="Click to save this image as PNG"
                                    on:click=move |_| save_image(&image_id(i), &format!("ddpm-seed{seed}-{}-t{}.png", i + 1, shown_t.get_untracked()))></canvas>
                            }).collect_view()}
                        </div>
                        <figcaption>{move || format!("x_{}", shown_t.get())}</figcaption>
                    </figure>
                    <figure>
                        <div class="grid" style=format!("grid-template-columns: repeat({cols}, 1fr)")>
                            {(0..run.batch.n).map(|i| view! {
                                <canvas id=x0_id(i) class="prediction" role="img" aria-label=format!("prediction {}", i + 1)
                                    title="Click to save this prediction as PNG"
                                    on:click=move |_| save_image(&x0_id(i), &format!("ddpm-seed{seed}-{}-x0-t{}.png", i + 1, shown_t.get_untracked()))></canvas>
                            }).collect_view()}
                        </div>
                        // x_T has no prediction yet: the first update makes one.
                        <figcaption>{move || if frame_t().is_some_and(|f| f.1 == 0) { "x̂₀: none yet at x_T" } else { "x̂₀, the model's prediction" }}</figcaption>
                    </figure>
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
                        ui.forward_t.set(shown_t.get_untracked());
                    } />
                <output for="timestep" data-testid="timestep-value">{move || format!("t = {}", shown_t.get())}</output>
                <button type="button" on:click=move |_| save_grid_click(false)>"Save grid as PNG"</button>
                <button type="button" on:click=move |_| save_grid_click(true)>"Save x̂₀ grid as PNG"</button>
            </div>
            <WalkBetween />
            <div class="explain">
                {move || ui.info.get().map(|i| view! { <SnrPlot log_snr=i.log_snr t=shown_t /> })}
                <p class="formula" data-testid="formula">{move || formula(&ui, frame_t())}</p>
            </div>
        })}
    }
}

/// The update that produced the shown frame, with its numbers.
fn formula(ui: &Ui, frame: Option<(usize, usize)>) -> String {
    let Some((t, index)) = frame else { return String::new() };
    let Some(pass) = ui.pass_of(index) else {
        let image = ui.run.with_untracked(|r| r.as_ref().is_some_and(|r| r.opts.start_t.is_some()));
        return if image {
            format!("The start (SDEdit): x₀ noised to t = {t}, √ᾱ·x₀ + √(1 − ᾱ)·z, a new z for each image.")
        } else {
            format!("The start: x ~ N(0, I), at the run's first noise level t = {t}.")
        };
    };
    describe_update(&pass, t)
}

/// An affine term "+ 0.1234·name", or nothing when the coefficient is 0.
fn term(c: f32, name: &str, first: &mut bool) -> String {
    if c == 0.0 {
        return String::new();
    }
    let sign = if c < 0.0 { "−" } else if *first { "" } else { "+" };
    let s = if *first { format!("{sign}{:.4}·{name}", c.abs()) } else { format!(" {sign} {:.4}·{name}", c.abs()) };
    *first = false;
    s
}

fn describe_update(pass: &Pass, t: usize) -> String {
    let from = format!("x(t_model = {})", if pass.t_model.fract() == 0.0 { format!("{}", pass.t_model) } else { format!("{:.2}", pass.t_model) });
    match pass.update {
        Update::Affine(c) | Update::HeunPredict(c) | Update::HeunCorrect(c) => {
            let pred = format!("{:.4}·x − {:.4}·ε_θ", c.x0_x, c.x0_eps);
            let x0 = if c.clip < 1e30 { format!("x̂₀ = clip({pred}, −{0}, {0})", c.clip) } else { format!("x̂₀ = {pred}") };
            let mut first = true;
            let mut rhs = String::new();
            for (v, name) in [(c.to_x0, "x̂₀"), (c.to_x, "x"), (c.to_eps, "ε_θ"), (c.to_z, "z"), (c.to_saved, "x_prev"), (c.to_deriv, "d_prev")] {
                rhs.push_str(&term(v, name, &mut first));
            }
            let stage = match pass.update {
                Update::HeunPredict(_) => " (Heun, first stage: an Euler step)",
                Update::HeunCorrect(_) => " (Heun, second stage: the average of both slopes)",
                _ => "",
            };
            format!("{x0};  x_{t} = {rhs}  where x = {from}{stage}")
        }
        Update::Renoise(c) => format!(
            "RePaint: back up the chain without the network, x_{t} = {:.4}·x + {:.4}·z, then the same steps again",
            c.to_x, c.to_z
        ),
        Update::Langevin(c) => format!(
            "Langevin at {from}: s = {:.4}·ε_θ ≈ ∇log pₜ(x);  x ← x + δ·s + √(2δ)·z,  δ = 2·{:.5}·({}·‖z‖/‖s‖)²",
            c.score_eps, c.alpha, c.snr
        ),
    }
}
