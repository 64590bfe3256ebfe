//! The request id of the log line and the `X-Request-Id` answer header: the RP's own
//! `X-Request-Id` when it is well-formed (1 to `log.request_id_max_len` characters of
//! `A-Z a-z 0-9 - _ . :`), so the RP can find its request in our logs; anything else (too long,
//! spaces, quotes, control characters, non-ASCII) is ignored and an id of ours is used.
//! The accepted charset cannot break a JSON line or a header (shared/security.md C-27).

use http::HeaderMap;

/// The header name.
pub const X_REQUEST_ID: &str = "x-request-id";

/// The RP's request id, if acceptable.
pub fn incoming(headers: &HeaderMap, max_len: usize) -> Option<&str> {
    let v = headers.get(X_REQUEST_ID)?.as_bytes();
    let ok = !v.is_empty()
        && v.len() <= max_len
        && v.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    // ASCII checked above.
    ok.then(|| std::str::from_utf8(v).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(v: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_bytes(v).unwrap());
        h
    }

    #[test]
    fn well_formed_ids_are_kept_others_ignored() {
        let uuid = b"3f2b1c9e-8d7a-4c1b-9f00-0123456789ab";
        assert_eq!(incoming(&with(uuid), 64), Some("3f2b1c9e-8d7a-4c1b-9f00-0123456789ab"));
        assert_eq!(incoming(&with(b"rp:req_1.2"), 64), Some("rp:req_1.2"));
        assert_eq!(incoming(&with(uuid), 16), None, "too long");
        for bad in [&b""[..], b"a b", b"a\"b", b"a\\b", b"a\tb", "é".as_bytes(), b"x,\"forged\":1"] {
            assert_eq!(incoming(&with(bad), 64), None, "{bad:?}");
        }
        assert_eq!(incoming(&HeaderMap::new(), 64), None);
    }
}
