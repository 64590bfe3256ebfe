//! The SMS text (shared/security.md S-11, S-12): who asks (the RP's name), for what (sign in or
//! authorise), the binding message, the minutes left, "never share", that the operator's push
//! is the stronger way; Catalan, Spanish or English. OTP texts end with exactly the
//! origin-bound line `@<issuer host> #<code>` (WebOTP / OBC) so browsers can offer the code to
//! the gateway's own page only; link texts end with the confirm link on the gateway's own host
//! (no shortener). A text takes at most `[sms_codes] max_segments` SMS segments (GSM-7 septets
//! or UCS-2 units counted as an SMSC does); a binding message that does not fit first loses the
//! accents GSM-7 lacks (`ó` → `o`: one UCS-2 character would otherwise halve the room), then is
//! shortened with `...` down to [`MIN_BINDING_CHARS`]; below that the text is refused.
//!
//! Integrator: `compose(&MessageInput { .. }, gw.sms_codes.max_segments)?.text`, with
//! `issuer_host(&gw.issuer)` and, for links, `otp::confirm_url(&gw.issuer, &secret)`.

use super::language::Language;

/// The shortest binding message we shorten to before refusing the text.
pub const MIN_BINDING_CHARS: usize = 16;
/// What marks a shortened binding message (GSM-7).
const ELLIPSIS: &str = "...";

/// What the person is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Sign in (`mc_authn`).
    SignIn,
    /// Authorise an operation (`mc_authz`).
    Authorize,
}

impl Purpose {
    /// From the granted scope.
    pub fn of_scope(scope: &str) -> Self {
        if scope.split_ascii_whitespace().any(|s| s == "mc_authz") {
            Self::Authorize
        } else {
            Self::SignIn
        }
    }
}

/// The secret part of the text.
#[derive(Clone, Copy)]
pub enum Body<'a> {
    /// A code for the gateway's page: the last line is `@<issuer_host> #<code>`.
    Otp {
        /// Host of our issuer (no scheme, no port).
        issuer_host: &'a str,
        /// The code.
        code: &'a str,
    },
    /// A confirm link on our own host: the last line.
    Link {
        /// `https://<issuer host>/sms/confirm/<token>`.
        url: &'a str,
    },
}

/// Everything a text says.
#[derive(Clone, Copy)]
pub struct MessageInput<'a> {
    /// Language.
    pub language: Language,
    /// The RP's display name.
    pub rp_name: &'a str,
    /// Sign in or authorise.
    pub purpose: Purpose,
    /// The RP's binding message, shown as is (shortened only to fit).
    pub binding_message: Option<&'a str>,
    /// Whole minutes the code or link is still valid (at least 1 is shown).
    pub minutes_left: u64,
    /// Code or link.
    pub body: Body<'a>,
}

/// How an SMSC will encode a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38 default alphabet (160 septets, 153 per part when concatenated).
    Gsm7,
    /// UCS-2 (70 units, 67 per part).
    Ucs2,
}

/// A composed text.
pub struct Composed {
    /// The text (contains the secret: never log it).
    pub text: String,
    /// Its encoding.
    pub encoding: Encoding,
    /// SMS segments it takes.
    pub segments: usize,
    /// Whether the binding message was changed to fit: accents GSM-7 lacks dropped (á → a),
    /// then, if still too long, shortened with `...`.
    pub binding_shortened: bool,
}

impl std::fmt::Debug for Composed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Composed")
            .field("text", &"[redacted]")
            .field("encoding", &self.encoding)
            .field("segments", &self.segments)
            .field("binding_shortened", &self.binding_shortened)
            .finish()
    }
}

/// The text cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Even with the binding message shortened to its minimum the text takes too many segments.
    #[error("the SMS text does not fit in {0} segments")]
    TooLong(u8),
}

const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENSION: &str = "^{}\\[~]|€\u{c}";

/// Septets of `c` in GSM-7 (1 basic, 2 extension), `None` if it needs UCS-2.
fn gsm_septets(c: char) -> Option<usize> {
    if GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Encoding and segment count of `text`.
pub fn segments(text: &str) -> (Encoding, usize) {
    let septets: Option<usize> = text.chars().map(gsm_septets).sum();
    let (enc, units, single, part) = match septets {
        Some(s) => (Encoding::Gsm7, s, 160, 153),
        None => (Encoding::Ucs2, text.encode_utf16().count(), 70, 67),
    };
    let n = if units <= single { 1 } else { units.div_ceil(part) };
    (enc, n)
}

/// Our own wording in GSM-7 letters: accents the alphabet lacks lose them (á → a), so the RP's
/// name and binding message alone decide whether a text needs UCS-2.
fn gsm_fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'á' | 'â' | 'ã' => 'a',
            'í' | 'ï' | 'î' => 'i',
            'ó' | 'ô' | 'õ' => 'o',
            'ú' | 'û' => 'u',
            'ê' | 'ë' => 'e',
            'Á' | 'À' | 'Â' => 'A',
            'Í' | 'Ì' | 'Ï' => 'I',
            'Ó' | 'Ò' | 'Ô' => 'O',
            'Ú' | 'Ù' => 'U',
            'È' | 'Ê' => 'E',
            'ç' => 'c',
            '·' => '.',
            '’' | '‘' => '\'',
            '“' | '”' => '"',
            '–' | '—' => '-',
            c => c,
        })
        .collect()
}

