//! Time and randomness seams. Everything that needs "now" (token `iat`/`exp`, transaction
//! deadlines, poll intervals) asks a [`Clock`]; tests substitute a [`ManualClock`] so that
//! "valid at 299 s, expired at 301 s" is an exact assertion. This is the only module that reads
//! the system clock.

use std::sync::atomic::{AtomicU64, Ordering};
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
    fn random_tokens_are_distinct_and_long_enough() {
        let a = random_token(32);
        let b = random_token(32);
        assert_ne!(a, b);
        assert_eq!(a.len(), 43); // 256 bits base64url without padding
    }
}
