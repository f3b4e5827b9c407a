//! The page's CPU path: a few Web Workers (`src/bin/cpu-worker.rs`, one wasm instance each) that each load
//! the model and run a share of the batch; the page asks all of them for a step and joins their frames.
//! Shared-memory wasm threads would need a nightly toolchain; separate workers need nothing but postMessage.

use std::cell::RefCell;
use std::rc::Rc;

use futures_channel::oneshot;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use ddpm_web::cpu::worker::{join, split, Job, JobInit, Reply, Request};
use ddpm_web::bench::{step_counts, BenchReport};
use ddpm_web::diffusion::nll::EpsSource;
use ddpm_web::diffusion::samplers::{Method, Program};
use ddpm_web::{Error, Frame, Schedule, SchedulerConfig, Variance};

use super::loader::now_ms;

/// The worker script Trunk writes (`data-loader-shim` in index.html; Trunk does not hash worker names).
const WORKER_URL: &str = "./cpu-worker_loader.js";

/// At most this many workers, whatever the machine has: each holds a copy of the model, and a batch of a
/// few images gains little past four.
const MAX_WORKERS: usize = 4;

struct Slot {
    worker: web_sys::Worker,
    /// Where the answer to the request in flight goes.
    pending: Rc<RefCell<Option<oneshot::Sender<Reply>>>>,
    _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::ErrorEvent)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}

/// The workers, each with the model loaded, and how the current run's batch is split between them.
pub struct CpuPool {
    slots: Vec<Slot>,
    /// The workers the current run uses (a batch smaller than the pool uses fewer).
    active: RefCell<usize>,
    /// Each worker's first message, [`Reply::Ready`], until it has come.
    starting: RefCell<Vec<oneshot::Receiver<Reply>>>,
}

/// Workers for this machine: one per core the browser reports, within 1..=4. The page's own thread only
/// draws frames between steps: on 2 cores, 2 workers ran a step 1.9x faster than 1 (BENCHMARKS.md).
pub fn worker_count() -> usize {
    let cores = web_sys::window().map_or(1.0, |w| w.navigator().hardware_concurrency()) as usize;
    cores.clamp(1, MAX_WORKERS)
}

