//! Builds the store `[store] kind` names (memory or Redis), wrapped in the
//! [`InstrumentedStore`](super::instrumented::InstrumentedStore) decorator.

use super::instrumented::{InstrumentedStore, StoreMetrics};
use super::redis::{RedisBuildError, RedisStore};
use super::{MemoryStore, Store};
use crate::clock::SharedClock;
use crate::config::model::StoreConfig;
use std::sync::Arc;

/// The configured store, instrumented. Redis connects lazily: must run inside a Tokio runtime.
pub fn build(cfg: &StoreConfig, clock: SharedClock, metrics: StoreMetrics) -> Result<Arc<dyn Store>, RedisBuildError> {
    let inner: Arc<dyn Store> = match cfg.kind.as_str() {
        "redis" => Arc::new(RedisStore::new(cfg, clock)?),
        // Validated at load: anything else is memory.
        _ => Arc::new(MemoryStore::new(clock)),
    };
    Ok(Arc::new(InstrumentedStore::new(inner, metrics)))
}
