//! Request bodies and parameters: the body is read up to the configured limit (413 beyond it),
//! must be `application/x-www-form-urlencoded` (415 otherwise), and is parsed into [`Params`],
//! which refuses repeated parameters (RFC 6749 §3.1) and too many fields.

use super::error::RpError;
use bytes::Bytes;
use http::{header, HeaderMap, Request};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::borrow::Cow;

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

/// Whether the body is `application/json` (accepted besides forms where an endpoint says so).
pub fn is_json(headers: &HeaderMap) -> bool {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json")
}

/// Parses a JSON body that is one object of string values (`/si-authorize`) into [`Params`]. Any
/// other shape, a non-string value, a repeated name or more than [`MAX_FIELDS`] members is
/// `invalid_request`; nested values are refused without being parsed.
pub fn parse_json(raw: &[u8]) -> Result<Params<'static>, RpError> {
    let mut problem = None;
    let mut de = serde_json::Deserializer::from_slice(raw);
    let parsed = serde::Deserializer::deserialize_map(&mut de, JsonPairs { problem: &mut problem })
        .and_then(|pairs| de.end().map(|()| pairs));
    match parsed {
        Ok(pairs) => Ok(Params::from_owned(pairs)),
        Err(_) => Err(RpError::InvalidRequest(
            problem.unwrap_or_else(|| "the JSON body must be one object whose values are strings".into()).into(),
        )),
    }
}

/// Collects a JSON object's members; the reason of a refusal goes to `problem` (serde's own
/// messages may quote the value, which could be a secret or an MSISDN).
struct JsonPairs<'p> {
    problem: &'p mut Option<String>,
}

impl<'de> serde::de::Visitor<'de> for JsonPairs<'_> {
    type Value = Vec<(String, String)>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object of string values")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(8);
        while let Some(name) = map.next_key::<String>()? {
            let why = if pairs.len() == MAX_FIELDS {
                Some("too many parameters".to_owned())
            } else if pairs.iter().any(|(n, _)| *n == name) {
                Some(format!("parameter {} is repeated", printable(&name)))
            } else {
                None
            };
            if let Some(why) = why {
                *self.problem = Some(why);
                return Err(A::Error::custom("refused"));
            }
            // A non-string is refused at its first byte: nothing nested is parsed.
            let Ok(value) = map.next_value::<String>() else {
                *self.problem = Some(format!("parameter {} must be a JSON string", printable(&name)));
                return Err(A::Error::custom("refused"));
            };
            pairs.push((name, value));
        }
        Ok(pairs)
    }
}

