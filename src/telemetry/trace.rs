//! W3C Trace Context (`traceparent`, <https://www.w3.org/TR/trace-context/>) for one RP request
//! or one background job, carried in a tokio task-local so that no signature changes: the RP
//! listener opens a [`scope`] per request (continuing the RP's valid `traceparent`, else
//! starting a trace), the driver opens a [`background`] scope per step that
//! [`join_transaction`] ties to the trace stored in the transaction, every outgoing call made
//! inside a scope carries [`outgoing`] (same trace id, a fresh span id), and every log line
//! formatted inside one carries `trace_id` (`super::json_lines`).
//!
//! Owns: parsing and printing `traceparent`, the current trace. Must not know: HTTP routing,
//! operators, logging formats. `tracestate` is not forwarded (an RP's vendor data is none of an
//! operator's business); a trace we start is flagged sampled (`01`): our request line records it.

use http::HeaderValue;
use rand::RngCore;
use std::cell::Cell;
use std::future::Future;

/// The header name.
pub const TRACEPARENT: &str = "traceparent";

/// `traceparent` of a trace we start: sampled (we log every request).
const OWN_FLAGS: u8 = 0x01;

/// Why a `traceparent` value was ignored (a new trace is started instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceParentError {
    /// Not `version-traceid-parentid-flags` with the lengths and lowercase hex of the spec.
    #[error("traceparent is malformed")]
    Malformed,
    /// Version `ff` is forbidden.
    #[error("traceparent version ff is invalid")]
    BadVersion,
    /// An all-zero trace id or parent id.
    #[error("traceparent has an all-zero id")]
    ZeroId,
}

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// 16-byte trace id.
    pub trace_id: [u8; 16],
    /// 8-byte id of the caller's span.
    pub parent_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a header value: version `00` exactly 55 characters; a later version (not `ff`)
    /// may carry more after a `-`, which is ignored (spec §4.3, "future versions").
    pub fn parse(value: &[u8]) -> Result<Self, TraceParentError> {
        if value.len() < 55 || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
            return Err(TraceParentError::Malformed);
        }
        let mut version = [0u8; 1];
        lower_hex(&value[0..2], &mut version)?;
        match version[0] {
            0xff => return Err(TraceParentError::BadVersion),
            0x00 if value.len() != 55 => return Err(TraceParentError::Malformed),
            _ if value.len() > 55 && value[55] != b'-' => return Err(TraceParentError::Malformed),
            _ => {}
        }
        let mut tp = TraceParent { trace_id: [0; 16], parent_id: [0; 8], flags: 0 };
        lower_hex(&value[3..35], &mut tp.trace_id)?;
        lower_hex(&value[36..52], &mut tp.parent_id)?;
        let mut flags = [0u8; 1];
        lower_hex(&value[53..55], &mut flags)?;
        tp.flags = flags[0];
        if tp.trace_id == [0; 16] || tp.parent_id == [0; 8] {
            return Err(TraceParentError::ZeroId);
        }
        Ok(tp)
    }

    /// The header value `00-<trace>-<parent>-<flags>`.
    pub fn to_header(&self) -> HeaderValue {
        let mut out = [0u8; 55];
        out[..3].copy_from_slice(b"00-");
        hex_into(&self.trace_id, &mut out[3..35]);
        out[35] = b'-';
        hex_into(&self.parent_id, &mut out[36..52]);
        out[52] = b'-';
        hex_into(&[self.flags], &mut out[53..55]);
        // Always visible ASCII.
        HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// Lowercase hex only (the spec forbids uppercase).
fn lower_hex(src: &[u8], dst: &mut [u8]) -> Result<(), TraceParentError> {
    if src.iter().any(|b| b.is_ascii_uppercase()) {
        return Err(TraceParentError::Malformed);
    }
    hex::decode_to_slice(src, dst).map_err(|_| TraceParentError::Malformed)
}

fn hex_into(bytes: &[u8], out: &mut [u8]) {
    // Sizes are fixed by the callers (out = 2 × bytes).
    let _ = hex::encode_to_slice(bytes, out);
}

/// The trace a request or job belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// 16-byte trace id.
    pub trace_id: [u8; 16],
    /// Flags passed on.
    pub flags: u8,
}

impl TraceContext {
    /// Continues the caller's valid `traceparent`, else starts a new trace.
    pub fn continue_or_start(header: Option<&HeaderValue>) -> Self {
        match header.map(|h| TraceParent::parse(h.as_bytes())) {
            Some(Ok(tp)) => Self { trace_id: tp.trace_id, flags: tp.flags },
            _ => Self::start(),
        }
    }

    /// A new trace.
    pub fn start() -> Self {
        Self { trace_id: random_nonzero(), flags: OWN_FLAGS }
    }

    /// A trace id in its 32-hex form (a stored transaction's), if well-formed and not zero.
    pub fn from_hex(trace_id: &str) -> Option<Self> {
        let mut id = [0u8; 16];
        lower_hex(trace_id.as_bytes(), &mut id).ok()?;
        (id != [0; 16]).then_some(Self { trace_id: id, flags: OWN_FLAGS })
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex_into(&self.trace_id, &mut out);
        out
    }

