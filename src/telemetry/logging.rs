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
//! Written-out batch buffers are cleared and reused: a batch that started empty each time
//! regrew through a dozen reallocations into freshly faulted pages (3 % of the gateway's CPU at
//! 20 k requests/s, `perf`).

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
/// Capacity of a batch buffer: a full batch plus room for the line that fills it.
const BATCH_CAPACITY: usize = BATCH_BYTES + 16 * 1024;
/// Written-out buffers kept for reuse (more are only needed while writes are slow).
const MAX_SPARE: usize = 4;

/// Where the batches go: stderr, or a test's capture.
pub type LogSink = Box<dyn Write + Send>;

struct Shared {
    batch: Mutex<Vec<u8>>,
    /// Cleared buffers, ready to become the next batch.
    spare: Mutex<Vec<Vec<u8>>>,
    out: Mutex<LogSink>,
    stop: AtomicBool,
}

impl Shared {
    fn flush(&self) {
        let out = {
            let mut batch = self.batch.lock();
            if batch.is_empty() {
                return;
            }
            self.swap_out(&mut batch)
        };
        self.write_out(out);
    }
    /// Takes the batch, leaving a spare (or new) buffer in its place.
    fn swap_out(&self, batch: &mut Vec<u8>) -> Vec<u8> {
        let next = self.spare.lock().pop().unwrap_or_else(|| Vec::with_capacity(BATCH_CAPACITY));
        std::mem::replace(batch, next)
    }
    /// Writes `bytes` out and keeps the buffer for reuse.
    fn write_out(&self, mut bytes: Vec<u8>) {
        if !bytes.is_empty() {
            let mut sink = self.out.lock();
            let _ = sink.write_all(&bytes);
            let _ = sink.flush();
        }
        bytes.clear();
        let mut spare = self.spare.lock();
        if spare.len() < MAX_SPARE && bytes.capacity() <= 2 * BATCH_CAPACITY {
            spare.push(bytes);
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
            (batch.len() >= BATCH_BYTES).then(|| self.0.swap_out(&mut batch))
        };
        if let Some(out) = full {
            self.0.write_out(out);
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
        batch: Mutex::new(Vec::with_capacity(BATCH_CAPACITY)),
        spare: Mutex::new(Vec::new()),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test reads back.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn shared(sink: Capture) -> Shared {
        Shared {
            batch: Mutex::new(Vec::with_capacity(BATCH_CAPACITY)),
            spare: Mutex::new(Vec::new()),
            out: Mutex::new(Box::new(sink)),
            stop: AtomicBool::new(false),
        }
    }

    #[test]
    fn full_batches_go_out_in_order_and_their_buffers_are_reused() {
        let sink = Capture::default();
        let s = shared(sink.clone());
        let mut expected = Vec::new();
        for i in 0..3 * BATCH_BYTES / 40 {
            let line = format!("{{\"line\":{i:>10},\"pad\":\"xxxxxxxxx\"}}\n");
            expected.extend_from_slice(line.as_bytes());
            BatchLine(&s).write_all(line.as_bytes()).unwrap();
        }
        assert!(sink.0.lock().len() >= 2 * BATCH_BYTES, "two full batches went out without a flush");
        s.flush();
        assert_eq!(*sink.0.lock(), expected, "every line, once, in order");
        // Three batches were written out; one buffer is the live batch again, the others wait.
        let spare = s.spare.lock();
        assert!(!spare.is_empty() && spare.len() <= MAX_SPARE);
        assert!(spare.iter().all(|b| b.is_empty() && b.capacity() >= BATCH_BYTES));
        assert!(s.batch.lock().capacity() >= BATCH_BYTES, "the live batch is a reused, full-size buffer");
    }

    #[test]
    fn an_empty_batch_is_not_swapped_or_written() {
        let sink = Capture::default();
        let s = shared(sink.clone());
        s.flush();
        assert!(sink.0.lock().is_empty());
        assert!(s.spare.lock().is_empty(), "nothing was taken, nothing comes back");
    }
}
