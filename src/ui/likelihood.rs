//! "Likelihood of this image": the variational bound in bits/dim (src/diffusion/nll.rs, Ho et al. 2020 eq. 5)
//! for the forward explorer's picture, ε from the U-Net on the GPU, with a progress bar, Cancel, and the
//! terms drawn over t, so a person sees that most of the bits sit at small t (the decoder and the last
//! few KL terms). The page computes every 10th KL term above t = 10, reweighted, and says so: all 1000 would
//! take minutes on a CPU adapter.

use std::cell::Cell;
use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;

use ddpm_web::diffusion::nll::{Bound, BoundOptions, NllReport, UnetEps};
use ddpm_web::Error;

use super::forward::to_model;
use super::{Compute, Phase, Ui};

/// Every K-th KL term above the first K (the page's estimate).
const EVERY: usize = 10;
/// (image, t) pairs per U-Net pass.
const BATCH: usize = 8;

const W: f64 = 320.0;
const H: f64 = 110.0;

#[component]
pub fn Likelihood(x0: RwSignal<Vec<u8>>) -> impl IntoView {
    let ui = expect_context::<Ui>();
    let progress = RwSignal::new(None::<(usize, usize)>);
    let report = RwSignal::new(None::<NllReport>);
    let cancel = StoredValue::new_local(Rc::new(Cell::new(false)));
    let start = move |_| {
        if ui.phase.get_untracked() != Phase::Ready {
            return;
        }
        let Some(engine) = ui.engine.get_value() else { return };
        let flag = Rc::new(Cell::new(false));
        cancel.set_value(flag.clone());
        let x = to_model(&x0.get_untracked());
        let opts = BoundOptions { variance: ui.variance.get_untracked(), clip: false, every: EVERY, seed: ui.seed.get_untracked() };
        ui.phase.set(Phase::Running);
        ui.error.set(None);
        // A previous run's "cancelled" must not stand beside this one's result.
        ui.notice.set(None);
        report.set(None);
        progress.set(Some((0, 1)));
        spawn_local(async move {
            let result: Result<NllReport, Error> = async {
                let bound = Bound::new(&engine.schedule, opts)?;
                let keep_going = |done, total| {
                    progress.set(Some((done, total)));
                    !flag.get()
                };
                match &engine.compute {
                    Compute::Gpu(gpu, unet) => {
                        let (kernels, _) = unet.choose(gpu, BATCH, ui.kernel_choice).await?;
                        bound.run(&x, 1, &mut UnetEps::new(gpu, unet, kernels), BATCH, keep_going).await
                    }
                    Compute::Cpu(pool) => bound.run(&x, 1, &mut &**pool, BATCH, keep_going).await,
                }
            }
            .await;
            ui.phase.set(Phase::Ready);
            progress.set(None);
            match result {
                Ok(r) => report.set(Some(r)),
                Err(Error::Cancelled) => ui.notice.set(Some("The likelihood was cancelled.".into())),
                Err(e) => ui.error.set(Some(format!("The likelihood could not be computed: {e}"))),
            }
        });
    };
    view! {
        <h3>"Likelihood of this image"</h3>
        <p class="row">
            <button type="button" prop:disabled=move || ui.phase.get() != Phase::Ready on:click=start>"Compute bits/dim"</button>
            <button type="button" prop:disabled=move || progress.get().is_none() on:click=move |_| cancel.with_value(|c| c.set(true))>"Cancel likelihood"</button>
        </p>
        {move || progress.get().map(|(done, total)| view! {
            <progress aria-label="Likelihood progress" max=total.max(1) as f64 value=done as f64></progress>
        })}
        {move || report.get().map(|r| chart(&r))}
    }
}

/// The bound and its terms as bars over t (T at the left, as the sliders), height on a log scale.
fn chart(r: &NllReport) -> impl IntoView {
    let row = &r.terms_bits_per_dim[0];
    let t_len = row.len() - 1;
    // Each computed KL term stands for up to EVERY terms: show it per term, the height a person compares.
    let weight = |t: usize| if t < EVERY { 1.0 } else { EVERY as f64 };
    let bars: Vec<(usize, f64)> = row[..t_len].iter().enumerate().filter_map(|(t, v)| v.map(|v| (t, v / weight(t)))).filter(|(_, v)| *v > 0.0).collect();
    let (lo, hi) = bars.iter().fold((f64::MAX, f64::MIN), |(a, b), (_, v)| (a.min(v.log10()), b.max(v.log10())));
    let span = (hi - lo).max(1e-9);
    let x = |t: usize| 4.0 + (W - 8.0) * (1.0 - (t as f64 + 1.0) / t_len as f64);
    let l0 = row[0].unwrap_or(0.0);
    let prior = row[t_len].unwrap_or(0.0);
    let kl = r.bits_per_dim[0] - l0 - prior;
    view! {
        <figure class="plot">
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label="bits per dimension of each term of the bound over t" data-testid="nll-chart">
                {bars.iter().map(|&(t, v)| {
                    let h = 4.0 + (H - 8.0) * (v.log10() - lo) / span;
                    view! { <rect class="term" x=format!("{:.1}", x(t) - 1.0) y=format!("{:.1}", H - h) width="2" height=format!("{h:.1}")><title>{format!("t = {}: {v:.3e} bits/dim", t + 1)}</title></rect> }
                }).collect_view()}
            </svg>
            <figcaption data-testid="nll-result">{format!(
                "{:.3} bits/dim (an estimate: every term below t = {EVERY}, then one in {EVERY}; σ² = {}): decoder L₀ {l0:.3}, KL terms {kl:.3}, prior L_T {prior:.1e}. Bars: each term per t, log scale, t = T at the left.",
                r.bits_per_dim[0], if r.variance == "small" { "β̃ₜ" } else { "βₜ" }
            )}</figcaption>
        </figure>
    }
}