    /// A `traceparent` for a call made from this trace (a fresh span id).
    pub fn child(&self) -> TraceParent {
        TraceParent { trace_id: self.trace_id, parent_id: random_nonzero(), flags: self.flags }
    }
}

fn random_nonzero<const N: usize>() -> [u8; N] {
    let mut rng = rand::rng();
    let mut id = [0u8; N];
    while id == [0u8; N] {
        rng.fill_bytes(&mut id);
    }
    id
}

/// The task's current trace: `None` in a background scope no transaction was joined to yet.
#[derive(Debug, Clone, Copy)]
struct Current(Option<TraceContext>);

tokio::task_local! {
    static CURRENT: Cell<Current>;
}

/// Runs `fut` (an RP request) inside trace `ctx`.
pub fn scope<F: Future>(ctx: TraceContext, fut: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(Cell::new(Current(Some(ctx))), fut)
}

/// Runs `fut` (one background step) in a scope whose trace is chosen by the first
/// [`join_transaction`] (or started by the first outgoing call).
pub fn background<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(Cell::new(Current(None)), fut)
}

/// In a background scope not yet tied to a trace: adopts the transaction's stored trace
/// (`trace_id`, 32 hex), or starts one. A request scope keeps the request's trace.
pub fn join_transaction(trace_id: Option<&str>) {
    let _ = CURRENT.try_with(|c| {
        if c.get().0.is_none() {
            let ctx = trace_id.and_then(TraceContext::from_hex).unwrap_or_else(TraceContext::start);
            c.set(Current(Some(ctx)));
        }
    });
}

/// The current trace, if inside a scope (a background scope gets one started here).
pub fn current() -> Option<TraceContext> {
    CURRENT
        .try_with(|c| match c.get().0 {
            Some(ctx) => ctx,
            None => {
                let ctx = TraceContext::start();
                c.set(Current(Some(ctx)));
                ctx
            }
        })
        .ok()
}

/// The current trace id (32 hex) to store in a transaction created now.
pub fn current_trace_id() -> Option<String> {
    current().map(|c| String::from_utf8_lossy(&c.trace_id_hex()).into_owned())
}

/// The current trace id for a log line: never starts a trace.
pub fn trace_id_for_log() -> Option<[u8; 32]> {
    CURRENT.try_with(|c| c.get().0.map(|ctx| ctx.trace_id_hex())).ok().flatten()
}

/// The `traceparent` an outgoing call made now carries (`None` outside any scope).
pub fn outgoing() -> Option<HeaderValue> {
    current().map(|c| c.child().to_header())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_spec_example_round_trips() {
        let tp = TraceParent::parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(tp.flags, 1);
        assert_eq!(tp.to_header().to_str().unwrap(), EXAMPLE);
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(TraceParent::parse(bad.as_bytes()), Err(TraceParentError::Malformed), "{bad}");
        }
        let ff = "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(TraceParent::parse(ff.as_bytes()), Err(TraceParentError::BadVersion));
        let zero = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        assert_eq!(TraceParent::parse(zero.as_bytes()), Err(TraceParentError::ZeroId));
        let zero_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01";
        assert_eq!(TraceParent::parse(zero_parent.as_bytes()), Err(TraceParentError::ZeroId));
    }

    #[test]
    fn a_future_version_with_more_fields_is_read() {
        let v = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever";
        assert_eq!(TraceParent::parse(v.as_bytes()).unwrap().trace_id[0], 0x4b);
    }

    #[tokio::test]
    async fn calls_in_a_request_share_its_trace_with_fresh_span_ids() {
        let header = HeaderValue::from_static(EXAMPLE);
        let ctx = TraceContext::continue_or_start(Some(&header));
        let (a, b) = scope(ctx, async { (outgoing().unwrap(), outgoing().unwrap()) }).await;
        let (a, b) = (TraceParent::parse(a.as_bytes()).unwrap(), TraceParent::parse(b.as_bytes()).unwrap());
        assert_eq!(a.trace_id, b.trace_id);
        assert_eq!(&a.trace_id, &TraceParent::parse(EXAMPLE.as_bytes()).unwrap().trace_id);
        assert_ne!(a.parent_id, b.parent_id);
        assert!(outgoing().is_none(), "no scope, no header");
    }

    #[tokio::test]
    async fn a_background_step_joins_the_transaction_trace_once() {
        let stored = "4bf92f3577b34da6a3ce929d0e0e4736";
        let seen = background(async {
            join_transaction(Some(stored));
            join_transaction(Some("ffffffffffffffffffffffffffffffff"));
            current_trace_id()
        })
        .await;
        assert_eq!(seen.as_deref(), Some(stored));
        let request = TraceContext::start();
        let kept = scope(request, async {
            join_transaction(Some(stored));
            current().unwrap()
        })
        .await;
        assert_eq!(kept, request, "a request keeps its own trace");
        let fresh = background(async {
            join_transaction(Some("not hex"));
            current_trace_id()
        })
        .await;
        assert!(fresh.is_some_and(|t| t.len() == 32 && t != stored));
    }
}
