//! A small SVG plot of log SNR_t = log(ᾱ_t / (1 − ᾱ_t)) over t, with a marker at the shown step.

use leptos::prelude::*;

const W: f64 = 240.0;
const H: f64 = 90.0;
const PAD: f64 = 6.0;

/// `log_snr[i]` is at network timestep i (paper t = i + 1); x runs from t = T (left) to 0 (right), as the slider.
#[component]
pub fn SnrPlot(log_snr: Vec<f64>, #[prop(into)] t: Signal<usize>) -> impl IntoView {
    let total = log_snr.len().max(1) as f64;
    let (lo, hi) = log_snr.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let span = (hi - lo).max(1e-9);
    let x = move |paper_t: f64| PAD + (W - 2.0 * PAD) * (1.0 - paper_t / total);
    let y = move |v: f64| PAD + (H - 2.0 * PAD) * (hi - v) / span;
    let step = (log_snr.len() / 200).max(1);
    let points: String = log_snr.iter().enumerate().step_by(step).map(|(i, &v)| format!("{:.1},{:.1} ", x(i as f64 + 1.0), y(v))).collect();
    let values = log_snr.clone();
    let marker = Memo::new(move |_| {
        let pt = t.get();
        // x_t at paper t ≥ 1 has log SNR at index t − 1; x_0 is off the schedule's end: pin it to the last point.
        let v = values.get(pt.saturating_sub(1)).or(values.last()).copied().unwrap_or(0.0);
        (x(pt as f64), y(v))
    });
    view! {
        <figure class="plot">
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label="log signal-to-noise ratio over the timesteps">
                <polyline points=points class="curve" />
                <line x1=move || marker.get().0 x2=move || marker.get().0 y1="0" y2=H class="now-line" />
                <circle cx=move || marker.get().0 cy=move || marker.get().1 r="3.5" class="now" />
            </svg>
            <figcaption>
                {format!("log SNR from {hi:.1} (t = 1) to {lo:.1} (t = T)")}
            </figcaption>
        </figure>
    }
}
