//! Builds the store `[store] kind` names (memory or Redis), wrapped in the
//! [`InstrumentedStore`] decorator, and the clock the
//! gateway reads "now" from: its own, or (Redis, `store.shared_clock`) one that follows Redis's.

use super::instrumented::{InstrumentedStore, StoreMetrics};
use super::redis::{ClockFollow, RedisBuildError, RedisStore};
use super::{MemoryStore, Store};
use crate::clock::{OffsetClock, SharedClock};
use crate::config::model::StoreConfig;
use std::sync::Arc;

/// The configured store, instrumented, and the gateway's clock. Redis connects lazily: must run
/// inside a Tokio runtime.
pub fn build(
    cfg: &StoreConfig,
    clock: SharedClock,
    metrics: StoreMetrics,
) -> Result<(Arc<dyn Store>, SharedClock), RedisBuildError> {
    let (inner, clock): (Arc<dyn Store>, SharedClock) = match cfg.kind.as_str() {
        "redis" if cfg.shared_clock => {
            let follows = Arc::new(OffsetClock::new(clock));
            let gateway_clock: SharedClock = follows.clone();
            let follow = ClockFollow::new(follows, metrics.clock_offset.clone(), cfg.clock_offset_warn_ms);
            (Arc::new(RedisStore::new(cfg, gateway_clock.clone(), Some(follow))?), gateway_clock)
        }
        "redis" => (Arc::new(RedisStore::new(cfg, clock.clone(), None)?), clock),
        // Validated at load: anything else is memory.
        _ => (Arc::new(MemoryStore::new(clock.clone())), clock),
    };
    Ok((Arc::new(InstrumentedStore::new(inner, metrics)), clock))
}
