//! The 2-D playground on the page: the mixture's noised density p_t as a heat map, its exact score as
//! arrows, and a particle cloud moved by the chosen sampler (maths in `ddpm_web::playground`, on the CPU:
//! no U-Net, so it works without WebGPU too). Frames come from requestAnimationFrame while particles run;
//! otherwise the canvas is redrawn only when t, the mixture or the sampler changes.

use std::cell::RefCell;
use std::rc::Rc;

use leptos::prelude::*;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use ddpm_web::playground::{alpha_bar_at, prior, Density, Mixture, Particles, RunOptions, SamplerKind, MAX_COMPONENTS};
use ddpm_web::{Schedule, Variance};

use super::loader::now_ms;
use super::Ui;

/// Canvas size in pixels, and the square of the plane it shows: [−VIEW, VIEW]², which holds N(0, I)'s
/// bulk (the start of every run) and the demo mixture.
const SIZE: u32 = 480;
const VIEW: f64 = 3.0;
/// The heat map is computed at this resolution and scaled up smoothly: 3x fewer density evaluations
/// per axis than pixels, invisible once smoothed.
const HEAT: usize = 160;
const ARROWS: usize = 17;
const PARTICLES: usize = 2000;
/// ODE particles whose path is drawn.
const TRAILS: usize = 80;
/// Sampler moves per animation frame: a 1,000-move run takes about 3 s at 60 frames per second.
const MOVES_PER_FRAME: usize = 5;
/// Every run starts from this same N(0, I) draw, so two ODE runs end on the same points while the
/// stochastic samplers, whose own noise changes each run, do not.
const START_SEED: u64 = 0;
/// Variance of a component added by a click.
const CLICK_VAR: f64 = 0.04;

/// What is drawn but not reactive: the cloud, the cached heat map, the animation callback.
#[derive(Default)]
struct Scene {
    particles: Option<Particles>,
    /// The heat map for (t, mixture), drawn into an off-screen canvas at HEAT x HEAT.
    heat: Option<(usize, Mixture, HtmlCanvasElement)>,
    frame: Option<Closure<dyn FnMut()>>,
    scheduled: bool,
    runs: u64,
}

#[derive(Clone, Copy)]
struct State {
    mixture: RwSignal<Mixture>,
    t: RwSignal<usize>,
    kind: RwSignal<SamplerKind>,
    running: RwSignal<bool>,
    /// (sampler, moves done, moves in the run) of the cloud shown, if any: the select may have changed since.
    progress: RwSignal<Option<(SamplerKind, usize, usize)>>,
    /// The share of particles nearest each data mode, beside the mixture's weights.
    shares: RwSignal<Option<Vec<f64>>>,
    /// Milliseconds per animation frame spent on the samplers' maths and on drawing (smoothed).
    frame_ms: RwSignal<(f64, f64)>,
    canvas: NodeRef<leptos::html::Canvas>,
    scene: StoredValue<Rc<RefCell<Scene>>, LocalStorage>,
    schedule: StoredValue<Rc<Schedule>, LocalStorage>,
}

fn to_px(v: f64) -> f64 {
    (v + VIEW) / (2.0 * VIEW) * SIZE as f64
}

fn to_py(v: f64) -> f64 {
    (VIEW - v) / (2.0 * VIEW) * SIZE as f64
}

/// Magma-like colours for a value in [0, 1] (dark for low density, so particles and arrows stand out).
fn colour(v: f64) -> [u8; 3] {
    // Ends at orange, not yellow, so the cyan particles stay visible on the modes' peaks.
    const STOPS: [[f64; 3]; 5] = [[8.0, 6.0, 30.0], [60.0, 18.0, 100.0], [150.0, 40.0, 110.0], [220.0, 85.0, 70.0], [245.0, 160.0, 70.0]];
    let x = v.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let c = |k: usize| (STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * f) as u8;
    [c(0), c(1), c(2)]
}

