//! [`PollGate`]: at most one `/token` poll of a transaction in flight per instance. A poll that
//! arrives while this instance is still answering another poll of the same `auth_req_id` (by
//! the same client) is polling faster than any interval, and gets `slow_down` at once, without
//! touching the store — the answer a poll that loses the compare-and-set to an overlapping poll
//! gets anyway (CIBA Core §11). It bounds the store work one client hammering one id can cause
//! to one operation at a time per instance.
//!
//! Lossy by design, never wrong: `slots` atomics chosen by a hash of (client, id); a slot held by
//! another poll (a collision) lets the poll through unguarded, so an overlap can go unnoticed
//! (the compare-and-set still settles it) but a lone poll is never told `slow_down`. A ticket
//! frees its slot when dropped, also when the request is cancelled. 0 slots turns it off
//! (`[ciba] poll_gate_slots`).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// In-flight polls, by (client, id).
pub struct PollGate {
    slots: Box<[AtomicU64]>,
    hasher: foldhash::fast::FixedState,
}

impl std::fmt::Debug for PollGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollGate").field("slots", &self.slots.len()).finish()
    }
}

/// Whether a poll may go on.
#[derive(Debug)]
pub enum Entry<'a> {
    /// Go on; the ticket (if the slot was free) marks the poll in flight until dropped.
    Admitted(Option<PollTicket<'a>>),
    /// Another poll of the same id by the same client is in flight here: answer `slow_down`.
    Overlapping,
}

/// A poll in flight; frees its slot when dropped.
#[derive(Debug)]
pub struct PollTicket<'a> {
    slot: &'a AtomicU64,
    tag: u64,
}

impl Drop for PollTicket<'_> {
    fn drop(&mut self) {
        // Only this ticket wrote `tag` into the slot, and nobody else clears it.
        let _ = self.slot.compare_exchange(self.tag, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

impl PollGate {
    /// A gate of `slots` entries (0: off).
    pub fn new(slots: usize) -> Self {
        Self { slots: (0..slots).map(|_| AtomicU64::new(0)).collect(), hasher: foldhash::fast::FixedState::default() }
    }

    /// Admits a poll of `id` by `client_id`, unless one is in flight here already.
    pub fn enter(&self, client_id: &str, id: &str) -> Entry<'_> {
        if self.slots.is_empty() {
            return Entry::Admitted(None);
        }
        let mut h = self.hasher.build_hasher();
        h.write(client_id.as_bytes());
        h.write_u8(0xff); // no two (client, id) pairs hash the same concatenation
        h.write(id.as_bytes());
        let hash = h.finish();
        let tag = hash | 1; // never 0 (the free mark)
        let slot = &self.slots[(hash >> 32) as usize % self.slots.len()];
        match slot.compare_exchange(0, tag, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Entry::Admitted(Some(PollTicket { slot, tag })),
            Err(held) if held == tag => Entry::Overlapping,
            Err(_) => Entry::Admitted(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(e: &Entry<'_>) -> bool {
        matches!(e, Entry::Admitted(_))
    }

    #[test]
    fn a_second_poll_of_the_same_id_overlaps_until_the_first_ends() {
        let gate = PollGate::new(64);
        let first = gate.enter("rp", "tx-1");
        assert!(matches!(first, Entry::Admitted(Some(_))));
        assert!(matches!(gate.enter("rp", "tx-1"), Entry::Overlapping));
        // Other ids and other clients are not held up.
        assert!(admitted(&gate.enter("rp", "tx-2")));
        assert!(admitted(&gate.enter("other-rp", "tx-1")));
        drop(first);
        assert!(matches!(gate.enter("rp", "tx-1"), Entry::Admitted(Some(_))));
    }

    #[test]
    fn a_collision_lets_the_poll_through_unguarded_and_zero_slots_is_off() {
        let gate = PollGate::new(1); // every id shares the one slot
        let _held = gate.enter("rp", "tx-1");
        assert!(matches!(gate.enter("rp", "tx-2"), Entry::Admitted(None)));
        let off = PollGate::new(0);
        let _a = off.enter("rp", "tx-1");
        assert!(matches!(off.enter("rp", "tx-1"), Entry::Admitted(None)));
    }

    #[test]
    fn a_dropped_ticket_of_a_cancelled_poll_frees_its_slot() {
        let gate = PollGate::new(8);
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let poll = async {
                let _t = gate.enter("rp", "tx-1");
                std::future::pending::<()>().await;
            };
            // The RP went away while the poll waited (the future is dropped, never finished).
            let _ = tokio::time::timeout(std::time::Duration::from_millis(1), poll).await;
        });
        assert!(matches!(gate.enter("rp", "tx-1"), Entry::Admitted(Some(_))));
    }
}
