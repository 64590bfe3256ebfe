//! A per-client memo of the last client secret that passed the SHA-256 check, so a client that
//! presents the same secret on every request (every `bc-authorize`, every CIBA poll) is checked
//! by one constant-time comparison instead of a SHA-256 (about 4 500 instructions, the largest
//! single cost of client authentication). A different secret (a rotation, a wrong guess) takes
//! the hash path as before; only a secret that matched a registered hash is ever remembered.
//! The memo lives with the registry built from one configuration, so it can never outlive the
//! hashes that admitted it. It holds the secret itself in memory, as the request buffers do.

use parking_lot::Mutex;
use subtle::ConstantTimeEq;

/// The last secret verified for one client.
#[derive(Default)]
pub struct VerifiedSecret {
    last: Mutex<Option<Box<[u8]>>>,
}

impl VerifiedSecret {
    /// Whether `secret` is the remembered one (constant time for equal lengths).
    pub fn matches(&self, secret: &[u8]) -> bool {
        self.last.lock().as_deref().is_some_and(|last| bool::from(last.ct_eq(secret)))
    }

    /// Remembers `secret`, which has just matched one of the client's registered hashes.
    pub fn remember(&self, secret: &[u8]) {
        *self.last.lock() = Some(secret.into());
    }
}

impl std::fmt::Debug for VerifiedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifiedSecret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_remembered_secret_matches() {
        let v = VerifiedSecret::default();
        assert!(!v.matches(b"s3cr3t"), "nothing remembered yet");
        v.remember(b"s3cr3t");
        assert!(v.matches(b"s3cr3t"));
        for other in [&b"s3cr3"[..], b"s3cr3t!", b"S3cr3t", b""] {
            assert!(!v.matches(other), "{other:?}");
        }
        v.remember(b"new");
        assert!(!v.matches(b"s3cr3t"), "one secret at a time");
        assert!(v.matches(b"new"));
        assert_eq!(format!("{v:?}"), "VerifiedSecret(..)", "never printed");
    }
}