/// p_t over the view as an off-screen canvas. Shown as √(p / max p) so the low-density valleys between
/// modes, where plain Langevin gets stuck, are still visible.
fn heat_canvas(density: &Density) -> Option<HtmlCanvasElement> {
    let doc = web_sys::window()?.document()?;
    let canvas: HtmlCanvasElement = doc.create_element("canvas").ok()?.dyn_into().ok()?;
    canvas.set_width(HEAT as u32);
    canvas.set_height(HEAT as u32);
    let cell = 2.0 * VIEW / HEAT as f64;
    let xs: Vec<f64> = (0..HEAT).map(|i| -VIEW + (i as f64 + 0.5) * cell).collect();
    let ys: Vec<f64> = (0..HEAT).map(|j| VIEW - (j as f64 + 0.5) * cell).collect();
    let p = density.density_grid(&xs, &ys);
    let max = p.iter().copied().fold(0.0, f64::max);
    let mut rgba = vec![255u8; HEAT * HEAT * 4];
    for (px, v) in rgba.chunks_exact_mut(4).zip(&p) {
        px[..3].copy_from_slice(&colour(if max > 0.0 { (v / max).sqrt() } else { 0.0 }));
    }
    let ctx: CanvasRenderingContext2d = canvas.get_context("2d").ok()??.dyn_into().ok()?;
    let data = web_sys::ImageData::new_with_u8_clamped_array_and_sh(Clamped(&rgba), HEAT as u32, HEAT as u32).ok()?;
    ctx.put_image_data(&data, 0.0, 0.0).ok()?;
    Some(canvas)
}

/// Score arrows on a grid: direction of ∇ log p_t, length growing with |∇ log p_t| but capped at a
/// cell, relative to the median, since the score spans orders of magnitude between modes and far out.
fn draw_arrows(ctx: &CanvasRenderingContext2d, density: &Density) {
    let step = 2.0 * VIEW / ARROWS as f64;
    let mut arrows = Vec::with_capacity(ARROWS * ARROWS);
    for i in 0..ARROWS {
        for j in 0..ARROWS {
            let p = [-VIEW + (i as f64 + 0.5) * step, -VIEW + (j as f64 + 0.5) * step];
            let s = density.score(p);
            arrows.push((p, s, s[0].hypot(s[1])));
        }
    }
    let mut mags: Vec<f64> = arrows.iter().map(|a| a.2).filter(|m| m.is_finite()).collect();
    mags.sort_by(f64::total_cmp);
    let reference = mags.get(mags.len() / 2).copied().unwrap_or(1.0).max(1e-9);
    let cell_px = SIZE as f64 / ARROWS as f64;
    ctx.begin_path();
    for (p, s, m) in arrows {
        if !(m.is_finite() && m > 0.0) {
            continue;
        }
        let len = 0.85 * cell_px * m / (m + reference);
        let (ux, uy) = (s[0] / m, -s[1] / m);
        let (x0, y0) = (to_px(p[0]) - 0.5 * len * ux, to_py(p[1]) - 0.5 * len * uy);
        let (x1, y1) = (x0 + len * ux, y0 + len * uy);
        ctx.move_to(x0, y0);
        ctx.line_to(x1, y1);
        let head = len.min(6.0) * 0.5;
        ctx.move_to(x1 - head * (ux - 0.6 * uy), y1 - head * (uy + 0.6 * ux));
        ctx.line_to(x1, y1);
        ctx.line_to(x1 - head * (ux + 0.6 * uy), y1 - head * (uy - 0.6 * ux));
    }
    ctx.set_stroke_style_str("rgba(255, 255, 255, 0.55)");
    ctx.set_line_width(1.2);
    ctx.stroke();
}

