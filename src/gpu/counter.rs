//! Live GPU buffer count: every buffer the engine creates (trainer, samplers, density, quality,
//! renderer, presenter, transient readback staging) is registered with an [`Owned`] guard held
//! next to it by its owner; dropping the guard destroys the buffers and takes them off the count.
//!
//! Why destroy explicitly: on the web, dropping a `wgpu::Buffer` frees nothing (wgpu's WebGPU
//! backend leaves `GPUBuffer`s to the JavaScript garbage collector, which may run much later), so
//! a page that reconfigures often would pile up GPU memory. `GPUBuffer.destroy()` frees it now.
//! The owner must outlive every command that uses its buffers *as encoded later*; work already
//! submitted is unaffected by `destroy()` (WebGPU and wgpu-core both keep it valid).
//!
//! The counters are process-wide (one per page on the web): [`live_buffers`] is what the page's
//! `state().liveBuffers` and the resource tests read.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

static LIVE: AtomicI64 = AtomicI64::new(0);
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static CREATED: AtomicU64 = AtomicU64::new(0);

/// Buffers owned by one engine object; destroyed and uncounted on drop.
pub struct Owned {
    buffers: Vec<wgpu::Buffer>,
    bytes: i64,
}

impl Owned {
    /// Registers `buffers` (handles are cloned; the caller keeps using its own).
    pub fn new(buffers: &[&wgpu::Buffer]) -> Self {
        let bytes: i64 = buffers.iter().map(|b| b.size() as i64).sum();
        LIVE.fetch_add(buffers.len() as i64, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
        CREATED.fetch_add(buffers.len() as u64, Ordering::Relaxed);
        Owned { buffers: buffers.iter().map(|&b| b.clone()).collect(), bytes }
    }

    /// Swaps `old` (destroyed and uncounted now) for `new` (counted), e.g. a buffer regrown in
    /// place of a smaller one. `old` must be one of this guard's buffers.
    pub fn replace(&mut self, old: &wgpu::Buffer, new: &wgpu::Buffer) {
        if let Some(i) = self.buffers.iter().position(|b| b == old) {
            let gone = self.buffers.swap_remove(i);
            gone.destroy();
            LIVE.fetch_sub(1, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(gone.size() as i64, Ordering::Relaxed);
            self.bytes -= gone.size() as i64;
        }
        LIVE.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(new.size() as i64, Ordering::Relaxed);
        CREATED.fetch_add(1, Ordering::Relaxed);
        self.bytes += new.size() as i64;
        self.buffers.push(new.clone());
    }

    /// How many buffers this guard holds.
    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        for b in &self.buffers {
            b.destroy();
        }
        LIVE.fetch_sub(self.buffers.len() as i64, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Engine buffers alive now.
pub fn live_buffers() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

/// Bytes of the engine buffers alive now.
pub fn live_bytes() -> i64 {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Engine buffers created since the process (page) started.
pub fn buffers_created() -> u64 {
    CREATED.load(Ordering::Relaxed)
}
