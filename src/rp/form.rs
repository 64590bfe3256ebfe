//! Request bodies and parameters: the body is read up to the configured limit (413 beyond it),
//! must be `application/x-www-form-urlencoded` (415 otherwise), and is parsed into [`Params`],
//! which refuses repeated parameters (RFC 6749 §3.1) and too many fields.

use super::error::RpError;
use bytes::Bytes;
use http::{header, HeaderMap, Request};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

/// Most fields accepted in one form.
pub const MAX_FIELDS: usize = 100;

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<(http::request::Parts, Bytes), RpError> {
    if let Some(len) =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(RpError::PayloadTooLarge);
        }
    }
    let (parts, body) = req.into_parts();
    let bytes = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                RpError::PayloadTooLarge
            } else {
                RpError::invalid_request("request body could not be read")
            }
        })?
        .to_bytes();
    Ok((parts, bytes))
}

/// Requires a form body.
pub fn require_form(headers: &HeaderMap) -> Result<(), RpError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Ok(())
    } else {
        Err(RpError::UnsupportedMediaType)
    }
}

/// Decoded parameters, in order.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses `a=b&c=d`; a repeated name or more than [`MAX_FIELDS`] fields is `invalid_request`.
    pub fn parse(raw: &[u8]) -> Result<Self, RpError> {
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(16);
        for (k, v) in form_urlencoded::parse(raw) {
            if pairs.len() == MAX_FIELDS {
                return Err(RpError::invalid_request("too many parameters"));
            }
            if pairs.iter().any(|(n, _)| *n == k) {
                return Err(RpError::InvalidRequest(format!("parameter {} is repeated", printable(&k)).into()));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Self { pairs })
    }

    /// A parameter's value; empty values count as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    /// A required parameter.
    pub fn require(&self, name: &'static str) -> Result<&str, RpError> {
        self.get(name).ok_or_else(|| RpError::InvalidRequest(format!("{name} is required").into()))
    }
}

/// A parameter name safe to echo in an error description (ASCII letters, digits, `_-.`, ≤ 40).
pub fn printable(name: &str) -> String {
    let clean: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || "_-.".contains(*c)).take(40).collect();
    if clean.is_empty() {
        "(unnamed)".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(matches!(Params::parse(b"a=1&a=2"), Err(RpError::InvalidRequest(_))));
        let p = Params::parse(b"a=1&b=&c=x%20y").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y"));
    }

    #[test]
    fn too_many_fields_are_refused() {
        let body: String = (0..101).map(|i| format!("f{i}=1&")).collect();
        assert!(Params::parse(body.as_bytes()).is_err());
    }
}
