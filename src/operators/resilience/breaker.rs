//! One operator's circuit breaker (shared/security.md L-02), lock-free: closed → open after
//! `breaker_consecutive_failures` failures in a row or a failure share of at least
//! `breaker_failure_rate` over `breaker_window_ms` (once `breaker_min_calls` calls were seen);
//! open → one half-open probe once the open period is over; the probe's success closes it, its
//! failure opens it again for twice as long (capped at `breaker_max_open_ms`). Times are
//! milliseconds on a monotonic clock supplied by the caller, so the rules are unit-tested
//! without sleeping. No maintained crate combined both opening rules with a doubling open period
//! and exactly one probe (tower-circuitbreaker is rate-based with a fixed wait), hence this file.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::*};

/// Breaker states; the number is the `mcgate_operator_breaker_state` gauge value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls go through.
    Closed = 0,
    /// One probe is out; everything else is refused.
    HalfOpen = 1,
    /// Calls are refused until the open period ends.
    Open = 2,
}

impl State {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Closed,
            1 => Self::HalfOpen,
            _ => Self::Open,
        }
    }

    /// Label of the `to` of a transition.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}

/// What [`Breaker::admit`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// A normal call (closed breaker).
    Call,
    /// The one half-open probe: its outcome decides.
    Probe,
    /// Refused: open, or a probe is already out.
    Refused,
}

/// The opening thresholds (validated `[resilience]` values).
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Consecutive failures that open.
    pub consecutive: u32,
    /// Failure share that opens.
    pub rate: f64,
    /// Rate window, ms.
    pub window_ms: u64,
    /// Fewest calls in the window for the rate rule.
    pub min_calls: u32,
    /// First open period, ms.
    pub open_ms: u64,
    /// Longest open period, ms.
    pub max_open_ms: u64,
}

/// A state change, for metrics and logs.
pub type Transition = Option<State>;

/// The breaker.
#[derive(Debug)]
pub struct Breaker {
    t: Thresholds,
    state: AtomicU8,
    consecutive: AtomicU32,
    /// Start of the current rate window, ms.
    window_start: AtomicU64,
    /// Calls and failures in the current window, packed `calls << 32 | failures`.
    window: AtomicU64,
    /// When the open period ends, ms.
    open_until: AtomicU64,
    /// Length of the current (or next) open period, ms.
    open_ms: AtomicU64,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(t: Thresholds) -> Self {
        Self {
            t,
            state: AtomicU8::new(State::Closed as u8),
            consecutive: AtomicU32::new(0),
            window_start: AtomicU64::new(0),
            window: AtomicU64::new(0),
            open_until: AtomicU64::new(0),
            open_ms: AtomicU64::new(t.open_ms),
        }
    }

