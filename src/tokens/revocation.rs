//! Revocation of access tokens issued from a replayed authorization code (shared/security.md
//! S-26, RFC 9700 §2.1.1). Access tokens are JWTs verified without the store, so revocation is a
//! store record `revoked:<jti>` kept until the token's own expiry ([`revoke`]); `/userinfo` reads
//! it once per call ([`is_revoked`]). A redeemed code leaves `code-used:<code key>` → `<exp_ms>
//! <jti>` behind ([`remember_redemption`]) for as long as its tokens live, so a replay can find
//! and revoke them ([`revoke_on_replay`]).

use crate::store::{Store, StoreError};

fn used_key(code_key: &str) -> String {
    format!("code-used:{code_key}")
}

fn revoked_key(jti: &str) -> String {
    format!("revoked:{jti}")
}

/// After a code (stored under `code_key`) was redeemed for an access token `jti` expiring at
/// `exp_ms`: remember it until then.
pub async fn remember_redemption(store: &dyn Store, code_key: &str, jti: &str, exp_ms: u64) -> Result<(), StoreError> {
    store.put_if_absent(&used_key(code_key), &format!("{exp_ms} {jti}"), exp_ms).await.map(|_| ())
}

/// A code was presented again: revokes the access token issued from it, if it still lives.
/// Returns whether a token was revoked.
pub async fn revoke_on_replay(store: &dyn Store, code_key: &str) -> Result<bool, StoreError> {
    let Some(record) = store.take(&used_key(code_key)).await? else { return Ok(false) };
    let Some((exp_ms, jti)) = record.split_once(' ').and_then(|(e, j)| Some((e.parse::<u64>().ok()?, j))) else {
        return Ok(false);
    };
    revoke(store, jti, exp_ms).await?;
    Ok(true)
}

/// Revokes access token `jti` until `exp_ms` (its expiry; later it is dead anyway).
pub async fn revoke(store: &dyn Store, jti: &str, exp_ms: u64) -> Result<(), StoreError> {
    store.put_if_absent(&revoked_key(jti), "code_replay", exp_ms).await.map(|_| ())
}

/// Whether access token `jti` was revoked (one store read).
pub async fn is_revoked(store: &dyn Store, jti: &str) -> Result<bool, StoreError> {
    Ok(store.get_value(&revoked_key(jti)).await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::MemoryStore;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_replay_revokes_the_token_until_its_expiry_once() {
        let clock = Arc::new(ManualClock::new(1_000));
        let store = MemoryStore::new(clock.clone());
        assert!(!revoke_on_replay(&store, "k").await.unwrap(), "no redemption recorded: nothing to revoke");
        remember_redemption(&store, "k", "jti-1", 301_000).await.unwrap();
        assert!(!is_revoked(&store, "jti-1").await.unwrap());
        assert!(revoke_on_replay(&store, "k").await.unwrap());
        assert!(is_revoked(&store, "jti-1").await.unwrap());
        assert!(!revoke_on_replay(&store, "k").await.unwrap(), "the record is used up");
        assert!(!is_revoked(&store, "jti-2").await.unwrap());
        clock.advance_ms(300_000);
        assert!(!is_revoked(&store, "jti-1").await.unwrap(), "the record ends with the token");
    }
}
