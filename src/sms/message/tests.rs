//! Snapshot tests of the SMS texts, their segment budget and the origin-bound last line.

use super::*;

const BINDING_64: &str = "Transfer 1,250.00 EUR to ACME Renovations SL, invoice 2024-0917X";

fn input<'a>(language: Language, binding: Option<&'a str>, body: Body<'a>) -> MessageInput<'a> {
    MessageInput {
        language,
        rp_name: "Banc Demo",
        purpose: Purpose::Authorize,
        binding_message: binding,
        minutes_left: 5,
        body,
    }
}

const OTP: Body<'static> = Body::Otp { issuer_host: "mcgate.example", code: "048213" };
const LINK: Body<'static> =
    Body::Link { url: "https://mcgate.example/sms/confirm/3q2-7wE1c9JkTz0Wmf8aQp6vYbR4sNdLhXu5iGo0KeA" };

#[test]
fn snapshots_with_a_64_character_binding_message() {
    assert_eq!(BINDING_64.chars().count(), 64);
    let cases = [
        (Language::En, OTP, "Banc Demo asks you to authorise an operation: \"Transfer 1,250.00 EUR to ACME Renovations SL, invoice 2024-0917X\". Never share it. Your operator's push is safer than SMS. Code 048213, valid 5 min.\n@mcgate.example #048213"),
        (Language::Es, OTP, "Banc Demo te pide autorizar una operacion: \"Transfer 1,250.00 EUR to ACME Renovations SL, invoice 2024-0917X\". No lo compartas nunca. El aviso de tu operador es mas seguro que un SMS. Codigo 048213, valido 5 min.\n@mcgate.example #048213"),
        (Language::Ca, OTP, "Banc Demo et demana autoritzar una operacio: \"Transfer 1,250.00 EUR to ACME Renovations SL, invoice 2024-0917X\". No el comparteixis mai. L'avis del teu operador és més segur que un SMS. Codi 048213, vàlid 5 min.\n@mcgate.example #048213"),
        (Language::En, LINK, "Banc Demo asks you to authorise an operation: \"Transfer 1,250.00 EUR to ACME Renovations SL, invoice 2024-0917X\". Never share it. Your operator's push is safer than SMS. Approve or deny within 5 min:\nhttps://mcgate.example/sms/confirm/3q2-7wE1c9JkTz0Wmf8aQp6vYbR4sNdLhXu5iGo0KeA"),
        (Language::Es, LINK, "Banc Demo te pide autorizar una operacion: \"Transfer 1,250.00 EUR to ACME Renovations SL, invoice 2024-0917X\". No lo compartas nunca. El aviso de tu operador es mas seguro que un SMS. Aprueba o rechaza en 5 min:\nhttps://mcgate.example/sms/confirm/3q2-7wE1c9JkTz0Wmf8aQp6vYbR4sNdLhXu5iGo0KeA"),
        (Language::Ca, LINK, "Banc Demo et demana autoritzar una operacio: \"Transfer 1,250.00 EUR to ACME Renovations SL, invoice 2024-0917X\". No el comparteixis mai. L'avis del teu operador és més segur que un SMS. Aprova o rebutja en 5 min:\nhttps://mcgate.example/sms/confirm/3q2-7wE1c9JkTz0Wmf8aQp6vYbR4sNdLhXu5iGo0KeA"),
    ];
    for (lang, body, expected) in cases {
        let c = compose(&input(lang, Some(BINDING_64), body), 2).unwrap();
        assert_eq!(c.text, expected, "{lang:?}");
        assert_eq!((c.encoding, c.binding_shortened), (Encoding::Gsm7, false), "{lang:?}");
        assert!(c.segments <= 2, "{lang:?}: {} segments", c.segments);
    }
}