impl CpuPool {
    pub fn new(count: usize) -> Result<Self, Error> {
        let mut slots = Vec::with_capacity(count);
        let mut starting = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            let worker = web_sys::Worker::new(WORKER_URL).map_err(|e| Error::Cpu(format!("the CPU worker could not start ({e:?})")))?;
            let (ready, started) = oneshot::channel();
            starting.push(started);
            let pending: Rc<RefCell<Option<oneshot::Sender<Reply>>>> = Rc::new(RefCell::new(Some(ready)));
            let answer = pending.clone();
            let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
                let reply = e
                    .data()
                    .as_string()
                    .and_then(|t| serde_json::from_str::<Reply>(&t).ok())
                    .unwrap_or_else(|| Reply::Failed("internal: the CPU worker sent a message the page cannot read".into()));
                if let Some(tx) = answer.borrow_mut().take() {
                    let _ = tx.send(reply);
                }
            });
            let answer = pending.clone();
            // A worker that fails to start or panics: the request in flight gets the reason.
            let on_error = Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(move |e: web_sys::ErrorEvent| {
                if let Some(tx) = answer.borrow_mut().take() {
                    let _ = tx.send(Reply::Failed(format!("the CPU worker stopped: {}", e.message())));
                }
            });
            worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            slots.push(Slot { worker, pending, _on_message: on_message, _on_error: on_error });
        }
        Ok(Self { slots, active: RefCell::new(0), starting: RefCell::new(starting) })
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Posts `request` to worker `i` (with `bytes` beside it) and returns where its answer will arrive.
    fn post(&self, i: usize, request: &Request, bytes: Option<&[u8]>) -> Result<oneshot::Receiver<Reply>, Error> {
        let slot = &self.slots[i];
        let (tx, rx) = oneshot::channel();
        *slot.pending.borrow_mut() = Some(tx);
        let message = js_sys::Object::new();
        let json = serde_json::to_string(request).map_err(|e| Error::Cpu(format!("internal: {e}")))?;
        let _ = js_sys::Reflect::set(&message, &"json".into(), &JsValue::from_str(&json));
        if let Some(b) = bytes {
            let _ = js_sys::Reflect::set(&message, &"bytes".into(), &js_sys::Uint8Array::from(b));
        }
        slot.worker.post_message(&message).map_err(|e| Error::Cpu(format!("the CPU worker could not be reached ({e:?})")))?;
        Ok(rx)
    }

    /// Sends one request per worker (all first, so they run at once) and collects the answers in order.
    async fn ask_all(&self, requests: Vec<(usize, Request)>, bytes: Option<&[u8]>) -> Result<Vec<Reply>, Error> {
        let mut waiting = Vec::with_capacity(requests.len());
        for (i, r) in &requests {
            waiting.push(self.post(*i, r, bytes)?);
        }
        let mut replies = Vec::with_capacity(waiting.len());
        for rx in waiting {
            let reply = rx.await.map_err(|_| Error::Cpu("the CPU worker went away".into()))?;
            if let Reply::Failed(m) = reply {
                return Err(Error::Cpu(m));
            }
            replies.push(reply);
        }
        Ok(replies)
    }

    /// Waits for every worker's [`Reply::Ready`] (once).
    async fn started(&self) -> Result<(), Error> {
        let starting = std::mem::take(&mut *self.starting.borrow_mut());
        for rx in starting {
            match rx.await {
                Ok(Reply::Ready) => {}
                Ok(Reply::Failed(m)) => return Err(Error::Cpu(m)),
                _ => return Err(Error::Cpu("the CPU worker did not start".into())),
            }
        }
        Ok(())
    }

    /// Loads the model into every worker; returns its parameter count.
    pub async fn load(&self, config: &str, scheduler: Option<&str>, weights: &[u8]) -> Result<usize, Error> {
        self.started().await?;
        let request = Request::Load { config: config.to_string(), scheduler: scheduler.map(str::to_string) };
        let replies = self.ask_all((0..self.len()).map(|i| (i, request.clone())).collect(), Some(weights)).await?;
        match replies.first() {
            Some(Reply::Loaded { parameters }) => Ok(*parameters),
            _ => Err(Error::Cpu("internal: the CPU worker did not load the model".into())),
        }
    }

    /// Starts a run of `program` over `n` images, split between the workers; returns frame 0. `init`,
    /// `known` and `low` are the whole batch's (one image's values per image, in order).
    #[allow(clippy::too_many_arguments)]
    pub async fn start(&self, program: &Program, n: usize, image_len: usize, seed: u64, shared_noise: bool, init: JobInit, known: Option<(Vec<f32>, Vec<f32>)>, low: Option<Vec<f32>>) -> Result<Frame, Error> {
        let parts = split(n, self.len());
        *self.active.borrow_mut() = parts.len();
        let cut = |v: &[f32], first: usize, count: usize, per: usize| v[first * per..(first + count) * per].to_vec();
        let low_len = low.as_ref().map_or(0, |l| l.len() / n.max(1));
        let requests = parts
            .iter()
            .enumerate()
            .map(|(i, &(first, count))| {
                let init = match &init {
                    JobInit::Philox => JobInit::Philox,
                    JobInit::Image(x) => JobInit::Image(cut(x, first, count, image_len)),
                    JobInit::Exact(x) => JobInit::Exact(cut(x, first, count, image_len)),
                };
                let known = known.as_ref().map(|(x, m)| (cut(x, first, count, image_len), cut(m, first, count, image_len)));
                let low = low.as_ref().map(|l| cut(l, first, count, low_len));
                (i, Request::Start(Job { program: program.clone(), n: count, first_image: first, seed, shared_noise, init, known, low }))
            })
            .collect();
        self.frames(requests).await
    }

    /// The next pass of every active worker, joined into the batch's frame.
    pub async fn step(&self) -> Result<Frame, Error> {
        let active = *self.active.borrow();
        self.frames((0..active).map(|i| (i, Request::Step)).collect()).await
    }

    async fn frames(&self, requests: Vec<(usize, Request)>) -> Result<Frame, Error> {
        let frames = self
            .ask_all(requests, None)
            .await?
            .into_iter()
            .map(|r| match r {
                Reply::Frame(f) => Ok(f),
                _ => Err(Error::Cpu("internal: the CPU worker answered a step without a frame".into())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        join(frames).ok_or_else(|| Error::Cpu("internal: no CPU worker ran".into()))
    }
}

/// ε_θ on the workers, the batch split between them (the likelihood's network calls).
impl EpsSource for &CpuPool {
    async fn eps(&mut self, x: &[f32], t: &[usize]) -> Result<Vec<f32>, Error> {
        let n = t.len();
        let per = x.len() / n.max(1);
        let requests = split(n, self.len())
            .into_iter()
            .enumerate()
            .map(|(i, (first, count))| (i, Request::Eps { x: x[first * per..(first + count) * per].to_vec(), t: t[first..first + count].to_vec() }))
            .collect();
        let mut out = Vec::with_capacity(x.len());
        for reply in self.ask_all(requests, None).await? {
            match reply {
                Reply::Eps(e) => out.extend(e),
                _ => return Err(Error::Cpu("internal: the CPU worker answered ε_θ without it".into())),
            }
        }
        Ok(out)
    }
}

/// The page's benchmark on the CPU path: `steps` DDPM steps of the batch after the warm-up, each step
/// what a person waits for (every worker's pass and update, the frames posted back and joined).
pub async fn bench(pool: &CpuPool, schedule: &Schedule, image_len: usize, n: usize, steps: usize, gflop_per_image: f64) -> Result<BenchReport, Error> {
    let (total, steps) = step_counts(schedule.len(), steps);
    let program = Method::Ddpm { variance: Variance::Small, clip: false }.program(schedule, &SchedulerConfig::default(), total)?;
    let begun = now_ms();
    pool.start(&program, n, image_len, 0, false, JobInit::Philox, None, None).await?;
    let first_frame_ms = now_ms() - begun;
    for _ in 0..total - steps {
        pool.step().await?;
    }
    let start = now_ms();
    for _ in 0..steps {
        pool.step().await?;
    }
    let secs = (now_ms() - start) / 1e3;
    let workers = *pool.active.borrow();
    let peak = match pool.ask_all(vec![(0, Request::Peak)], None).await?.pop() {
        Some(Reply::Peak(g)) => Some(g),
        _ => None,
    };
    let adapter = format!("CPU: {workers} Web Worker{} (WebAssembly SIMD)", if workers == 1 { "" } else { "s" });
    Ok(BenchReport { cpu_gemm_peak_gflops_per_s: peak, ..BenchReport::timed(adapter, n, steps, secs, gflop_per_image * n as f64, first_frame_ms) })
}
