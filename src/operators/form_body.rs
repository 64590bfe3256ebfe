//! The form bodies the gateway sends operators, written straight into one `String`: the same
//! bytes as `form_urlencoded::Serializer` (WHATWG `application/x-www-form-urlencoded`:
//! alphanumerics and `*-._` as they are, space as `+`, every other byte `%XX`), without its
//! per-pair machinery. The CIBA start runs once per `bc-authorize`.

use super::PushRequest;

/// Whether `b` is written as it is.
const fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_')
}

/// Appends `value` form-encoded.
pub fn push_encoded(buf: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = value.as_bytes();
    // Most values (a binding message in letters and digits) have nothing to encode: checked 16
    // bytes at a time without an early exit (vectorised), then copied whole.
    if bytes.chunks(16).all(|chunk| chunk.iter().fold(true, |ok, &b| ok & plain(b))) {
        buf.push_str(value);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if plain(b) {
            continue;
        }
        push_run(buf, &bytes[start..i]);
        if b == b' ' {
            buf.push('+');
        } else {
            buf.push('%');
            buf.push(HEX[(b >> 4) as usize] as char);
            buf.push(HEX[(b & 15) as usize] as char);
        }
        start = i + 1;
    }
    push_run(buf, &bytes[start..]);
}

/// Appends a run of plain bytes (ASCII, so never split inside a character of `value`).
fn push_run(buf: &mut String, run: &[u8]) {
    if let Ok(run) = std::str::from_utf8(run) {
        buf.push_str(run);
    }
}

/// Appends `name=value` (with `&` before it unless `buf` is empty); `name` is written as is.
fn push_pair(buf: &mut String, name: &str, value: &str) {
    if !buf.is_empty() {
        buf.push('&');
    }
    buf.push_str(name);
    buf.push('=');
    push_encoded(buf, value);
}

/// The operator's CIBA `bc-authorize` form for `req`: `scope`, `login_hint=MSISDN:<digits>`,
/// `acr_values`, `requested_expiry`, then `binding_message` and `client_notification_token` when
/// present.
pub fn ciba_start(req: &PushRequest<'_>) -> String {
    let extra = req.binding_message.map_or(0, str::len) + req.client_notification_token.map_or(0, str::len);
    let mut form = String::with_capacity(128 + extra + extra / 2);
    form.push_str("scope=openid+mc_authn&login_hint=MSISDN%3A");
    form.push_str(itoa::Buffer::new().format(req.msisdn.value()));
    push_pair(&mut form, "acr_values", req.acr_values);
    push_pair(&mut form, "requested_expiry", itoa::Buffer::new().format(req.requested_expiry_s));
    if let Some(b) = req.binding_message {
        push_pair(&mut form, "binding_message", b);
    }
    if let Some(t) = req.client_notification_token {
        push_pair(&mut form, "client_notification_token", t);
    }
    form
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msisdn::Msisdn;

    /// What the adapter wrote before (form_urlencoded's serializer).
    fn reference(req: &PushRequest<'_>) -> String {
        let login_hint = format!("MSISDN:{}", req.msisdn.value());
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("scope", "openid mc_authn")
            .append_pair("login_hint", &login_hint)
            .append_pair("acr_values", req.acr_values)
            .append_pair("requested_expiry", &req.requested_expiry_s.to_string());
        if let Some(b) = req.binding_message {
            form.append_pair("binding_message", b);
        }
        if let Some(t) = req.client_notification_token {
            form.append_pair("client_notification_token", t);
        }
        form.finish()
    }

    #[test]
    fn values_are_encoded_like_form_urlencoded() {
        let all: String = (0u8..0x80).map(char::from).chain("é€😀 ~+&=%".chars()).collect();
        for v in ["", "plain-Text_0.9*", "a b", all.as_str()] {
            let mut ours = String::new();
            push_encoded(&mut ours, v);
            assert_eq!(ours, form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>(), "{v:?}");
        }
        // One byte to encode at every position of a long plain value (the 16-byte fast check
        // and its last partial chunk).
        for at in 0..40 {
            for c in [' ', '%', '/', '\u{7f}', 'é'] {
                let mut v = "AbCd1234".repeat(5);
                v.insert(at, c);
                let mut ours = String::new();
                push_encoded(&mut ours, &v);
                assert_eq!(ours, form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>(), "{c:?} at {at}");
            }
        }
    }

    #[test]
    fn ciba_start_form_is_what_the_serializer_wrote() {
        let msisdn = Msisdn::from_digits(34600000001).unwrap();
        let full = PushRequest {
            msisdn: &msisdn,
            acr_values: "3 2",
            binding_message: Some("Pay 10 € to Shop & Co = ok? 100%"),
            requested_expiry_s: 300,
            client_notification_token: Some("tx.S3cr-et_"),
        };
        let bare =
            PushRequest { binding_message: None, client_notification_token: None, acr_values: "2", ..full.clone() };
        for req in [full, bare] {
            assert_eq!(ciba_start(&req), reference(&req));
        }
    }
}