#[test]
fn sign_in_without_a_binding_message() {
    let i = MessageInput { purpose: Purpose::SignIn, ..input(Language::Es, None, OTP) };
    assert_eq!(
        compose(&i, 2).unwrap().text,
        "Banc Demo te pide iniciar sesion. No lo compartas nunca. El aviso de tu operador es mas seguro que un SMS. Codigo 048213, valido 5 min.\n@mcgate.example #048213"
    );
    assert_eq!(Purpose::of_scope("openid mc_authz"), Purpose::Authorize);
    assert_eq!(Purpose::of_scope("openid mc_authn"), Purpose::SignIn);
}

#[test]
fn segments_count_gsm_septets_and_ucs2_units() {
    assert_eq!(segments(&"a".repeat(160)), (Encoding::Gsm7, 1));
    assert_eq!(segments(&"a".repeat(161)), (Encoding::Gsm7, 2));
    assert_eq!(segments(&"€".repeat(80)), (Encoding::Gsm7, 1), "extension characters take two septets");
    assert_eq!(segments(&"€".repeat(81)), (Encoding::Gsm7, 2));
    assert_eq!(segments(&"ó".repeat(70)), (Encoding::Ucs2, 1));
    assert_eq!(segments(&"ó".repeat(71)), (Encoding::Ucs2, 2));
    assert_eq!(segments(&"ó".repeat(134)), (Encoding::Ucs2, 2));
    assert_eq!(segments(&"ó".repeat(135)), (Encoding::Ucs2, 3));
}

#[test]
fn a_binding_message_needing_ucs2_loses_accents_then_length_or_the_text_is_refused() {
    let accented = "Transacció de 1.250,00 € a ACME Renovacions SL, factura 917-2024";
    assert_eq!(accented.chars().count(), 64);
    let c = compose(&input(Language::Ca, Some(accented), OTP), 2).unwrap();
    assert_eq!((c.encoding, c.binding_shortened), (Encoding::Gsm7, true));
    assert!(c.text.contains("\"Transaccio de 1.250,00 € a ACME Renovacions SL, factura 917-2024\""), "{}", c.text);
    // Not foldable: UCS-2 for the whole text.
    let cjk = "東京の店で 12,000 円のお支払い";
    assert_eq!(compose(&input(Language::En, Some(cjk), OTP), 2).unwrap_err(), MessageError::TooLong(2));
    let c = compose(&input(Language::En, Some(cjk), OTP), 3).unwrap();
    assert_eq!((c.encoding, c.binding_shortened, c.segments), (Encoding::Ucs2, false, 3));
    let c = compose(&input(Language::En, Some(BINDING_64), OTP), 1);
    assert_eq!(c.unwrap_err(), MessageError::TooLong(1));
}

#[test]
fn shortening_keeps_a_prefix_and_marks_it() {
    let long = "x".repeat(200);
    let c = compose(&input(Language::En, Some(&long), OTP), 2).unwrap();
    assert!(c.binding_shortened);
    assert!(c.segments <= 2);
    assert!(c.text.contains("xxx...\""), "{}", c.text);
    assert!(segments(&c.text.replacen("...", "x...", 1)).1 > 2, "the longest prefix that fits");
}

#[test]
fn the_origin_bound_line_parses_back_to_host_and_code() {
    for lang in [Language::Ca, Language::Es, Language::En] {
        let c = compose(&input(lang, Some(BINDING_64), OTP), 2).unwrap();
        assert_eq!(parse_origin_bound(&c.text), Some(("mcgate.example".into(), "048213".into())));
    }
    assert_eq!(parse_origin_bound("x\n@a.example #1 %b.example"), Some(("a.example".into(), "1".into())));
    for bad in
        ["x\n@a.example #123 ", "x\n@a.example  #123", "x\n@a.example #123\n", "x\na.example #1", "x\n@ #1", "@a #1 2"]
    {
        assert_eq!(parse_origin_bound(bad), None, "{bad:?}");
    }
    assert_eq!(issuer_host("https://127.0.0.1:8443").as_deref(), Some("127.0.0.1"));
    assert_eq!(issuer_host("https://mcgate.example").as_deref(), Some("mcgate.example"));
}
