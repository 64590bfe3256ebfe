//! Time and randomness seams. Everything that needs "now" (token `iat`/`exp`, transaction
//! deadlines, poll intervals) asks a [`Clock`]; tests substitute a [`ManualClock`] so that
//! "valid at 299 s, expired at 301 s" is an exact assertion. This is the only module that reads
//! the system clock.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Whole seconds since the Unix epoch.
    fn now_s(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// Shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

impl Clock for SharedClock {
    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }
}

/// The real system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start_ms`.
    pub fn new(start_ms: u64) -> Self {
        Self { now_ms: AtomicU64::new(start_ms) }
    }
    /// Moves the clock forward.
    pub fn advance_ms(&self, ms: u64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// A clock that follows a reference clock it can only sample now and then: the shared store's
/// (Redis `TIME`, read by the store's health probe). Every instance sharing a store then agrees
/// on "now" for the deadlines in the shared records, whatever its own system clock says
/// (shared/security.md F-15: one instance's clock ±5 min must not accept expired items nor
/// expire live ones). Until the first sample it reads as its base clock.
#[derive(Debug)]
pub struct OffsetClock<C: Clock = SystemClock> {
    base: C,
    offset_ms: AtomicI64,
}

impl<C: Clock> OffsetClock<C> {
    /// Follows `base` until the first [`observe`](Self::observe).
    pub fn new(base: C) -> Self {
        Self { base, offset_ms: AtomicI64::new(0) }
    }

    /// The base clock's reading (what to stamp a sample's send and receive times with).
    pub fn base_now_ms(&self) -> u64 {
        self.base.now_ms()
    }

    /// Reference minus base, milliseconds, as last observed.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Records one reading `reference_ms` of the reference clock, asked for at `sent_ms` and
    /// answered at `received_ms` (base clock): the reading is taken to be from the midpoint, so
    /// the error is at most half the round trip. Returns the new offset.
    pub fn observe(&self, reference_ms: u64, sent_ms: u64, received_ms: u64) -> i64 {
        let mid = sent_ms + received_ms.saturating_sub(sent_ms) / 2;
        let offset = reference_ms as i64 - mid as i64;
        self.offset_ms.store(offset, Ordering::Relaxed);
        offset
    }
}

impl<C: Clock> Clock for OffsetClock<C> {
    fn now_ms(&self) -> u64 {
        (self.base.now_ms() as i64).saturating_add(self.offset_ms.load(Ordering::Relaxed)).max(0) as u64
    }
}

/// `n` random bytes from the operating system's CSPRNG (through `rand`'s thread-local
/// ChaCha generator, reseeded from the OS), base64url without padding.
pub fn random_token(n_bytes: usize) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut buf = [0u8; 64];
    let n = n_bytes.min(buf.len());
    rand::rng().fill_bytes(&mut buf[..n]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&buf[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now_s(), 1);
        c.advance_ms(2_500);
        assert_eq!(c.now_ms(), 3_500);
    }

    #[test]
    fn offset_clock_follows_the_reference_from_the_round_trip_midpoint() {
        let c = OffsetClock::new(ManualClock::new(10_000));
        assert_eq!(c.now_ms(), 10_000, "no sample yet: the base clock");
        // Asked at 10 000, answered at 10 040: the reference said 310 020 at about 10 020.
        assert_eq!(c.observe(310_020, 10_000, 10_040), 300_000);
        assert_eq!(c.now_ms(), 310_000);
        c.base.advance_ms(1_000);
        assert_eq!(c.now_ms(), 311_000, "the base still drives the seconds");
        // A base clock five minutes fast is pulled back.
        let fast = OffsetClock::new(ManualClock::new(400_000));
        assert_eq!(fast.observe(100_010, 400_000, 400_020), -300_000);
        assert_eq!(fast.now_ms(), 100_000);
        assert_eq!(fast.offset_ms(), -300_000);
    }

    #[test]
    fn random_tokens_are_distinct_and_long_enough() {
        let a = random_token(32);
        let b = random_token(32);
        assert_ne!(a, b);
        assert_eq!(a.len(), 43); // 256 bits base64url without padding
    }
}
