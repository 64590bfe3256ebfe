//! Structured logs through `tracing`: one JSON object per line on stderr (format in
//! [`super::json_lines`]), or human text, with
//! the level from `routing.toml` unless `RUST_LOG` says otherwise. Callers log masked MSISDNs
//! only (`Msisdn`'s `Display` masks) and never a secret, code or token.
//!
//! Lines are appended to a shared in-memory batch ([`BatchWriter`]) that a flusher thread writes
//! out every [`FLUSH_EVERY`] (or at once when it passes [`BATCH_BYTES`]), and that the
//! [`LogGuard`] flushes at exit: a busy gateway makes one `write` per batch instead of one per
//! request, and the request path never waits on a slow log consumer or wakes another thread.

use parking_lot::Mutex;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// How often buffered lines are written out.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A batch this large is written out by the request that filled it.
pub const BATCH_BYTES: usize = 64 * 1024;

struct Shared {
    batch: Mutex<Vec<u8>>,
    stop: AtomicBool,
}

impl Shared {
    fn flush(&self) {
        let out = std::mem::take(&mut *self.batch.lock());
        if !out.is_empty() {
            let _ = std::io::stderr().write_all(&out);
        }
    }
}

/// `MakeWriter` appending each formatted line to the shared batch.
#[derive(Clone)]
pub struct BatchWriter(Arc<Shared>);

/// One line being written.
pub struct BatchLine<'a>(&'a Shared);

impl Write for BatchLine<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut batch = self.0.batch.lock();
            batch.extend_from_slice(buf);
            (batch.len() >= BATCH_BYTES).then(|| std::mem::take(&mut *batch))
        };
        if let Some(out) = full {
            std::io::stderr().write_all(&out)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = BatchLine<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        BatchLine(&self.0)
    }
}

/// Keeps the flusher alive; dropping it writes out everything buffered.
#[must_use = "dropping the guard stops the log flusher"]
pub struct LogGuard {
    shared: Option<Arc<Shared>>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(s) = &self.shared {
            s.stop.store(true, Ordering::SeqCst);
        }
        if let Some(t) = self.flusher.take() {
            let _ = t.join();
        }
        if let Some(s) = &self.shared {
            s.flush();
        }
    }
}

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(level: &str, format: &str) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let shared = Arc::new(Shared { batch: Mutex::new(Vec::with_capacity(BATCH_BYTES)), stop: AtomicBool::new(false) });
    let writer = BatchWriter(shared.clone());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_target(false);
    let installed = if format == "text" {
        builder.try_init()
    } else {
        builder.event_format(super::json_lines::JsonLines).try_init()
    };
    if installed.is_err() {
        return LogGuard { shared: None, flusher: None };
    }
    let s = shared.clone();
    let flusher = std::thread::Builder::new()
        .name("mcgate-log".into())
        .spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                std::thread::sleep(FLUSH_EVERY);
                s.flush();
            }
        })
        .ok();
    LogGuard { shared: Some(shared), flusher }
}
