//! Sending the browser back to the RP (RFC 6749 §4.1.2, RFC 9207): a 302 to the registered
//! `redirect_uri` with `code` or `error`/`error_description`, plus the RP's `state` and our
//! `iss`, appended to whatever query the registered URI already has. Only ever called with a
//! `redirect_uri` that matched the client's registration exactly.

use super::error::RpError;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// A 302 to `location`.
pub fn found(location: &str) -> Result<Response<Full<Bytes>>, RpError> {
    let v = HeaderValue::from_str(location).map_err(|_| RpError::Internal("redirect URL not a header value".into()))?;
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::FOUND;
    resp.headers_mut().insert(header::LOCATION, v);
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Ok(resp)
}

/// `redirect_uri` with `params`, `state` (if any) and `iss` appended.
pub fn url(redirect_uri: &str, params: &[(&str, &str)], state: Option<&str>, iss: &str) -> String {
    let mut q = form_urlencoded::Serializer::new(String::with_capacity(256));
    for (k, v) in params {
        q.append_pair(k, v);
    }
    if let Some(s) = state {
        q.append_pair("state", s);
    }
    q.append_pair("iss", iss);
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    format!("{redirect_uri}{sep}{}", q.finish())
}

/// The RP gets `code`.
pub fn code(redirect_uri: &str, code: &str, state: &str, iss: &str) -> Result<Response<Full<Bytes>>, RpError> {
    found(&url(redirect_uri, &[("code", code)], Some(state), iss))
}

/// The RP gets `error` (the error's OAuth code and description).
pub fn error(
    redirect_uri: &str,
    e: &RpError,
    state: Option<&str>,
    iss: &str,
) -> Result<Response<Full<Bytes>>, RpError> {
    let description = e.description();
    let mut resp = found(&url(redirect_uri, &[("error", e.code()), ("error_description", &description)], state, iss))?;
    resp.extensions_mut().insert(super::ErrorCode(e.code()));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_appended_and_encoded() {
        assert_eq!(
            url("https://rp/cb", &[("code", "a b")], Some("s&t"), "https://gw"),
            "https://rp/cb?code=a+b&state=s%26t&iss=https%3A%2F%2Fgw"
        );
        assert_eq!(url("https://rp/cb?x=1", &[], None, "i"), "https://rp/cb?x=1&iss=i");
    }
}
