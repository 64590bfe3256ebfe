//! RP-supplied person identifiers: `login_hint` in every form of shared/protocol.md §6
//! (`MSISDN:`, `tel:`, `+`, `00`, bare, national) plus `ENCR_MSISDN:<subscriber_id>` from the
//! Discovery API and `PCR:<sub>` (the client's own pairwise subject of the person); and the `binding_message` rules (length, printable, no control, bidi or
//! line-separator characters).

use super::error::RpError;
use crate::app::Gateway;
use crate::msisdn::Msisdn;
use crate::tokens::subscriber_id::SubscriberIdError;

/// Resolves a `login_hint` for `client_id`.
pub fn resolve(gw: &Gateway, client_id: &str, hint: &str) -> Result<Msisdn, RpError> {
    if let Some(id) = strip_prefix_ci(hint, "ENCR_MSISDN:") {
        return gw.subscriber_ids.open(id, client_id, gw.clock.now_s()).map_err(|e| match e {
            SubscriberIdError::Expired => RpError::ExpiredLoginHintToken,
            SubscriberIdError::Invalid => {
                RpError::invalid_request("login_hint ENCR_MSISDN is not valid for this client")
            }
        });
    }
    if let Some(sub) = strip_prefix_ci(hint, "PCR:") {
        // The RP's own pairwise subject of the person: valid only within its sector.
        let sector = gw.clients.get(client_id).map(|c| c.sector.as_str()).unwrap_or_default();
        return gw
            .pairwise
            .resolve(sector, sub)
            .ok_or_else(|| RpError::invalid_request("login_hint PCR is not a subject this client was given"));
    }
    Msisdn::parse(hint, &gw.rules).map_err(|e| RpError::InvalidRequest(format!("login_hint: {e}").into()))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// Checks a binding message: at most `max_chars` characters, all printable, none of the
/// control, bidi-override or line-separator characters that could disguise what is shown.
pub fn check_binding_message(msg: &str, max_chars: usize) -> Result<(), RpError> {
    // Fast path: printable ASCII only (the common case) has nothing to look for.
    // Checked 16 bytes at a time without an early exit, which the compiler vectorises (a
    // byte-by-byte `all` cost ~5 instructions a byte).
    let printable = |chunk: &[u8]| chunk.iter().fold(true, |ok, &b| ok & (0x20..0x7f).contains(&b));
    if msg.len() <= max_chars && msg.as_bytes().chunks(16).all(printable) {
        return Ok(());
    }
    let count = msg.chars().count();
    if count > max_chars {
        return Err(RpError::InvalidBindingMessage(
            format!("binding_message has {count} characters; at most {max_chars}").into(),
        ));
    }
    if let Some(c) = msg.chars().find(|c| forbidden(*c)) {
        return Err(RpError::InvalidBindingMessage(
            format!("binding_message contains the non-printable character U+{:04X}", c as u32).into(),
        ));
    }
    Ok(())
}

fn forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c as u32,
            0x200B..=0x200F      // zero-width, LRM, RLM
            | 0x2028 | 0x2029    // line / paragraph separator
            | 0x202A..=0x202E    // bidi embeddings and overrides
            | 0x2060..=0x2064    // word joiner, invisible operators
            | 0x2066..=0x2069    // bidi isolates
            | 0xFEFF             // BOM / zero-width no-break space
            | 0xFFF9..=0xFFFB) // interlinear annotations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_message_rules() {
        assert!(check_binding_message("Pago 12,50 € a Ajuntament de Girona", 64).is_ok());
        assert!(check_binding_message(&"a".repeat(64), 64).is_ok());
        assert!(matches!(check_binding_message(&"a".repeat(65), 64), Err(RpError::InvalidBindingMessage(_))));
        for bad in ["a\nb", "a\u{202E}b", "a\u{2028}b", "a\u{0}b", "a\u{200B}b"] {
            assert!(check_binding_message(bad, 64).is_err(), "{bad:?}");
        }
        // A control character or DEL anywhere in a long ASCII message (every position of the
        // 16-byte chunks, the last partial chunk included) is found.
        for at in 0..40 {
            for c in ['\u{1}', '\u{7f}', '\t'] {
                let mut msg = "x".repeat(40);
                msg.replace_range(at..at + 1, &c.to_string());
                assert!(check_binding_message(&msg, 64).is_err(), "{c:?} at {at}");
            }
        }
    }
}
