//! Message text → SMPP `short_message` segments: GSM 03.38 (7-bit default alphabet, sent
//! unpacked, `data_coding` 0) when every character has a GSM code, else UCS-2 (`data_coding` 8);
//! a text longer than one SMS is split into concatenated segments with a UDH (8-bit reference),
//! at most `max_segments` of them. Encoding and splitting are rusmpp's (`extra` feature); this
//! module only picks the sizes. [`decode`] reverses it for the SMSC simulator.

use rusmpp::extra::concatenation::SubmitSmMultipartExt;
use rusmpp::extra::encoding::gsm7bit::Gsm7BitUnpacked;
use rusmpp::pdus::SubmitSm;
use rusmpp::values::DataCoding;
use std::sync::OnceLock;

/// One SMS: 160 GSM septets (sent unpacked, one octet each).
pub const GSM_SINGLE: usize = 160;
/// One SMS: 140 octets (70 UCS-2 characters).
pub const UCS2_SINGLE: usize = 140;
/// Septets per concatenated GSM segment: 160 less the 6-octet UDH (7 septets with padding).
pub const GSM_PART: usize = 153;
/// Length of the concatenation UDH (8-bit reference), octets.
pub const UDH_LEN: usize = 6;

/// Which alphabet a text goes out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    /// GSM 03.38 default alphabet (`data_coding` 0).
    Gsm7,
    /// UCS-2 (`data_coding` 8).
    Ucs2,
}

/// Why a text cannot go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// More segments than allowed.
    #[error("text needs {needed} SMS segments, at most {max} allowed")]
    TooLong {
        /// Segments the text would take.
        needed: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The text is empty.
    #[error("empty text")]
    Empty,
    /// The encoder failed (not expected: UCS-2 covers every BMP character).
    #[error("cannot encode the text: {0}")]
    Encoding(String),
}

/// The alphabet `text` needs.
pub fn alphabet(text: &str) -> Alphabet {
    if Gsm7BitUnpacked::new().encode_to_vec(text).is_ok() {
        Alphabet::Gsm7
    } else {
        Alphabet::Ucs2
    }
}

/// `template` (addresses, flags set) with `text` as its short message(s): one PDU per segment,
/// concatenation UDHs and `data_coding` set. `reference` tags the segments of one message.
pub fn segments(
    template: SubmitSm,
    text: &str,
    reference: u8,
    max_segments: usize,
) -> Result<Vec<SubmitSm>, EncodeError> {
    if text.is_empty() {
        return Err(EncodeError::Empty);
    }
    let parts = match alphabet(text) {
        Alphabet::Gsm7 => {
            let len = Gsm7BitUnpacked::new().encode_to_vec(text).map(|v| v.len()).unwrap_or(usize::MAX);
            // Single: up to 160 septets. Concatenated: 153 septets after the UDH per segment.
            let max = if len <= GSM_SINGLE { GSM_SINGLE } else { GSM_PART + UDH_LEN };
            template
                .multipart(text)
                .max_short_message_size(max)
                .reference_u8(reference)
                .build()
                .map_err(|e| e.to_string())
        }
        Alphabet::Ucs2 => template
            .multipart(text)
            .ucs2()
            .max_short_message_size(UCS2_SINGLE)
            .reference_u8(reference)
            .build()
            .map_err(|e| e.to_string()),
    };
    let parts = parts.map_err(EncodeError::Encoding)?;
    if parts.len() > max_segments {
        return Err(EncodeError::TooLong { needed: parts.len(), max: max_segments });
    }
    Ok(parts)
}

/// The text of one received `short_message` (the SMSC simulator's side): strips a UDH when
/// `udhi`, decodes GSM 7-bit unpacked (`data_coding` 0) or UCS-2 (8); other codings as Latin-1.
pub fn decode(data_coding: DataCoding, udhi: bool, bytes: &[u8]) -> String {
    let body = if udhi && !bytes.is_empty() {
        let skip = 1 + bytes[0] as usize;
        bytes.get(skip..).unwrap_or_default()
    } else {
        bytes
    };
    match u8::from(data_coding) {
        0 => decode_gsm7(body),
        8 => {
            let units: Vec<u16> = body.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16_lossy(&units)
        }
        _ => body.iter().map(|&b| b as char).collect(),
    }
}