/// Decoded parameters, in order, borrowing from the body where no decoding was needed.
#[derive(Debug, Default)]
pub struct Params<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Params<'a> {
    /// Parses `a=b&c=d`; a repeated name or more than [`MAX_FIELDS`] fields is `invalid_request`.
    pub fn parse(raw: &'a [u8]) -> Result<Self, RpError> {
        match std::str::from_utf8(raw) {
            Ok(text) => Self::parse_str(text),
            Err(_) => Self::parse_bytes(raw),
        }
    }

    /// [`Params::parse`] component by component (a body that is not UTF-8 as a whole).
    fn parse_bytes(raw: &'a [u8]) -> Result<Self, RpError> {
        let mut pairs: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::with_capacity(16);
        for field in raw.split(|b| *b == b'&').filter(|f| !f.is_empty()) {
            let (k, v) = match field.iter().position(|b| *b == b'=') {
                Some(i) => (&field[..i], &field[i + 1..]),
                None => (field, &field[field.len()..]),
            };
            push_pair(&mut pairs, decode(k)?, decode(v)?)?;
        }
        Ok(Self { pairs })
    }

    /// [`Params::parse`] of a body that is UTF-8 as a whole (almost every body): checked once,
    /// split with `memchr`, components without escapes borrowed as they are. The `%`/`+`
    /// positions are found in one pass over the whole body, not per component (two dozen short
    /// `memchr2` calls cost more than one long one). Same result, same errors in the same order
    /// as the byte path.
    fn parse_str(raw: &'a str) -> Result<Self, RpError> {
        let bytes = raw.as_bytes();
        let mut escapes = memchr::memchr2_iter(b'%', b'+', bytes).peekable();
        let mut pairs: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::with_capacity(16);
        let mut start = 0;
        for end in memchr::memchr_iter(b'&', bytes).chain(std::iter::once(bytes.len())) {
            let field = start..end;
            start = end + 1;
            if field.is_empty() {
                continue;
            }
            let (k, v) = match memchr::memchr(b'=', &bytes[field.clone()]) {
                Some(i) => (field.start..field.start + i, field.start + i + 1..field.end),
                None => (field.clone(), field.end..field.end),
            };
            push_pair(&mut pairs, component(raw, k, &mut escapes)?, component(raw, v, &mut escapes)?)?;
        }
        Ok(Self { pairs })
    }

    /// Parameters from owned name/value pairs (e.g. the claims of a request object).
    pub fn from_owned(pairs: Vec<(String, String)>) -> Params<'static> {
        Params { pairs: pairs.into_iter().map(|(k, v)| (Cow::Owned(k), Cow::Owned(v))).collect() }
    }

    /// Every parameter name with a non-empty value, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, _)| k.as_ref())
    }

    /// A parameter's value; empty values count as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_ref()).filter(|v| !v.is_empty())
    }

    /// Every parameter, in request order (empty values included).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// A required parameter.
    pub fn require(&self, name: &'static str) -> Result<&str, RpError> {
        self.get(name).ok_or_else(|| RpError::InvalidRequest(format!("{name} is required").into()))
    }
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space, `%XX` a byte),
/// borrowing when there is nothing to decode; the result must be UTF-8.
fn decode(raw: &[u8]) -> Result<Cow<'_, str>, RpError> {
    let bad = || RpError::invalid_request("form body is not valid UTF-8");
    let Some(first) = memchr::memchr2(b'%', b'+', raw) else {
        return std::str::from_utf8(raw).map(Cow::Borrowed).map_err(|_| bad());
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..first]);
    let mut i = first;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => match (raw.get(i + 1).and_then(|b| hex(*b)), raw.get(i + 2).and_then(|b| hex(*b))) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| bad())
}

/// Adds one decoded field, refusing the field past [`MAX_FIELDS`] and a repeated name (both
/// parse paths).
fn push_pair<'a>(
    pairs: &mut Vec<(Cow<'a, str>, Cow<'a, str>)>,
    k: Cow<'a, str>,
    v: Cow<'a, str>,
) -> Result<(), RpError> {
    if pairs.len() == MAX_FIELDS {
        return Err(RpError::invalid_request("too many parameters"));
    }
    if pairs.iter().any(|(n, _)| *n == k) {
        return Err(RpError::InvalidRequest(format!("parameter {} is repeated", printable(&k)).into()));
    }
    pairs.push((k, v));
    Ok(())
}

