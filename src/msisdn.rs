//! MSISDN input (protocol.md §6): turns every accepted spelling of a phone number into one E.164
//! [`Msisdn`], rejects the rest with a precise [`MsisdnError`], and prints numbers masked.
//!
//! Owns: the accepted forms (`MSISDN:`/`tel:` schemes, `+`/`00` international prefixes, national
//! numbers, separators between digits), the E.164 length rule, and masking for logs and errors.
//! Must not know: `ENCR_MSISDN:`/`PCR:` hints (their owners resolve those to an `Msisdn`), operators,
//! mobile ranges or routing (`discovery`).
//!
//! Parsing works on bytes in one pass without allocating: it runs on every request (~25-30 ns,
//! `benches/msisdn.rs`). Surrounding spaces and tabs are trimmed; any other control character
//! (CR, LF, NUL…) is rejected. Separators (space `-` `.` `(` `)`) are dropped only between two
//! digits or after `00`, so `(600) 000 001`, `+ 34…`, `MSISDN: 34…` and a trailing `-` are
//! rejected. No error message echoes the input: it ends up in an OAuth `error_description`.

use std::fmt;

/// Fewest digits an E.164 number may have (country code included).
const MIN_DIGITS: u32 = 5;
/// Most digits an E.164 number may have (country code included).
const MAX_DIGITS: u32 = 15;

/// An E.164 number, stored as its digits as an integer (E.164 never starts with 0, so the value is
/// unique). `Display` and `Debug` print it masked; use [`Msisdn::e164`] where the full number is
/// really needed (the operator call, the SMS), never in logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Msisdn(u64);

/// How to read numbers written without an international prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseRules {
    /// Country code prefixed to a national number, e.g. 34 for Spain.
    pub default_country_code: u16,
    /// Digits in a national number; exactly this many digits without prefix are national.
    pub national_len: u8,
}

impl Default for ParseRules {
    fn default() -> Self {
        ParseRules { default_country_code: 34, national_len: 9 }
    }
}

/// Why an input is not an MSISDN. Each message is a user-facing reason that never repeats the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsisdnError {
    /// Nothing (or only spaces, or only a scheme) was given.
    #[error("MSISDN is empty")]
    Empty,
    /// A `+` with no digits after it.
    #[error("MSISDN has a '+' but no digits")]
    LoneSign,
    /// ASCII or other letters where digits belong.
    #[error("MSISDN contains letters; only digits and the separators space - . ( ) are allowed")]
    Letters,
    /// Digits from another script (full-width, Arabic-Indic…).
    #[error("MSISDN contains non-ASCII digits; only the digits 0-9 are allowed")]
    NonAsciiDigit,
    /// NUL, CR, LF or another control character.
    #[error("MSISDN contains a control character")]
    ControlCharacter,
    /// `;ext=` or any other `;` parameter.
    #[error("MSISDN must not carry an extension or any other ';' parameter")]
    Extension,
    /// `tel:` followed by a local number.
    #[error("a tel: MSISDN must be in global form, starting with '+'")]
    TelWithoutPlus,
    /// `+0…`, `000…` or a number starting with 0 without the `00` prefix.
    #[error("MSISDN country code must not start with 0")]
    LeadingZeroCountryCode,
    /// Two schemes (`MSISDN:tel:`) or two international prefixes (`++`, `+00`, `00+`).
    #[error("MSISDN has more than one prefix; use one of MSISDN:, tel:, + or 00")]
    TwoPrefixes,
    /// Fewer than 5 digits, country code included.
    #[error("MSISDN has {digits} digits; E.164 needs at least 5")]
    TooShort {
        /// Digits found, country code included.
        digits: u32,
    },
    /// More than 15 digits, country code included.
    #[error("MSISDN has {digits} digits; E.164 allows at most 15")]
    TooLong {
        /// Digits found, country code included.
        digits: u32,
    },
    /// Punctuation other than separators, or a separator not between two digits.
    #[error("MSISDN contains a character that is neither a digit nor a separator between two digits")]
    InvalidCharacter,
}

/// Which international prefix (if any) the input used.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prefix {
    None,
    Plus,
    DoubleZero,
}

/// Which URI-ish scheme the input started with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Msisdn,
    Tel,
}

