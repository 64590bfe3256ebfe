//! The JSON line format of our logs: `{"timestamp":"…Z","level":"INFO","message":"…",<fields>}`,
//! one object per event, fields flattened in the order they were recorded. Written by hand
//! into one reused buffer per thread: tracing-subscriber's serde-based JSON formatter cost
//! about 20 000 instructions per request line (a sixth of a whole `bc-authorize`); this costs
//! a few thousand. Strings are escaped per RFC 8259 (quote, backslash, control characters), so
//! a hostile value can never break a line or forge a field (shared/security.md C-27). Inside a
//! request or background step, `trace_id` follows `level` ([`super::trace`]).

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter (install with `.event_format(JsonLines)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

thread_local! {
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(1024));
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        LINE.with(|line| {
            let Ok(mut buf) = line.try_borrow_mut() else {
                // Re-entered (an event while formatting one): format into a fresh buffer.
                let mut fresh = String::with_capacity(512);
                render(&mut fresh, event, SystemTime::now());
                return writer.write_str(&fresh);
            };
            buf.clear();
            render(&mut buf, event, SystemTime::now());
            writer.write_str(&buf)
        })
    }
}

/// One event as a JSON line (with the trailing newline).
fn render(buf: &mut String, event: &Event<'_>, now: SystemTime) {
    buf.push_str("{\"timestamp\":\"");
    push_timestamp(buf, now);
    buf.push_str("\",\"level\":\"");
    buf.push_str(event.metadata().level().as_str());
    buf.push('"');
    if let Some(id) = super::trace::trace_id_for_log() {
        buf.push_str(",\"trace_id\":\"");
        buf.push_str(std::str::from_utf8(&id).unwrap_or_default());
        buf.push('"');
    }
    event.record(&mut Fields { buf });
    buf.push_str("}\n");
}

struct Fields<'a> {
    buf: &'a mut String,
}

impl Fields<'_> {
    fn key(&mut self, field: &Field) {
        self.buf.push_str(",\"");
        push_escaped(self.buf, field.name());
        self.buf.push_str("\":");
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        self.buf.push('"');
        push_escaped(self.buf, value);
        self.buf.push('"');
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        self.buf.push_str(itoa::Buffer::new().format(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        self.buf.push_str(itoa::Buffer::new().format(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.buf.push_str(if value { "true" } else { "false" });
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            let _ = write!(self.buf, "{value}");
        } else {
            self.buf.push_str("null");
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        self.buf.push('"');
        let _ = write!(Escaping(self.buf), "{value:?}");
        self.buf.push('"');
    }
}

/// A `fmt::Write` that JSON-escapes what goes through it.
struct Escaping<'a>(&'a mut String);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_escaped(self.0, s);
        Ok(())
    }
}

/// Appends `s` JSON-escaped (without quotes). Runs of plain bytes are found through a table
/// and copied at once (a per-byte `match` cost ~20 instructions a byte).
fn push_escaped(buf: &mut String, s: &str) {
    /// Bytes that need an escape: control characters, DEL, `"` and `\`.
    const NEEDS_ESCAPE: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 0x20 {
            t[b] = true;
            b += 1;
        }
        t[0x7f] = true;
        t[b'"' as usize] = true;
        t[b'\\' as usize] = true;
        t
    };
    let bytes = s.as_bytes();
    let mut start = 0;
    while let Some(n) = bytes[start..].iter().position(|&b| NEEDS_ESCAPE[b as usize]) {
        let i = start + n;
        buf.push_str(&s[start..i]);
        match bytes[i] {
            b'"' => buf.push_str("\\\""),
            b'\\' => buf.push_str("\\\\"),
            b'\n' => buf.push_str("\\n"),
            b'\r' => buf.push_str("\\r"),
            b'\t' => buf.push_str("\\t"),
            b => {
                let _ = write!(buf, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    buf.push_str(&s[start..]);
}

/// RFC 3339 UTC with microseconds: `2026-11-25T18:48:57.429318Z`.
fn push_timestamp(buf: &mut String, now: SystemTime) {
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, day) = civil_from_days(days);
    let two = |buf: &mut String, n: u64| {
        buf.push(char::from(b'0' + (n / 10) as u8));
        buf.push(char::from(b'0' + (n % 10) as u8));
    };
    buf.push_str(itoa::Buffer::new().format(y));
    buf.push('-');
    two(buf, m);
    buf.push('-');
    two(buf, day);
    buf.push('T');
    two(buf, rem / 3600);
    buf.push(':');
    two(buf, rem / 60 % 60);
    buf.push(':');
    two(buf, rem % 60);
    buf.push('.');
    let micros = d.subsec_micros();
    let digits = itoa::Buffer::new().format(micros).len();
    for _ in digits..6 {
        buf.push('0');
    }
    buf.push_str(itoa::Buffer::new().format(micros));
    buf.push('Z');
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u64, u64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe as i64 + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let mut s = String::new();
        push_timestamp(&mut s, UNIX_EPOCH + Duration::from_micros(1_795_632_537_429_318));
        assert_eq!(s, "2026-11-25T18:48:57.429318Z");
        s.clear();
        push_timestamp(&mut s, UNIX_EPOCH + Duration::from_secs(951_782_400)); // leap day 2000
        assert_eq!(s, "2000-02-29T00:00:00.000000Z");
        s.clear();
        push_timestamp(&mut s, UNIX_EPOCH);
        assert_eq!(s, "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn strings_are_escaped_so_no_value_can_break_a_line() {
        let mut s = String::new();
        push_escaped(&mut s, "a\"b\\c\nd\u{1}e\u{7f}é");
        assert_eq!(s, "a\\\"b\\\\c\\nd\\u0001e\\u007fé");
        let parsed: String = serde_json::from_str(&format!("\"{s}\"")).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}e\u{7f}é");
        // Each escaped byte at every position of a long value (the 16-byte fast check, its
        // last partial chunk included), against serde_json's own escaping.
        for at in 0..40 {
            for c in ['"', '\\', '\n', '\u{1}', '\u{1f}', '\u{7f}'] {
                let mut v = "plain-text-".repeat(4) + "é";
                v.insert(at, c);
                let mut got = String::new();
                push_escaped(&mut got, &v);
                let want = serde_json::to_string(&v).unwrap();
                let parsed: String = serde_json::from_str(&format!("\"{got}\"")).unwrap();
                assert_eq!(parsed, v, "{c:?} at {at}");
                assert!(!got.bytes().any(|b| b < 0x20), "{c:?} at {at}: {got}");
                if c != '\u{7f}' {
                    assert_eq!(format!("\"{got}\""), want, "{c:?} at {at}");
                }
            }
        }
        let mut plain = String::new();
        push_escaped(&mut plain, "no escapes here, only text é€");
        assert_eq!(plain, "no escapes here, only text é€");
    }

    #[test]
    fn an_event_is_one_parseable_json_line() {
        use tracing_subscriber::layer::SubscriberExt;
        let buf = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<u8>::new()));
        let sink = buf.clone();
        let make = move || SinkWriter(sink.clone());
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().event_format(JsonLines).with_writer(make));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(client = "rp\"x", status = 200u64, ok = true, detail = %"multi\nline", "request");
        });
        let text = String::from_utf8(buf.lock().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "request");
        assert_eq!(v["client"], "rp\"x");
        assert_eq!(v["status"], 200);
        assert_eq!(v["ok"], true);
        assert_eq!(v["detail"], "multi\nline");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    struct SinkWriter(std::sync::Arc<parking_lot::Mutex<Vec<u8>>>);

    impl std::io::Write for SinkWriter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