fn draw(st: &State) -> Option<()> {
    let canvas: HtmlCanvasElement = st.canvas.get_untracked()?;
    let ctx: CanvasRenderingContext2d = canvas.get_context("2d").ok()??.dyn_into().ok()?;
    let schedule = st.schedule.get_value();
    let scene = st.scene.get_value();
    let mut scene = scene.try_borrow_mut().ok()?;
    let t = st.t.get_untracked().min(schedule.len());
    let density = st.mixture.with_untracked(|m| m.density_at(&schedule, t));
    let stale = st.mixture.with_untracked(|m| !matches!(&scene.heat, Some((ht, hm, _)) if *ht == t && hm == m));
    if stale {
        scene.heat = heat_canvas(&density).map(|c| (t, st.mixture.get_untracked(), c));
    }
    ctx.set_image_smoothing_enabled(true);
    match &scene.heat {
        Some((_, _, heat)) => ctx.draw_image_with_html_canvas_element_and_dw_and_dh(heat, 0.0, 0.0, SIZE as f64, SIZE as f64).ok()?,
        None => {
            ctx.set_fill_style_str("#080620");
            ctx.fill_rect(0.0, 0.0, SIZE as f64, SIZE as f64);
        }
    }
    draw_arrows(&ctx, &density);
    // Where the data's modes are (t = 0), so a cloud that misses one is easy to see.
    ctx.begin_path();
    st.mixture.with_untracked(|m| {
        for c in &m.components {
            let (x, y) = (to_px(c.mean[0]), to_py(c.mean[1]));
            ctx.move_to(x + 5.0, y);
            let _ = ctx.arc(x, y, 5.0, 0.0, std::f64::consts::TAU);
        }
    });
    ctx.set_stroke_style_str("rgba(255, 255, 255, 0.9)");
    ctx.set_line_width(1.5);
    ctx.stroke();
    st.shares.set(scene.particles.as_ref().map(|p| st.mixture.with_untracked(|m| m.shares(&p.x))));
    if let Some(p) = &scene.particles {
        if !p.trails.is_empty() {
            ctx.begin_path();
            for trail in &p.trails {
                // At most ~100 points per path keeps 80 trails cheap to stroke every frame.
                let stride = (trail.len() / 100).max(1);
                let mut pts = trail.iter().step_by(stride).chain(trail.last());
                if let Some(first) = pts.next() {
                    ctx.move_to(to_px(first[0] as f64), to_py(first[1] as f64));
                    for q in pts {
                        ctx.line_to(to_px(q[0] as f64), to_py(q[1] as f64));
                    }
                }
            }
            ctx.set_stroke_style_str("rgba(120, 255, 170, 0.55)");
            ctx.set_line_width(1.0);
            ctx.stroke();
        }
        ctx.begin_path();
        for q in &p.x {
            ctx.rect(to_px(q[0]) - 1.0, to_py(q[1]) - 1.0, 2.0, 2.0);
        }
        ctx.set_fill_style_str("#5fd3ff");
        ctx.fill();
    }
    Some(())
}

/// One animation frame: advance the cloud, let the slider follow the run's t, draw, ask for the next.
fn frame(st: State) {
    let scene = st.scene.get_value();
    let start = now_ms();
    let mut more = false;
    if let Ok(mut s) = scene.try_borrow_mut() {
        s.scheduled = false;
        let schedule = st.schedule.get_value();
        if let (Some(p), true) = (s.particles.as_mut(), st.running.get_untracked()) {
            st.mixture.with_untracked(|m| p.advance(m, &schedule, MOVES_PER_FRAME));
            st.progress.set(Some((p.kind, p.moves_done(), p.total_moves())));
            if p.kind != SamplerKind::Langevin {
                st.t.set(p.current_t());
            }
            more = !p.is_done();
        }
    }
    let maths = now_ms() - start;
    draw(&st);
    let drawing = now_ms() - start - maths;
    st.frame_ms.update(|(a, b)| {
        *a = if *a == 0.0 { maths } else { 0.9 * *a + 0.1 * maths };
        *b = if *b == 0.0 { drawing } else { 0.9 * *b + 0.1 * drawing };
    });
    if more {
        schedule_frame(&st);
    } else {
        st.running.set(false);
    }
}