/// [`decode`] of the component `range` of a UTF-8 body (cut at ASCII `&`/`=`): borrowed unless
/// it has `%` or `+`. `escapes`: the positions of every `%` and `+` in the body, ascending;
/// components come in order, so the ones before `range` are dropped as it goes.
fn component<'a>(
    raw: &'a str,
    range: std::ops::Range<usize>,
    escapes: &mut std::iter::Peekable<impl Iterator<Item = usize>>,
) -> Result<Cow<'a, str>, RpError> {
    while escapes.next_if(|&p| p < range.start).is_some() {}
    match escapes.peek() {
        Some(&p) if p < range.end => decode(&raw.as_bytes()[range]),
        _ => Ok(Cow::Borrowed(&raw[range])),
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
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
    fn utf8_bodies_parse_as_the_byte_path_does() {
        let bodies: [&[u8]; 14] = [
            b"a=1&a=%FF",
            b"a=1&b=%20x+y&&c&d=",
            b"+=%&%=+&&=&=&a+b=c%2Bd&e=f+",
            b"k=%41%42&%4B=&+&x=%",
            b"a=\xc3\xa9%C3&b=%A9",
            b"a=1&",
            b"&a",
            b"scope=openid%20mc_authn&login_hint=MSISDN:34600000001&binding_message=AAAA",
            b"a=1&a=2",
            b"a=%C3%A9&b=%FF",
            b"=v&k==x",
            b"x=caf\xc3\xa9&y=%",
            b"",
            b"&&&",
        ];
        for raw in bodies {
            let show = |r: Result<Params<'_>, RpError>| {
                r.map(|p| p.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect::<Vec<_>>())
                    .map_err(|e| format!("{e:?}"))
            };
            assert_eq!(show(Params::parse(raw)), show(Params::parse_bytes(raw)), "{raw:?}");
        }
        let many: String = (0..=MAX_FIELDS).map(|i| format!("f{i}=%2B{i}&")).collect();
        assert!(Params::parse(many.as_bytes()).is_err(), "too many parameters");
        let at_cap = many.rsplitn(3, '&').nth(2).unwrap().to_string();
        assert_eq!(Params::parse(at_cap.as_bytes()).unwrap().get("f99"), Some("+99"));
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(matches!(Params::parse(b"a=1&a=2"), Err(RpError::InvalidRequest(_))));
        let p = Params::parse(b"a=1&b=&c=x%20y").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y"));
    }

    #[test]
    fn decoding_matches_the_form_encoding_rules() {
        let p = Params::parse(b"a=x+y%2Bz&b=%E2%82%AC&c=100%&d=%zz&e").unwrap();
        assert_eq!(p.get("a"), Some("x y+z"));
        assert_eq!(p.get("b"), Some("\u{20ac}"));
        assert_eq!(p.get("c"), Some("100%"), "a lone % stays literal");
        assert_eq!(p.get("d"), Some("%zz"));
        assert_eq!(p.get("e"), None);
        assert!(Params::parse(b"a=%FF").is_err(), "not UTF-8");
        assert!(Params::parse(b"a=1&&b=2").is_ok());
    }

    #[test]
    fn json_bodies_are_flat_objects_of_strings() {
        let p = parse_json(br#"{"client_id":"rp","scope":"openid mc_authn","e":""}"#).unwrap();
        assert_eq!((p.get("client_id"), p.get("scope"), p.get("e")), (Some("rp"), Some("openid mc_authn"), None));
        let why = |raw: &[u8]| match parse_json(raw) {
            Err(RpError::InvalidRequest(m)) => m.into_owned(),
            other => panic!("{other:?}"),
        };
        assert_eq!(why(br#"{"a":"1","a":"2"}"#), "parameter a is repeated");
        assert_eq!(why(br#"{"msisdn":34600000001}"#), "parameter msisdn must be a JSON string");
        assert!(!why(br#"{"x":34600000001}"#).contains("346"), "values are never echoed");
        assert_eq!(why(br#"{"deep":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["#), "parameter deep must be a JSON string");
        for bad in [&b"[]"[..], b"\"s\"", b"34600000001", b"{", b"{} {}", b"not json"] {
            assert!(!why(bad).contains("346"), "{bad:?}");
        }
        let many: String = (0..101).map(|i| format!("\"f{i}\":\"1\"")).collect::<Vec<_>>().join(",");
        assert_eq!(why(format!("{{{many}}}").as_bytes()), "too many parameters");
    }

    #[test]
    fn too_many_fields_are_refused() {
        let body: String = (0..101).map(|i| format!("f{i}=1&")).collect();
        assert!(Params::parse(body.as_bytes()).is_err());
    }
}