/// Reverse of rusmpp's GSM 03.38 table, built by encoding every candidate character once.
fn gsm_table() -> &'static [(Vec<u8>, char)] {
    static TABLE: OnceLock<Vec<(Vec<u8>, char)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let enc = Gsm7BitUnpacked::new();
        let mut t = Vec::new();
        let candidates = (0u32..0x400).chain([0x20AC]).filter_map(char::from_u32);
        for ch in candidates {
            if let Ok(v) = enc.encode_to_vec(ch.encode_utf8(&mut [0; 4])) {
                if !t.iter().any(|(b, _): &(Vec<u8>, char)| *b == v) {
                    t.push((v, ch));
                }
            }
        }
        t
    })
}

fn decode_gsm7(bytes: &[u8]) -> String {
    let table = gsm_table();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let len = if bytes[i] == 0x1B && i + 1 < bytes.len() { 2 } else { 1 };
        let key = &bytes[i..i + len];
        out.push(table.iter().find(|(b, _)| b.as_slice() == key).map(|(_, c)| *c).unwrap_or('?'));
        i += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(parts: &[SubmitSm]) -> String {
        parts
            .iter()
            .map(|p| {
                let udhi = u8::from(p.esm_class) & 0x40 != 0;
                decode(p.data_coding, udhi, p.short_message().as_ref())
            })
            .collect()
    }

    #[test]
    fn short_gsm_text_is_one_segment_data_coding_0() {
        let text = "Banc Demo: Pagament 12,50 EUR\n@mcgate.example #123456";
        let parts = segments(SubmitSm::default(), text, 1, 2).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(u8::from(parts[0].data_coding), 0);
        assert_eq!(u8::from(parts[0].esm_class) & 0x40, 0, "no UDH for one segment");
        assert_eq!(text_of(&parts), text);
    }

    #[test]
    fn spanish_and_catalan_letters_in_gsm_stay_7_bit() {
        // ñ, é, ü, à, Ñ are in GSM 03.38; so is € (extension table).
        assert_eq!(alphabet("Añadir ñ é ü à Ñ 5€"), Alphabet::Gsm7);
        let parts = segments(SubmitSm::default(), "Añadir 5€ [x]", 1, 2).unwrap();
        assert_eq!(text_of(&parts), "Añadir 5€ [x]");
    }

    #[test]
    fn characters_outside_gsm_go_ucs2() {
        // ç, ò, í, ï are not all in GSM 03.38 (ò, í, ï are not): Catalan text may need UCS-2.
        let text = "Confirmació: ïò";
        assert_eq!(alphabet(text), Alphabet::Ucs2);
        let parts = segments(SubmitSm::default(), text, 1, 2).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(u8::from(parts[0].data_coding), 8);
        assert_eq!(text_of(&parts), text);
    }

    #[test]
    fn exactly_160_gsm_is_one_and_161_is_two() {
        let t160 = "a".repeat(160);
        assert_eq!(segments(SubmitSm::default(), &t160, 1, 2).unwrap().len(), 1);
        let t161 = "a".repeat(161);
        let parts = segments(SubmitSm::default(), &t161, 7, 2).unwrap();
        assert_eq!(parts.len(), 2);
        for p in &parts {
            assert_ne!(u8::from(p.esm_class) & 0x40, 0, "UDHI set");
            let sm: &[u8] = p.short_message().as_ref();
            assert!(sm.len() <= GSM_PART + UDH_LEN);
            // UDH: length 5, IEI 0 (8-bit ref concatenation), IE length 3, ref, total, seq.
            assert_eq!(&sm[..4], &[5, 0, 3, 7]);
            assert_eq!(sm[4], 2);
        }
        assert_eq!(text_of(&parts), t161);
    }

    #[test]
    fn ucs2_limits_are_70_then_67_per_segment() {
        let t70 = "ï".repeat(70);
        assert_eq!(segments(SubmitSm::default(), &t70, 1, 2).unwrap().len(), 1);
        let t71 = "ï".repeat(71);
        let parts = segments(SubmitSm::default(), &t71, 1, 2).unwrap();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.short_message().len() <= UCS2_SINGLE));
        assert_eq!(text_of(&parts), t71);
    }

    #[test]
    fn more_than_the_allowed_segments_is_refused() {
        let long = "a".repeat(GSM_PART * 2 + 1);
        assert_eq!(segments(SubmitSm::default(), &long, 1, 2).unwrap_err(), EncodeError::TooLong { needed: 3, max: 2 });
        assert_eq!(segments(SubmitSm::default(), "", 1, 2).unwrap_err(), EncodeError::Empty);
    }
}
