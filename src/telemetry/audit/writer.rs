//! The one writer of an audit file: a thread of its own (file I/O never runs on a request
//! runtime) with a small current-thread runtime, fed by a bounded channel. It picks the chain up
//! where the file ends ([`resume`]), writes every batch of queued records to the OS at once,
//! fsyncs them by policy, and answers flush requests once everything before them is on disk.
//! A failed write is retried (the record is kept; the half-written bytes are cut off first), so
//! a record that entered the queue is never skipped.

use super::chain::{open, seal, sha256_hex, GENESIS};
use super::{AuditEvent, AuditMetrics};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What the deciding code sends.
pub enum Msg {
    /// One record, with the wall time it was decided at (ms).
    Record(Box<(u64, AuditEvent)>),
    /// Answer once everything queued before is written and fsynced.
    Flush(oneshot::Sender<()>),
}

/// When the writer fsyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every batch.
    Always,
    /// Every period, if anything was written.
    Interval(Duration),
    /// Never (the OS decides; flush requests still fsync).
    Never,
}

/// The audit file could not be opened or continued.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// I/O.
    #[error("audit file {path}: {error}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        error: std::io::Error,
    },
    /// The last line is not a sound record: the chain cannot be continued.
    #[error(
        "audit file {path}: its last line is not a sound record ({why}); check it with `mcgate audit verify`, \
         move it aside, and start again"
    )]
    Tail {
        /// File.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// Longest line searched for at the end of an existing file.
const TAIL_SCAN: u64 = 1 << 20;

/// The `(seq, hash)` of the last record of the file at `path` (`(0, GENESIS)` if empty).
pub fn resume(path: &Path) -> Result<(u64, String), OpenError> {
    let p = path.display().to_string();
    let io = |error| OpenError::Io { path: p.clone(), error };
    let tail = |why: &str| OpenError::Tail { path: p.clone(), why: why.to_owned() };
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, GENESIS.to_owned())),
        Err(e) => return Err(io(e)),
    };
    let len = f.metadata().map_err(io)?.len();
    if len == 0 {
        return Ok((0, GENESIS.to_owned()));
    }
    let start = len.saturating_sub(TAIL_SCAN);
    f.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    f.read_to_end(&mut buf).map_err(io)?;
    let Some(body) = buf.strip_suffix(b"\n") else { return Err(tail("no newline at the end: a torn write")) };
    let line = match body.iter().rposition(|b| *b == b'\n') {
        Some(i) => &body[i + 1..],
        None if start == 0 => body,
        None => return Err(tail("last line longer than 1 MiB")),
    };
    let text = std::str::from_utf8(line).map_err(|_| tail("not UTF-8"))?;
    let opened = open(text).map_err(|e| tail(&e.to_string()))?;
    Ok((opened.seq, sha256_hex(line)))
}

/// Everything the writer thread owns.
pub struct Writer {
    /// File path (for messages).
    pub path: PathBuf,
    /// Open for appending.
    pub file: File,
    /// Last written sequence number.
    pub seq: u64,
    /// Hash of the last written line.
    pub prev: String,
    /// This instance's id.
    pub instance: String,
    /// Fsync policy.
    pub fsync: Fsync,
    /// Wait before retrying a failed write.
    pub retry: Duration,
    /// Counters.
    pub metrics: AuditMetrics,
}

/// Opens `path` for appending, continuing its chain.
pub fn open_file(path: &Path) -> Result<(File, u64, String), OpenError> {
    let (seq, prev) = resume(path)?;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|error| OpenError::Io { path: path.display().to_string(), error })?;
    Ok((file, seq, prev))
}

fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[derive(serde::Serialize)]
struct Line<'a> {
    seq: u64,
    prev: &'a str,
    instance: &'a str,
    ts: String,
    #[serde(flatten)]
    event: &'a AuditEvent,
}

impl Writer {
    /// Appends the lines of `records` to `out`, advancing the chain.
    fn lines(&mut self, records: &[Box<(u64, AuditEvent)>], out: &mut Vec<u8>) {
        for r in records {
            let (ms, event) = &**r;
            let line = Line { seq: self.seq + 1, prev: &self.prev, instance: &self.instance, ts: rfc3339(*ms), event };
            let Ok(body) = serde_json::to_string(&line) else { continue };
            let sealed = seal(&body);
            self.seq += 1;
            self.prev = sha256_hex(sealed.as_bytes());
            out.extend_from_slice(sealed.as_bytes());
            out.push(b'\n');
        }
    }

    /// Writes `buf` whole, retrying until it is (a partial write is cut off before retrying).
    async fn write_all(&mut self, buf: &[u8]) {
        loop {
            let good = self.file.metadata().map(|m| m.len());
            let result = self.file.write_all(buf).and_then(|()| self.file.flush());
            match result {
                Ok(()) => return,
                Err(e) => {
                    self.metrics.write_errors.inc();
                    tracing::error!(path = %self.path.display(), error = %e, "audit write failed; retrying");
                    if let Ok(len) = good {
                        let _ = self.file.set_len(len);
                    }
                    tokio::time::sleep(self.retry).await;
                }
            }
        }
    }

    fn sync(&mut self) {
        if let Err(e) = self.file.sync_data() {
            self.metrics.write_errors.inc();
            tracing::error!(path = %self.path.display(), error = %e, "audit fsync failed");
        }
    }

    /// Serves the queue until every sender is gone, then fsyncs and returns.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let period = match self.fsync {
            Fsync::Interval(d) => d,
            _ => Duration::from_secs(3600),
        };
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dirty = false;
        let mut batch = Vec::new();
        let mut waiters = Vec::new();
        let mut buf = Vec::with_capacity(64 * 1024);
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(first) = msg else { break };
                    let mut next = Some(first);
                    while let Some(m) = next.take() {
                        match m {
                            Msg::Record(r) => batch.push(r),
                            Msg::Flush(w) => waiters.push(w),
                        }
                        if batch.len() < 1024 {
                            next = rx.try_recv().ok();
                        }
                    }
                    buf.clear();
                    self.lines(&batch, &mut buf);
                    let n = batch.len() as u64;
                    batch.clear();
                    if !buf.is_empty() {
                        let out = std::mem::take(&mut buf);
                        self.write_all(&out).await;
                        buf = out;
                        self.metrics.records.inc_by(n);
                        dirty = true;
                    }
                    if dirty && (self.fsync == Fsync::Always || !waiters.is_empty()) {
                        self.sync();
                        dirty = false;
                    }
                    for w in waiters.drain(..) {
                        let _ = w.send(());
                    }
                }
                _ = tick.tick(), if matches!(self.fsync, Fsync::Interval(_)) => {
                    if dirty {
                        self.sync();
                        dirty = false;
                    }
                }
            }
        }
        self.sync();
        tracing::info!(path = %self.path.display(), seq = self.seq, head = %self.prev, "audit trail closed");
    }
}
