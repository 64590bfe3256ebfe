//! What delivery receipts said, by SMSC message id: a bounded map (at most `capacity` entries,
//! each kept `ttl`; the oldest go first when full) so receipts for messages nobody asks about
//! can never grow memory. A message sent in several segments is tracked under its first
//! segment's id: delivered when every segment is, failed as soon as one fails.

use crate::sms::DeliveryState;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Receipt outcomes by message id.
pub struct Receipts {
    inner: Mutex<Inner>,
    capacity: usize,
    ttl: Duration,
}

#[derive(Default)]
struct Inner {
    /// Segment id → its state.
    parts: HashMap<String, DeliveryState>,
    /// Message id (first segment) → every segment id.
    messages: HashMap<String, Vec<String>>,
    /// Insertion order, for expiry and eviction: (when, message id).
    order: VecDeque<(Instant, String)>,
}

impl Receipts {
    /// At most `capacity` messages, each remembered for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self { inner: Mutex::new(Inner::default()), capacity: capacity.max(1), ttl }
    }

    /// Starts tracking a message sent as `segment_ids` (first = the message id); returns the id.
    pub fn track(&self, segment_ids: Vec<String>) -> String {
        let id = segment_ids.first().cloned().unwrap_or_default();
        let now = Instant::now();
        let mut g = self.inner.lock();
        g.expire(now, self.ttl);
        while g.order.len() >= self.capacity {
            if let Some((_, old)) = g.order.pop_front() {
                g.forget(&old);
            }
        }
        for s in &segment_ids {
            g.parts.entry(s.clone()).or_insert(DeliveryState::Pending);
        }
        g.messages.insert(id.clone(), segment_ids);
        g.order.push_back((now, id.clone()));
        id
    }

    /// Records a receipt for segment `segment_id`; unknown ids (expired, another instance's)
    /// are ignored.
    pub fn record(&self, segment_id: &str, state: DeliveryState) {
        let mut g = self.inner.lock();
        if let Some(s) = g.parts.get_mut(segment_id) {
            // A final state never goes back to pending.
            if *s == DeliveryState::Pending {
                *s = state;
            }
        }
    }

    /// The message's state: failed if any segment failed, delivered if all were, else pending.
    pub fn state(&self, message_id: &str) -> DeliveryState {
        let g = self.inner.lock();
        let Some(segments) = g.messages.get(message_id) else { return DeliveryState::Pending };
        let states: Vec<DeliveryState> =
            segments.iter().map(|s| g.parts.get(s).copied().unwrap_or(DeliveryState::Pending)).collect();
        if states.contains(&DeliveryState::Failed) {
            DeliveryState::Failed
        } else if states.iter().all(|s| *s == DeliveryState::Delivered) {
            DeliveryState::Delivered
        } else {
            DeliveryState::Pending
        }
    }

    /// Messages tracked now.
    pub fn len(&self) -> usize {
        self.inner.lock().messages.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn expire(&mut self, now: Instant, ttl: Duration) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < ttl {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.forget(&id);
            }
        }
    }

    fn forget(&mut self, id: &str) {
        if let Some(segments) = self.messages.remove(id) {
            for s in segments {
                self.parts.remove(&s);
            }
        }
    }
}

/// The final state a receipt's `stat:` (SMPP 3.4 appendix B) or `message_state` names;
/// `None` for intermediate states (`ENROUTE`, `ACCEPTD`).
pub fn state_from_stat(stat: &str) -> Option<DeliveryState> {
    match stat {
        "DELIVRD" => Some(DeliveryState::Delivered),
        "EXPIRED" | "DELETED" | "UNDELIV" | "REJECTD" | "UNKNOWN" => Some(DeliveryState::Failed),
        _ => None,
    }
}

/// `(id, stat)` from a receipt text `id:… sub:… dlvr:… submit date:… done date:… stat:… err:…`.
pub fn parse_receipt_text(text: &str) -> Option<(String, String)> {
    let field = |name: &str| text.split_ascii_whitespace().find_map(|w| w.strip_prefix(name)).map(str::to_owned);
    Some((field("id:")?, field("stat:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_aggregate() {
        let r = Receipts::new(10, Duration::from_secs(60));
        let id = r.track(vec!["a".into(), "b".into()]);
        assert_eq!(id, "a");
        assert_eq!(r.state("a"), DeliveryState::Pending);
        r.record("a", DeliveryState::Delivered);
        assert_eq!(r.state("a"), DeliveryState::Pending);
        r.record("b", DeliveryState::Delivered);
        assert_eq!(r.state("a"), DeliveryState::Delivered);
        r.record("b", DeliveryState::Failed);
        assert_eq!(r.state("a"), DeliveryState::Delivered, "final states stay");
    }

    #[test]
    fn bounded_by_capacity_and_ttl() {
        let r = Receipts::new(2, Duration::from_secs(60));
        for id in ["x", "y", "z"] {
            r.track(vec![id.into()]);
        }
        assert_eq!(r.len(), 2);
        r.record("x", DeliveryState::Delivered);
        assert_eq!(r.state("x"), DeliveryState::Pending, "evicted");
        let r = Receipts::new(10, Duration::ZERO);
        r.track(vec!["x".into()]);
        r.track(vec!["y".into()]);
        assert_eq!(r.len(), 1, "expired entries are purged on insert");
    }

    #[test]
    fn receipt_text() {
        let t = "id:42 sub:001 dlvr:001 submit date:2601011200 done date:2601011200 stat:DELIVRD err:000 text:";
        assert_eq!(parse_receipt_text(t), Some(("42".into(), "DELIVRD".into())));
        assert_eq!(state_from_stat("UNDELIV"), Some(DeliveryState::Failed));
        assert_eq!(state_from_stat("ENROUTE"), None);
        assert_eq!(parse_receipt_text("hello"), None);
    }
}
