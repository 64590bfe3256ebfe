//! Structured logs through `tracing`: one JSON object per line on stderr (format in
//! [`super::json_lines`]), or human text, with
//! the level from `routing.toml` unless `RUST_LOG` says otherwise. Callers log masked MSISDNs
//! only (`Msisdn`'s `Display` masks) and never a secret, code or token.
//!
//! The filter sits behind a `tracing_subscriber::reload` layer whose handle goes to
//! [`super::log_level`], so the admin listener can change it at runtime (`PUT /log-level`).
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
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter};

/// How often buffered lines are written out.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A batch this large is written out by the request that filled it.
pub const BATCH_BYTES: usize = 64 * 1024;

/// Where the batches go: stderr, or a test's capture.
pub type LogSink = Box<dyn Write + Send>;

struct Shared {
    batch: Mutex<Vec<u8>>,
    out: Mutex<LogSink>,
    stop: AtomicBool,
}

impl Shared {
    fn flush(&self) {
        let out = std::mem::take(&mut *self.batch.lock());
        self.write_out(&out);
    }
    fn write_out(&self, bytes: &[u8]) {
        if !bytes.is_empty() {
            let mut sink = self.out.lock();
            let _ = sink.write_all(bytes);
            let _ = sink.flush();
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
            self.0.write_out(&out);
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

impl LogGuard {
    /// Writes out what is buffered now (tests read their capture after this).
    pub fn flush(&self) {
        if let Some(s) = &self.shared {
            s.flush();
        }
    }
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

/// Installs the global subscriber writing to stderr; a second call (tests) is a no-op.
pub fn init(level: &str, format: &str) -> LogGuard {
    init_to(level, format, Box::new(std::io::stderr()))
}

/// As [`init`], writing the batches to `sink` (tests capture the lines this way).
pub fn init_to(level: &str, format: &str, sink: LogSink) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let (filter, handle) = reload::Layer::new(filter);
    let shared = Arc::new(Shared {
        batch: Mutex::new(Vec::with_capacity(BATCH_BYTES)),
        out: Mutex::new(sink),
        stop: AtomicBool::new(false),
    });
    let writer = BatchWriter(shared.clone());
    let registry = tracing_subscriber::registry().with(filter);
    let layer = tracing_subscriber::fmt::layer().with_writer(writer).with_target(false);
    let installed = if format == "text" {
        registry.with(layer).try_init()
    } else {
        registry.with(layer.event_format(super::json_lines::JsonLines)).try_init()
    };
    if installed.is_err() {
        return LogGuard { shared: None, flusher: None };
    }
    super::log_level::install(handle);
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