fn schedule_frame(st: &State) {
    let scene = st.scene.get_value();
    let Ok(mut s) = scene.try_borrow_mut() else { return };
    if s.scheduled {
        return;
    }
    if s.frame.is_none() {
        let st = *st;
        s.frame = Some(Closure::new(move || frame(st)));
    }
    if let (Some(w), Some(f)) = (web_sys::window(), s.frame.as_ref()) {
        s.scheduled = w.request_animation_frame(f.as_ref().unchecked_ref()).is_ok();
    }
}

#[component]
pub fn Playground() -> impl IntoView {
    let page = use_context::<Ui>();
    // The paper's linear schedule, T = 1000 (that of the shipped model): the playground has no model.
    let schedule = Rc::new(Schedule::linear(1000, 1e-4, 0.02));
    let big_t = schedule.len();
    let st = State {
        mixture: RwSignal::new(Mixture::demo()),
        t: RwSignal::new(0),
        kind: RwSignal::new(SamplerKind::Ddpm),
        running: RwSignal::new(false),
        progress: RwSignal::new(None),
        frame_ms: RwSignal::new((0.0, 0.0)),
        shares: RwSignal::new(None),
        canvas: NodeRef::new(),
        scene: StoredValue::new_local(Rc::new(RefCell::new(Scene::default()))),
        schedule: StoredValue::new_local(schedule),
    };

    // Redraw on anything the picture depends on (the animation draws by itself while running).
    Effect::new(move |_| {
        st.mixture.track();
        st.t.track();
        let _ = st.canvas.get();
        if !st.running.get_untracked() {
            draw(&st);
        }
    });

    // The page's Timestep slider moves the playground's t too (scaled if the model's T differs), so the
    // density shown is that of the x_t the image run shows.
    if let Some(ui) = page {
        Effect::new(move |prev: Option<Option<usize>>| {
            let _ = ui.frame_count.get();
            let idx = ui.shown.get();
            let frame_t = ui.frames.with_value(|f| f.list.get(idx).map(|fr| fr.t));
            let model_t = ui.info.get_untracked().map_or(big_t, |i| i.steps).max(1);
            if let Some(ft) = frame_t {
                if prev.flatten() != Some(ft) && !st.running.get_untracked() {
                    st.t.set(((ft * big_t) as f64 / model_t as f64).round() as usize);
                }
            }
            frame_t
        });
    }

    let run = move |_| {
        let opts = RunOptions {
            kind: st.kind.get_untracked(),
            t: st.t.get_untracked(),
            variance: page.map_or(Variance::Small, |ui| ui.variance.get_untracked()),
            trails: if st.kind.get_untracked() == SamplerKind::ProbabilityFlow { TRAILS } else { 0 },
            seed: 0,
        };
        let scene = st.scene.get_value();
        if let Ok(mut s) = scene.try_borrow_mut() {
            s.runs += 1;
            let opts = RunOptions { seed: s.runs, ..opts };
            let schedule = st.schedule.get_value();
            let p = st.mixture.with_untracked(|m| Particles::new(opts, m, &schedule, prior(PARTICLES, START_SEED)));
            st.progress.set(Some((p.kind, 0, p.total_moves())));
            s.particles = Some(p);
        } else {
            return;
        }
        if opts.kind != SamplerKind::Langevin {
            st.t.set(big_t);
        }
        st.running.set(true);
        schedule_frame(&st);
    };
    let reset = move |_| {
        st.running.set(false);
        st.progress.set(None);
        if let Ok(mut s) = st.scene.get_value().try_borrow_mut() {
            s.particles = None;
        }
        st.mixture.set(Mixture::demo());
    };
    let add = move |ev: leptos::ev::MouseEvent| {
        let Some(canvas) = st.canvas.get_untracked() else { return };
        let (w, h) = (canvas.client_width().max(1) as f64, canvas.client_height().max(1) as f64);
        let x = (ev.offset_x() as f64 / w * 2.0 - 1.0) * VIEW;
        let y = (1.0 - ev.offset_y() as f64 / h * 2.0) * VIEW;
        st.mixture.update(|m| m.add([x, y], CLICK_VAR));
        if st.running.get_untracked() {
            return;
        }
        draw(&st);
    };

    let alpha_bar = move || st.schedule.with_value(|s| alpha_bar_at(s, st.t.get().min(s.len())));
    let status = move || {
        let kind = st.kind.get();
        let (maths, drawing) = st.frame_ms.get();
        let timing = if maths > 0.0 { format!(" · {maths:.1} ms of maths + {drawing:.1} ms of drawing per frame") } else { String::new() };
        match st.progress.get() {
            Some((ran, done, total)) => format!("{}: move {done} of {total} · {PARTICLES} particles{timing}", ran.label()),
            None => format!("{}: press Run particles ({PARTICLES} particles from N(0, I))", kind.label()),
        }
    };

    view! {
        <section class="playground" aria-labelledby="playground-title">
            // No "sampler" in this name either: the section is labelled by it, and getByLabel('Sampler') would match it.
            <h2 id="playground-title">"2-D playground: the exact score, Langevin and the reverse process"</h2>
            <div class="playground-body">
                <canvas node_ref=st.canvas width=SIZE height=SIZE role="img" aria-label="2-D playground"
                    title="Click to add a mixture component here" on:click=add></canvas>
                <div class="playground-controls">
                    // Not "… sampler": the page's own select is labelled "Sampler", and tests find it by that word.
                    <label>"Move particles with"
                        <select prop:value=move || st.kind.get().name()
                            on:change=move |ev| if let Some(k) = SamplerKind::from_name(&event_target_value(&ev)) { st.kind.set(k) }>
                            {SamplerKind::ALL.into_iter().map(|k| view! { <option value=k.name()>{k.label()}</option> }).collect_view()}
                        </select>
                    </label>
                    <label>"Playground t"
                        <input type="range" min="0" max=big_t.to_string() aria-label="Playground t"
                            prop:value=move || st.t.get().to_string()
                            on:input=move |ev| st.t.set(event_target_value(&ev).parse::<usize>().unwrap_or(0).min(big_t)) />
                        <output data-testid="playground-t">{move || format!("t = {} · ᾱ = {:.4}", st.t.get(), alpha_bar())}</output>
                    </label>
                    <div class="actions">
                        <button type="button" class="primary" on:click=run>"Run particles"</button>
                        <button type="button" on:click=reset>"Reset mixture"</button>
                    </div>
                    <p class="playground-status" role="status" data-testid="playground-status">{status}</p>
                    {move || st.shares.get().map(|sh| {
                        let pct = |v: &[f64]| v.iter().map(|x| format!("{:.0}%", 100.0 * x)).collect::<Vec<_>>().join(" · ");
                        let weights = st.mixture.with(|m| m.proportions());
                        view! {
                            <p class="playground-status" data-testid="playground-shares">
                                {format!("Particles nearest each mode: {}; the mixture's weights: {}", pct(&sh), pct(&weights))}
                            </p>
                        }
                    })}
                    <p class="caption">
                        "The data are a mixture of Gaussians (white rings; click the plane to add one; past "
                        {MAX_COMPONENTS.to_string()}
                        " the oldest goes). The colours are its density after noising to t, p_t = N(√ᾱ·μ, ᾱ·Σ + (1 − ᾱ)·I) per component, and the arrows "
                        "its exact score ∇ log p_t = −ε/√(1 − ᾱ): what a perfect network would predict. Every run starts "
                        "from the same N(0, I) cloud and uses that exact score. DDPM, the reverse SDE and the ODE walk t from "
                        "T to 0 (the slider follows; DDPM's σ² is the page's Variance setting); the ODE adds no noise, so its paths (green) are the same on every run. "
                        "Annealed Langevin samples 10 noise levels in turn; plain Langevin samples only p_t at the slider's t: "
                        "at small t it cannot cross the empty valleys between modes, so it fills the modes nearest the start "
                        "and misses far ones, while the annealed run finds every mode in proportion."
                    </p>
                </div>
            </div>
        </section>
    }
}