impl Msisdn {
    /// Parses any §6 form: `MSISDN:34600000001`, `MSISDN:+34…`, `tel:+34-600-000-001`,
    /// `+34600000001`, `0034600000001`, `34600000001` or a national `600 000 001`.
    pub fn parse(input: &str, rules: &ParseRules) -> Result<Msisdn, MsisdnError> {
        let bytes = trim(input.as_bytes());
        if bytes.is_empty() {
            return Err(MsisdnError::Empty);
        }
        let (mut s, scheme) = strip_scheme(bytes);
        if scheme.is_some() {
            if strip_scheme(s).1.is_some() {
                return Err(MsisdnError::TwoPrefixes);
            }
            if s.is_empty() {
                return Err(MsisdnError::Empty);
            }
        }
        let prefix = match s {
            [b'+', rest @ ..] => {
                match rest {
                    [] => return Err(MsisdnError::LoneSign),
                    [b'+', ..] | [b'0', b'0', ..] => return Err(MsisdnError::TwoPrefixes),
                    _ => {}
                }
                s = rest;
                Prefix::Plus
            }
            _ if scheme == Some(Scheme::Tel) => return Err(first_bad_byte(s).unwrap_or(MsisdnError::TelWithoutPlus)),
            [b'0', b'0', rest @ ..] => {
                if let [b'+', ..] = rest {
                    return Err(MsisdnError::TwoPrefixes);
                }
                s = rest;
                Prefix::DoubleZero
            }
            _ => Prefix::None,
        };

        let mut value: u64 = 0;
        let mut count: u32 = 0;
        let mut first_digit = 0u8;
        // A separator is fine once a digit (or the `00` prefix) came before it and one follows it.
        let mut seen_digit = prefix == Prefix::DoubleZero;
        let mut after_separator = false;
        for (i, &b) in s.iter().enumerate() {
            match b {
                b'0'..=b'9' => {
                    if count == 0 {
                        first_digit = b;
                    }
                    if count < MAX_DIGITS {
                        value = value * 10 + u64::from(b - b'0');
                    }
                    count = count.saturating_add(1);
                    seen_digit = true;
                    after_separator = false;
                }
                b' ' | b'-' | b'.' | b'(' | b')' if seen_digit => after_separator = true,
                _ => return Err(classify_bad(s, i)),
            }
        }
        if after_separator {
            return Err(MsisdnError::InvalidCharacter);
        }
        if count == 0 {
            return Err(MsisdnError::TooShort { digits: 0 });
        }
        if first_digit == b'0' {
            return Err(MsisdnError::LeadingZeroCountryCode);
        }

        let national = prefix == Prefix::None && rules.national_len != 0 && count == u32::from(rules.national_len);
        let cc = u64::from(rules.default_country_code);
        let cc_digits = if national && cc != 0 { count_digits(cc) } else { 0 };
        let total = count.saturating_add(cc_digits);
        if total < MIN_DIGITS {
            return Err(MsisdnError::TooShort { digits: total });
        }
        if total > MAX_DIGITS {
            return Err(MsisdnError::TooLong { digits: total });
        }
        if cc_digits != 0 {
            // total <= 15, so cc * 10^count fits easily in a u64.
            value += cc * POW10[count as usize];
        }
        Ok(Msisdn(value))
    }

    /// Wraps the digits of an E.164 number given as an integer: 5..=15 digits (an integer never
    /// has a leading zero). `0` is reported as one digit, too short.
    pub fn from_digits(v: u64) -> Result<Msisdn, MsisdnError> {
        let digits = count_digits(v);
        if digits < MIN_DIGITS {
            Err(MsisdnError::TooShort { digits })
        } else if digits > MAX_DIGITS {
            Err(MsisdnError::TooLong { digits })
        } else {
            Ok(Msisdn(v))
        }
    }

    /// The digits as an integer, e.g. `34600000001`.
    pub fn value(self) -> u64 {
        self.0
    }

    /// The full number with `+`, e.g. `"+34600000001"`. Not for logs: use the masked `Display`.
    pub fn e164(self) -> String {
        format!("+{}", self.0)
    }

    /// The full number without `+`, e.g. `"34600000001"`. Not for logs.
    pub fn digits(self) -> String {
        self.0.to_string()
    }

    /// How many digits the number has (5..=15).
    pub fn digit_count(self) -> u32 {
        count_digits(self.0)
    }

    /// The number masked for logs and messages: `+34******001`.
    pub fn masked(self) -> Masked {
        Masked(self)
    }

