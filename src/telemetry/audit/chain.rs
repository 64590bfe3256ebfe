//! The audit line format and its hash chain, pure (no I/O): [`seal`] turns a record body into
//! its line, [`open`] checks one line and returns its sequence number and the link it carries.
//!
//! A line is one JSON object: `{"seq":N,"prev":"<hex>",…record fields…,"hash":"<hex>"}` where
//! - `seq` counts records from 1 in the file;
//! - `prev` is the SHA-256 of the previous line's bytes (without its `\n`), or [`GENESIS`]
//!   for the first line;
//! - `hash`, always the last member, is the SHA-256 of the line with `,"hash":"…"` removed (the
//!   body ending in `}`), so an edit of any record — the last included — shows.
//!
//! Editing a record breaks its own `hash` (or, if recomputed, the next record's `prev`);
//! removing or reordering records breaks `seq` and `prev`. Rewriting the whole tail from some
//! record on, with every hash recomputed, is only caught against a head recorded elsewhere
//! (`mcgate audit verify` prints the head: seq and hash of the last line).

use sha2::{Digest, Sha256};

/// `prev` of the first record of a file: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const HASH_MEMBER: &str = ",\"hash\":\"";
/// `,"hash":"` + 64 hex digits + `"}`.
const TAIL_LEN: usize = HASH_MEMBER.len() + 64 + 2;

/// SHA-256 in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The line of a record body (a JSON object starting with `seq` and `prev`, ending in `}`).
pub fn seal(body: &str) -> String {
    let hash = sha256_hex(body.as_bytes());
    let mut line = String::with_capacity(body.len() + TAIL_LEN);
    line.push_str(&body[..body.len().saturating_sub(1)]);
    line.push_str(HASH_MEMBER);
    line.push_str(&hash);
    line.push_str("\"}");
    line
}

/// What one well-formed line says about the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Its sequence number.
    pub seq: u64,
    /// The hash of the line before it it claims.
    pub prev: String,
    /// The record (body fields, without `hash`).
    pub record: serde_json::Value,
}

/// Why a line is not a sound record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not a JSON object ending in a `hash` member.
    #[error("not an audit record (no trailing \"hash\" member)")]
    Shape,
    /// The body is not JSON or lacks `seq`/`prev`.
    #[error("malformed record: {0}")]
    Body(String),
    /// The record's own hash does not match its content.
    #[error("record content was changed (its hash does not match)")]
    Hash,
}

/// Checks the shape and own hash of `line` (without `\n`) and reads its `seq` and `prev`.
pub fn open(line: &str) -> Result<Opened, LineError> {
    if line.len() < TAIL_LEN + 2 || !line.ends_with("\"}") {
        return Err(LineError::Shape);
    }
    let cut = line.len() - TAIL_LEN;
    if !line.is_char_boundary(cut) || !line[cut..].starts_with(HASH_MEMBER) {
        return Err(LineError::Shape);
    }
    let claimed = &line[cut + HASH_MEMBER.len()..line.len() - 2];
    let body = format!("{}}}", &line[..cut]);
    if sha256_hex(body.as_bytes()) != claimed {
        return Err(LineError::Hash);
    }
    let record: serde_json::Value = serde_json::from_str(&body).map_err(|e| LineError::Body(e.to_string()))?;
    let seq = record.get("seq").and_then(|v| v.as_u64()).ok_or_else(|| LineError::Body("no \"seq\"".into()))?;
    let prev = record
        .get("prev")
        .and_then(|v| v.as_str())
        .filter(|p| p.len() == 64)
        .ok_or_else(|| LineError::Body("no \"prev\" hash".into()))?
        .to_owned();
    Ok(Opened { seq, prev, record })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_line_opens_and_any_edit_is_seen() {
        let body = format!("{{\"seq\":1,\"prev\":\"{GENESIS}\",\"event\":\"started\"}}");
        let line = seal(&body);
        let o = open(&line).unwrap();
        assert_eq!((o.seq, o.prev.as_str()), (1, GENESIS));
        assert_eq!(o.record["event"], "started");
        assert_eq!(open(&line.replace("started", "stArted")), Err(LineError::Hash));
        assert_eq!(open("{\"seq\":1}"), Err(LineError::Shape));
        assert_eq!(open(&line[..line.len() - 1]), Err(LineError::Shape));
    }
}