struct Wording {
    asks: &'static str,
    sign_in: &'static str,
    authorize: &'static str,
    otp: &'static str,
    link: &'static str,
    never_share: &'static str,
    push_stronger: &'static str,
}

fn wording(lang: Language) -> &'static Wording {
    match lang {
        Language::En => &Wording {
            asks: "asks you to",
            sign_in: "sign in",
            authorize: "authorise an operation",
            otp: "Code {code}, valid {m} min.",
            link: "Approve or deny within {m} min:",
            never_share: "Never share it.",
            push_stronger: "Your operator's push is safer than SMS.",
        },
        Language::Es => &Wording {
            asks: "te pide",
            sign_in: "iniciar sesión",
            authorize: "autorizar una operación",
            otp: "Código {code}, válido {m} min.",
            link: "Aprueba o rechaza en {m} min:",
            never_share: "No lo compartas nunca.",
            push_stronger: "El aviso de tu operador es más seguro que un SMS.",
        },
        Language::Ca => &Wording {
            asks: "et demana",
            sign_in: "iniciar la sessió",
            authorize: "autoritzar una operació",
            otp: "Codi {code}, vàlid {m} min.",
            link: "Aprova o rebutja en {m} min:",
            never_share: "No el comparteixis mai.",
            push_stronger: "L'avís del teu operador és més segur que un SMS.",
        },
    }
}

/// The text with the binding message as given (`None`: without one).
fn render(input: &MessageInput<'_>, binding: Option<&str>) -> String {
    let w = wording(input.language);
    let purpose = match input.purpose {
        Purpose::SignIn => w.sign_in,
        Purpose::Authorize => w.authorize,
    };
    let m = input.minutes_left.max(1).to_string();
    let mut text = format!("{} {}", input.rp_name, gsm_fold(&format!("{} {purpose}", w.asks)));
    match binding {
        Some(b) => {
            text.push_str(": \"");
            text.push_str(b);
            text.push_str("\". ");
        }
        None => text.push_str(". "),
    }
    let (action, last) = match input.body {
        Body::Otp { issuer_host, code } => {
            (gsm_fold(w.otp).replace("{code}", code).replace("{m}", &m), format!("@{issuer_host} #{code}"))
        }
        Body::Link { url } => (gsm_fold(w.link).replace("{m}", &m), url.to_owned()),
    };
    text.push_str(&gsm_fold(w.never_share));
    text.push(' ');
    text.push_str(&gsm_fold(w.push_stronger));
    text.push(' ');
    text.push_str(&action);
    text.push('\n');
    text.push_str(&last);
    text
}

/// The text, within `max_segments` segments.
pub fn compose(input: &MessageInput<'_>, max_segments: u8) -> Result<Composed, MessageError> {
    let fits = |t: &str| segments(t).1 <= usize::from(max_segments);
    let done = |text: String, binding_shortened| {
        let (encoding, segments) = segments(&text);
        Ok(Composed { text, encoding, segments, binding_shortened })
    };
    let full = render(input, input.binding_message);
    if fits(&full) {
        return done(full, false);
    }
    let Some(binding) = input.binding_message else { return Err(MessageError::TooLong(max_segments)) };
    let folded = gsm_fold(binding);
    let text = render(input, Some(&folded));
    if fits(&text) {
        return done(text, true);
    }
    let chars: Vec<char> = folded.chars().collect();
    // Longest prefix (whole characters, trailing spaces dropped) that fits.
    let mut n = chars.len();
    while n > MIN_BINDING_CHARS {
        n -= 1;
        let prefix: String = chars[..n].iter().collect();
        let shortened = format!("{}{ELLIPSIS}", prefix.trim_end());
        let text = render(input, Some(&shortened));
        if fits(&text) {
            return done(text, true);
        }
    }
    Err(MessageError::TooLong(max_segments))
}

/// The host of our issuer URL, for the origin-bound line.
pub fn issuer_host(issuer: &str) -> Option<String> {
    url::Url::parse(issuer).ok()?.host_str().map(str::to_owned)
}

/// Parses the origin-bound last line of a text (`@<host> #<code>`, optionally ` %<host>`,
/// single spaces, nothing after): `(host, code)`.
pub fn parse_origin_bound(text: &str) -> Option<(String, String)> {
    let last = text.rsplit('\n').next()?;
    let rest = last.strip_prefix('@')?;
    let (host, rest) = rest.split_once(" #")?;
    let code = match rest.split_once(" %") {
        Some((code, embedder)) if !embedder.is_empty() && !embedder.contains(char::is_whitespace) => code,
        Some(_) => return None,
        None => rest,
    };
    let clean = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace) && !s.contains(['#', '@', '%']);
    (clean(host) && clean(code)).then(|| (host.to_owned(), code.to_owned()))
}

#[cfg(test)]
mod tests;
