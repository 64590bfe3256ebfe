//! Unit tests for `msisdn`: every accepted and rejected form of protocol.md §6, masking, and
//! error messages that never echo the input.

use super::*;

const EXPECTED: u64 = 34_600_000_001;

fn parse(s: &str) -> Result<Msisdn, MsisdnError> {
    Msisdn::parse(s, &ParseRules::default())
}

#[test]
fn accepts_every_documented_form() {
    let forms = [
        "MSISDN:34600000001",
        "MSISDN:+34600000001",
        "msisdn:+34600000001",
        "Msisdn:34600000001",
        "tel:+34-600-000-001",
        "TEL:+34600000001",
        "+34600000001",
        "0034600000001",
        "34600000001",
        "600 000 001",
        "600000001",
        "600-000-001",
        "600.000.001",
        "+34 (600) 000-001",
        "+34 600 000 001",
        "00 34 600 000 001",
        "MSISDN:600000001",
        "  +34600000001\t",
    ];
    for form in forms {
        let m = parse(form).unwrap_or_else(|e| panic!("{form:?} rejected: {e}"));
        assert_eq!(m.value(), EXPECTED, "{form:?}");
        assert_eq!(m.e164(), "+34600000001", "{form:?}");
    }
}

#[test]
fn rejects_every_documented_form() {
    use MsisdnError::*;
    let cases: &[(&str, MsisdnError)] = &[
        ("", Empty),
        ("   ", Empty),
        ("MSISDN:", Empty),
        ("tel:", Empty),
        ("+", LoneSign),
        ("tel:+", LoneSign),
        ("MSISDN:+", LoneSign),
        ("+34abc000001", Letters),
        ("abc", Letters),
        ("+34600O00001", Letters),
        ("ENCR_MSISDN:abc", Letters),
        ("+346000\u{0}00001", ControlCharacter),
        ("\u{0}", ControlCharacter),
        ("+34600000001\n", ControlCharacter),
        ("+34600000001\r\n", ControlCharacter),
        ("+34\u{7f}600000001", ControlCharacter),
        ("+34６００000001", NonAsciiDigit),
        ("٣٤٦٠٠٠٠٠٠٠٠١", NonAsciiDigit),
        ("+34٦00000001", NonAsciiDigit),
        ("+34600000001;ext=123", Extension),
        ("tel:+34600000001;ext=1", Extension),
        ("tel:+34600000001;phone-context=x", Extension),
        ("tel:34600000001", TelWithoutPlus),
        ("tel:0034600000001", TelWithoutPlus),
        ("tel:600000001", TelWithoutPlus),
        ("tel:abc", Letters),
        ("+034600000001", LeadingZeroCountryCode),
        ("+0", LeadingZeroCountryCode),
        ("000034600000001", LeadingZeroCountryCode),
        ("0600000001", LeadingZeroCountryCode),
        ("MSISDN:tel:+34600000001", TwoPrefixes),
        ("tel:MSISDN:+34600000001", TwoPrefixes),
        ("MSISDN:MSISDN:34600000001", TwoPrefixes),
        ("++34600000001", TwoPrefixes),
        ("+0034600000001", TwoPrefixes),
        ("00+34600000001", TwoPrefixes),
        ("+1234", TooShort { digits: 4 }),
        ("00", TooShort { digits: 0 }),
        ("1", TooShort { digits: 1 }),
        ("+3460000000123456", TooLong { digits: 16 }),
        ("34600000001234567890123", TooLong { digits: 23 }),
        ("+34 600 000 001 -", InvalidCharacter),
        ("-600000001", InvalidCharacter),
        ("(600) 000 001", InvalidCharacter),
        ("+ 34600000001", InvalidCharacter),
        ("+34/600000001", InvalidCharacter),
        ("34+600000001", InvalidCharacter),
        ("+34\u{a0}600000001", InvalidCharacter),
        ("MSISDN: 34600000001", InvalidCharacter),
    ];
    for (input, want) in cases {
        assert_eq!(parse(input).as_ref(), Err(want), "{input:?}");
    }
}

