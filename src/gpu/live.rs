//! A tally of the GPU buffers the engine's objects hold (the U-Net's weights, a run's sampler, the forward
//! explorer's noiser): each adds its buffers when made and takes them away when dropped, so the page's
//! `ddpmDebug.stats()` shows whether cycles of Generate and Cancel leave anything behind. WebGPU has no query
//! for live buffers; the objects that own buffers count them instead (`Plan::owned_buffers` and the rest).

use std::sync::atomic::{AtomicU64, Ordering};

static BUFFERS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// Held by an object that owns GPU buffers; its count leaves the tally when the object is dropped.
#[derive(Debug)]
pub struct Live {
    buffers: u64,
    bytes: u64,
}

impl Live {
    pub fn new(buffers: usize, bytes: u64) -> Self {
        BUFFERS.fetch_add(buffers as u64, Ordering::Relaxed);
        BYTES.fetch_add(bytes, Ordering::Relaxed);
        Self { buffers: buffers as u64, bytes }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        BUFFERS.fetch_sub(self.buffers, Ordering::Relaxed);
        BYTES.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// (buffers, bytes) held now by every engine object alive.
pub fn totals() -> (u64, u64) {
    (BUFFERS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed))
}