    /// The current state (an open breaker whose period is over still reads `Open` until a
    /// call asks).
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Acquire))
    }

    /// Whether a call may go out at `now` (an open breaker past its period lets exactly one
    /// caller through as the probe), and the transition that caused, if any.
    pub fn admit(&self, now: u64) -> (Admit, Transition) {
        match self.state() {
            State::Closed => (Admit::Call, None),
            State::HalfOpen => (Admit::Refused, None),
            State::Open => {
                if now < self.open_until.load(Acquire) {
                    return (Admit::Refused, None);
                }
                match self.state.compare_exchange(State::Open as u8, State::HalfOpen as u8, AcqRel, Acquire) {
                    Ok(_) => (Admit::Probe, Some(State::HalfOpen)),
                    Err(_) => (Admit::Refused, None),
                }
            }
        }
    }

    /// Records the outcome of a call admitted as `admit`.
    pub fn record(&self, admit: Admit, ok: bool, now: u64) -> Transition {
        match admit {
            Admit::Refused => None,
            Admit::Probe if ok => {
                self.consecutive.store(0, Release);
                self.window.store(0, Release);
                self.window_start.store(now, Release);
                self.open_ms.store(self.t.open_ms, Release);
                self.state.store(State::Closed as u8, Release);
                Some(State::Closed)
            }
            Admit::Probe => {
                let doubled = self.open_ms.load(Acquire).saturating_mul(2).min(self.t.max_open_ms);
                self.open_ms.store(doubled, Release);
                self.open_until.store(now.saturating_add(doubled), Release);
                self.state.store(State::Open as u8, Release);
                Some(State::Open)
            }
            Admit::Call => {
                let (calls, failures) = self.count(ok, now);
                if ok {
                    self.consecutive.store(0, Relaxed);
                    return None;
                }
                let run = self.consecutive.fetch_add(1, AcqRel) + 1;
                let rate_hit = calls >= self.t.min_calls && f64::from(failures) >= self.t.rate * f64::from(calls);
                if run >= self.t.consecutive || rate_hit {
                    self.trip(now)
                } else {
                    None
                }
            }
        }
    }

    /// The probe was abandoned (its caller went away): open again for the same period.
    pub fn abandon_probe(&self, now: u64) -> Transition {
        self.open_until.store(now.saturating_add(self.open_ms.load(Acquire)), Release);
        self.state.compare_exchange(State::HalfOpen as u8, State::Open as u8, AcqRel, Acquire).ok().map(|_| State::Open)
    }

    /// Closed → open (only the caller that wins the change reports it).
    fn trip(&self, now: u64) -> Transition {
        if self.state() != State::Closed {
            return None; // a late result of a call admitted before the breaker opened
        }
        self.open_until.store(now.saturating_add(self.open_ms.load(Acquire)), Release);
        self.state.compare_exchange(State::Closed as u8, State::Open as u8, AcqRel, Acquire).ok().map(|_| {
            self.consecutive.store(0, Release);
            State::Open
        })
    }

    /// Adds a call to the rate window (a new window starts when the old one is over) and
    /// returns the window's calls and failures.
    fn count(&self, ok: bool, now: u64) -> (u32, u32) {
        let start = self.window_start.load(Acquire);
        if now.saturating_sub(start) >= self.t.window_ms
            && self.window_start.compare_exchange(start, now, AcqRel, Acquire).is_ok()
        {
            self.window.store(0, Release);
        }
        let add = (1u64 << 32) | u64::from(!ok);
        let v = self.window.fetch_add(add, AcqRel).wrapping_add(add);
        ((v >> 32) as u32, v as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Thresholds {
        Thresholds { consecutive: 3, rate: 0.5, window_ms: 1_000, min_calls: 10, open_ms: 100, max_open_ms: 350 }
    }

    fn fail(b: &Breaker, now: u64) -> Transition {
        let (a, _) = b.admit(now);
        b.record(a, false, now)
    }

    #[test]
    fn opens_after_n_consecutive_failures_and_a_success_resets_the_run() {
        let b = Breaker::new(t());
        assert_eq!(fail(&b, 0), None);
        assert_eq!(fail(&b, 1), None);
        assert_eq!(b.record(Admit::Call, true, 2), None);
        assert_eq!(fail(&b, 3), None);
        assert_eq!(fail(&b, 4), None);
        assert_eq!(fail(&b, 5), Some(State::Open));
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.admit(50), (Admit::Refused, None));
    }

    #[test]
    fn opens_on_the_failure_rate_once_enough_calls_were_seen() {
        let b = Breaker::new(Thresholds { consecutive: 100, ..t() });
        let mut opened = None;
        for i in 0..20u64 {
            let ok = i % 2 == 0; // 50 % failures, never 2 in a row
            let (a, _) = b.admit(i);
            if let Some(s) = b.record(a, ok, i) {
                opened = Some((i, s));
                break;
            }
        }
        // The 10th call (i = 9, 5 failures of 10) reaches the rate.
        assert_eq!(opened, Some((9, State::Open)));
        // A fresh window forgets old calls.
        let b = Breaker::new(Thresholds { consecutive: 100, ..t() });
        for i in 0..9u64 {
            b.record(Admit::Call, false, i * 200); // windows of 1 s: never 10 calls in one
        }
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn exactly_one_probe_after_the_open_period_success_closes_failure_doubles_up_to_the_cap() {
        let b = Breaker::new(t());
        for i in 0..3 {
            fail(&b, i);
        }
        assert_eq!(b.admit(101), (Admit::Refused, None), "open 100 ms from 2");
        assert_eq!(b.admit(102), (Admit::Probe, Some(State::HalfOpen)));
        assert_eq!(b.admit(102), (Admit::Refused, None), "one probe only");
        assert_eq!(b.state(), State::HalfOpen);
        // Failed probe: 200 ms, then 350 (cap).
        assert_eq!(b.record(Admit::Probe, false, 110), Some(State::Open));
        assert_eq!(b.admit(309).0, Admit::Refused);
        assert_eq!(b.admit(310).0, Admit::Probe);
        assert_eq!(b.record(Admit::Probe, false, 310), Some(State::Open));
        assert_eq!(b.admit(659).0, Admit::Refused);
        assert_eq!(b.admit(660).0, Admit::Probe);
        assert_eq!(b.record(Admit::Probe, true, 661), Some(State::Closed));
        assert_eq!(b.admit(662), (Admit::Call, None));
        // Closed again with the first period: 3 failures → open for 100 ms.
        for i in 0..3 {
            fail(&b, 700 + i);
        }
        assert_eq!(b.admit(801).0, Admit::Refused);
        assert_eq!(b.admit(802).0, Admit::Probe);
        // An abandoned probe opens again for the same period.
        assert_eq!(b.abandon_probe(810), Some(State::Open));
        assert_eq!(b.admit(909).0, Admit::Refused);
        assert_eq!(b.admit(910).0, Admit::Probe);
    }

    #[test]
    fn late_results_of_calls_admitted_before_opening_do_not_close_it() {
        let b = Breaker::new(t());
        for i in 0..3 {
            fail(&b, i);
        }
        assert_eq!(b.record(Admit::Call, true, 5), None);
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.record(Admit::Call, false, 6), None, "already open: no second transition");
    }

    #[test]
    fn concurrent_admission_lets_one_probe_through() {
        let b = std::sync::Arc::new(Breaker::new(t()));
        for i in 0..3 {
            fail(&b, i);
        }
        let probes: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8).map(|_| s.spawn(|| usize::from(b.admit(1_000).0 == Admit::Probe))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(probes, 1);
    }
}