#[test]
fn national_form_follows_the_rules() {
    let uk = ParseRules { default_country_code: 44, national_len: 10 };
    assert_eq!(Msisdn::parse("7700 900123", &uk).map(Msisdn::value), Ok(447_700_900_123));
    // Nine digits are national only where national_len says so.
    assert_eq!(Msisdn::parse("600000001", &uk).map(Msisdn::value), Ok(600_000_001));
    let no_national = ParseRules { default_country_code: 34, national_len: 0 };
    assert_eq!(Msisdn::parse("600000001", &no_national).map(Msisdn::value), Ok(600_000_001));
}

#[test]
fn length_bounds_are_inclusive() {
    assert_eq!(parse("+12345").map(Msisdn::value), Ok(12_345));
    assert_eq!(parse("+123456789012345").map(Msisdn::value), Ok(123_456_789_012_345));
}

#[test]
fn from_digits_validates_length() {
    assert_eq!(Msisdn::from_digits(EXPECTED).map(Msisdn::value), Ok(EXPECTED));
    assert_eq!(Msisdn::from_digits(1234), Err(MsisdnError::TooShort { digits: 4 }));
    assert_eq!(Msisdn::from_digits(0), Err(MsisdnError::TooShort { digits: 1 }));
    assert_eq!(Msisdn::from_digits(1_000_000_000_000_000), Err(MsisdnError::TooLong { digits: 16 }));
    assert!(Msisdn::from_digits(999_999_999_999_999).is_ok());
}

#[test]
fn digit_count_matches_the_decimal_length() {
    for v in [0u64, 1, 9, 10, 99, 100, 12_345, 99_999, 100_000, 34_600_000_001, u64::MAX] {
        assert_eq!(count_digits(v), v.to_string().len() as u32, "{v}");
    }
    for p in 0..20 {
        let v = 10u64.pow(p);
        assert_eq!(count_digits(v), p + 1);
        assert_eq!(count_digits(v - 1), p.max(1));
    }
}

#[test]
fn accessors() {
    let m = Msisdn::from_digits(EXPECTED).unwrap();
    assert_eq!(m.digits(), "34600000001");
    assert_eq!(m.digit_count(), 11);
    let (digits, len) = m.digit_array();
    assert_eq!(&digits[..len], &[3, 4, 6, 0, 0, 0, 0, 0, 0, 0, 1]);
}

#[test]
fn display_and_debug_are_masked() {
    let m = Msisdn::from_digits(EXPECTED).unwrap();
    assert_eq!(m.to_string(), "+34******001");
    assert_eq!(m.masked().to_string(), "+34******001");
    assert_eq!(format!("{m:?}"), "Msisdn(+34******001)");
    assert_eq!(format!("{:?}", Some(m)), "Some(Msisdn(+34******001))");
    assert_eq!(format!("[{:>14}]", m.masked()), "[  +34******001]");
    let short = Msisdn::from_digits(12_345).unwrap();
    assert_eq!(short.to_string(), "+12**5");
    let long = Msisdn::from_digits(123_456_789_012_345).unwrap();
    assert_eq!(long.to_string(), "+12**********345");
}

#[test]
fn error_messages_never_echo_the_input() {
    let inputs = ["+34600000001;ext=987", "34600000001234567890", "tel:34600000001", "+34abc000001", "+034600000001"];
    for input in inputs {
        let message = parse(input).unwrap_err().to_string();
        assert!(!message.contains("600000"), "{input:?} -> {message}");
        assert!(!message.contains("abc"), "{input:?} -> {message}");
    }
    assert_eq!(MsisdnError::TooLong { digits: 16 }.to_string(), "MSISDN has 16 digits; E.164 allows at most 15");
}

#[test]
fn ordering_and_hash_follow_the_value() {
    use std::collections::HashSet;
    let a = parse("+34600000001").unwrap();
    let b = parse("600 000 001").unwrap();
    let c = parse("+34600000002").unwrap();
    assert_eq!(a, b);
    assert!(a < c);
    let set: HashSet<Msisdn> = [a, b, c].into_iter().collect();
    assert_eq!(set.len(), 2);
}
