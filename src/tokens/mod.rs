//! Token material the gateway issues: signing keys and the JWKS ([`keys`]), gateway ID tokens
//! ([`id_token`]) and RFC 9068 access tokens ([`access_token`]), pairwise subjects ([`pairwise`]) and the Discovery API's
//! encrypted subscriber ids ([`subscriber_id`]). Knows nothing about HTTP.

pub mod access_token;
pub mod id_token;
pub mod keys;
pub mod pairwise;
pub mod revocation;
pub mod subscriber_id;

pub use id_token::{IdTokenClaims, TokenIssuer};
pub use keys::{KeyError, KeySet};
pub use pairwise::PairwiseSubjects;
pub use subscriber_id::SubscriberIds;

/// Loads a secret file (≥ 32 bytes after trimming whitespace) or generates 32 random bytes.
pub fn load_or_generate_secret(path: Option<&std::path::Path>) -> Result<Vec<u8>, KeyError> {
    match path {
        Some(p) => {
            let raw = std::fs::read(p).map_err(|e| KeyError::Io(p.display().to_string(), e))?;
            let trimmed: Vec<u8> = raw.trim_ascii().to_vec();
            if trimmed.len() < 32 {
                return Err(KeyError::Invalid(format!("{}: a secret needs at least 32 bytes", p.display())));
            }
            Ok(trimmed)
        }
        None => {
            use rand::RngCore;
            let mut k = vec![0u8; 32];
            rand::rng().fill_bytes(&mut k);
            Ok(k)
        }
    }
}
