//! Server-rendered pages of the browser flow, without JavaScript: the error page shown when
//! the request cannot safely be sent back to an RP (unknown client, unregistered
//! `redirect_uri`, unknown `state` at `/callback`), and the accessible "your mobile number"
//! form. Every value is HTML-escaped; pages forbid framing and scripts.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// HTML-escapes text for an element or a quoted attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A full page; `title` and `body_html` are trusted markup built with [`escape`].
pub fn page(status: StatusCode, title: &str, body_html: &str) -> Response<Full<Bytes>> {
    page_in(status, "en", title, body_html)
}

/// As [`page`], in language `lang` (a static BCP 47 tag: the `lang` attribute).
pub fn page_in(status: StatusCode, lang: &'static str, title: &str, body_html: &str) -> Response<Full<Bytes>> {
    let doc = format!(
        "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\
         label,input,button{{display:block;font-size:1.1rem;margin:.5rem 0}}input{{width:100%;padding:.4rem}}\
         .error{{color:#a00000;font-weight:bold}}</style></head>\
         <body><main><h1>{title}</h1>{body_html}</main></body></html>"
    );
    let mut resp = Response::new(Full::new(Bytes::from(doc)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// Lets the forms of page `resp` end in a redirect to `redirect_uri`'s origin: browsers apply
/// CSP `form-action` to the redirects after a form POST too, so a page whose POST answers with
/// a 302 back to the RP must name the RP's origin (or, for a custom-scheme app URI, its
/// scheme). Leaves `'self'` only if the URI does not parse.
pub fn allow_form_redirect_to(resp: Response<Full<Bytes>>, redirect_uri: &str) -> Response<Full<Bytes>> {
    allow_form_redirects_to(resp, [redirect_uri])
}

/// As [`allow_form_redirect_to`] for several targets (the number page's POST goes on to the
/// person's operator, or back to the RP with an error). Unparsable URIs are left out.
pub fn allow_form_redirects_to<'a>(
    mut resp: Response<Full<Bytes>>,
    targets: impl IntoIterator<Item = &'a str>,
) -> Response<Full<Bytes>> {
    let mut sources: Vec<String> = Vec::new();
    for t in targets {
        let Ok(uri) = url::Url::parse(t) else { continue };
        let origin = uri.origin();
        let source = if origin.is_tuple() { origin.ascii_serialization() } else { format!("{}:", uri.scheme()) };
        if !sources.contains(&source) {
            sources.push(source);
        }
    }
    if sources.is_empty() {
        return resp; // the page's own policy (`form-action 'self'`) stays
    }
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {}; frame-ancestors 'none'",
        sources.join(" ")
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// The page for a request that must not be redirected anywhere.
pub fn error_page(message: &str) -> Response<Full<Bytes>> {
    page(
        StatusCode::BAD_REQUEST,
        "Sign-in request refused",
        &format!(
            "<p class=\"error\" role=\"alert\">{}</p><p>Go back to the service you came from and start again.</p>",
            escape(message)
        ),
    )
}

/// The "your mobile number" form; `token` names the pending request (and is its CSRF token),
/// `client_name` says who asks, `error` explains a previous wrong entry.
pub fn number_page(token: &str, client_name: &str, error: Option<&str>) -> Response<Full<Bytes>> {
    let (status, alert, described) = match error {
        Some(e) => (
            StatusCode::BAD_REQUEST,
            format!("<p class=\"error\" id=\"number-error\" role=\"alert\">{}</p>", escape(e)),
            " aria-invalid=\"true\" aria-describedby=\"number-hint number-error\"",
        ),
        None => (StatusCode::OK, String::new(), " aria-describedby=\"number-hint\""),
    };
    let body = format!(
        "<p>{client} asks you to sign in with your mobile phone.</p>{alert}\
         <form method=\"post\" action=\"/authorize\">\
         <input type=\"hidden\" name=\"request\" value=\"{token}\">\
         <label for=\"login_hint\">Your mobile number</label>\
         <span id=\"number-hint\">For example +34 600 000 001. Your operator will ask you to confirm on your phone.</span>\
         <input id=\"login_hint\" name=\"login_hint\" type=\"tel\" inputmode=\"tel\" autocomplete=\"tel\" required{described}>\
         <button type=\"submit\">Continue</button></form>",
        client = escape(client_name),
        token = escape(token),
    );
    page(status, "Sign in with your mobile number", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csp(r: &Response<Full<Bytes>>) -> &str {
        r.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap()
    }

    #[test]
    fn form_redirects_are_allowed_to_the_rp_origin_only() {
        let page = || page(StatusCode::OK, "t", "");
        let web = allow_form_redirect_to(page(), "https://rp.example:8443/cb?x=1");
        assert!(csp(&web).contains("form-action 'self' https://rp.example:8443;"), "{}", csp(&web));
        assert!(csp(&web).contains("default-src 'none'") && csp(&web).contains("frame-ancestors 'none'"));
        let app = allow_form_redirect_to(page(), "com.example.app:/oauth");
        assert!(csp(&app).contains("form-action 'self' com.example.app:;"), "{}", csp(&app));
        let junk = allow_form_redirect_to(page(), "not a uri");
        assert!(csp(&junk).contains("form-action 'self';"), "{}", csp(&junk));
    }

    #[test]
    fn escaping_neutralises_markup() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