    /// The digits most significant first, in `array[..len]`; for digit-wise lookups.
    pub(crate) fn digit_array(self) -> ([u8; MAX_DIGITS as usize], usize) {
        let mut out = [0u8; MAX_DIGITS as usize];
        let len = (self.digit_count() as usize).min(out.len());
        let mut v = self.0;
        for slot in out[..len].iter_mut().rev() {
            *slot = (v % 10) as u8;
            v /= 10;
        }
        (out, len)
    }
}

/// Display form of a masked [`Msisdn`]: `+`, the first two digits, one `*` per hidden digit, and
/// the last three digits (fewer for short numbers, so at least half the digits stay hidden).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Masked(Msisdn);

impl Masked {
    /// The masked text in a stack buffer (what `Display` writes, without a `String`).
    pub fn text(self) -> MaskedText {
        let (digits, len) = self.0.digit_array();
        let head = 2.min(len);
        let tail = (len.saturating_sub(head) / 2).min(3);
        let mut out = [b'*'; MAX_DIGITS as usize + 1];
        out[0] = b'+';
        for (i, &d) in digits[..len].iter().enumerate() {
            if i < head || i >= len - tail {
                out[i + 1] = b'0' + d;
            }
        }
        MaskedText { bytes: out, len: len + 1 }
    }
}

/// [`Masked::text`]: `+`, digits and `*`, at most 16 bytes.
#[derive(Clone, Copy)]
pub struct MaskedText {
    bytes: [u8; MAX_DIGITS as usize + 1],
    len: usize,
}

impl MaskedText {
    /// The masked number.
    pub fn as_str(&self) -> &str {
        // ASCII by construction (`+`, `*` and digits).
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl fmt::Display for Masked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.text().as_str())
    }
}

impl fmt::Debug for Masked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.masked(), f)
    }
}

impl fmt::Debug for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Msisdn({})", self.masked())
    }
}

/// `POW10[i] = 10^i`, up to the largest power of ten in a `u64`.
pub(crate) const POW10: [u64; 20] = {
    let mut table = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// Decimal digits of `v` (1 for 0). Branch-free: log2 from the leading zeros, times
/// log10(2) ≈ 1233/4096, corrected by one comparison; shorter than `ilog10` on the routing path.
fn count_digits(v: u64) -> u32 {
    let v = v | 1;
    let bits = 64 - v.leading_zeros();
    let guess = (bits * 1233) >> 12;
    guess + 1 - u32::from(v < POW10[guess as usize])
}

/// Drops surrounding spaces and tabs (not CR/LF: those are control characters).
fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Strips a case-insensitive `MSISDN:` or `tel:` scheme.
fn strip_scheme(s: &[u8]) -> (&[u8], Option<Scheme>) {
    if s.len() >= 7 && s[..7].eq_ignore_ascii_case(b"msisdn:") {
        (&s[7..], Some(Scheme::Msisdn))
    } else if s.len() >= 4 && s[..4].eq_ignore_ascii_case(b"tel:") {
        (&s[4..], Some(Scheme::Tel))
    } else {
        (s, None)
    }
}

/// For `tel:` without `+`: a worse problem (letters, control characters…) wins over the missing `+`.
fn first_bad_byte(s: &[u8]) -> Option<MsisdnError> {
    s.iter().position(|&b| !matches!(b, b'0'..=b'9' | b' ' | b'-' | b'.' | b'(' | b')')).map(|i| classify_bad(s, i))
}

/// The error for the byte at `s[i]`, which is neither a digit nor an allowed separator.
/// `s[i..]` starts a character: every byte before it was ASCII.
fn classify_bad(s: &[u8], i: usize) -> MsisdnError {
    let b = s[i];
    match b {
        b';' => MsisdnError::Extension,
        b'a'..=b'z' | b'A'..=b'Z' => MsisdnError::Letters,
        0..=0x1f | 0x7f => MsisdnError::ControlCharacter,
        0x80.. => {
            let c = std::str::from_utf8(&s[i..]).ok().and_then(|t| t.chars().next());
            match c {
                Some(c) if c.is_numeric() => MsisdnError::NonAsciiDigit,
                Some(c) if c.is_alphabetic() => MsisdnError::Letters,
                Some(c) if c.is_control() => MsisdnError::ControlCharacter,
                _ => MsisdnError::InvalidCharacter,
            }
        }
        _ => MsisdnError::InvalidCharacter,
    }
}

#[cfg(test)]
mod tests;
