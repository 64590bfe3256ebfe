//! The languages of SMS texts and SMS pages (Catalan, Spanish, English) and how one is chosen:
//! the request's `ui_locales` first, then the browser's `Accept-Language` (pages only), then
//! `[sms_codes] default_language`.

/// A language we write in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Catalan.
    Ca,
    /// Spanish.
    Es,
    /// English.
    En,
}

impl Language {
    /// From a BCP 47 tag's primary subtag (`ca`, `es-ES`, `EN-gb`, …).
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or("");
        match primary.to_ascii_lowercase().as_str() {
            "ca" => Some(Self::Ca),
            "es" => Some(Self::Es),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    /// The `lang` attribute / config form.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Ca => "ca",
            Self::Es => "es",
            Self::En => "en",
        }
    }

    /// The first language of a space-separated `ui_locales` we speak.
    pub fn from_ui_locales(ui_locales: &str) -> Option<Self> {
        ui_locales.split_ascii_whitespace().find_map(Self::from_tag)
    }

    /// The preferred language of an `Accept-Language` header we speak (highest `q`, then order;
    /// `q=0` excluded).
    pub fn from_accept_language(header: &str) -> Option<Self> {
        let mut best: Option<(u16, usize, Self)> = None;
        for (i, item) in header.split(',').take(32).enumerate() {
            let mut parts = item.split(';');
            let Some(lang) = parts.next().and_then(Self::from_tag) else { continue };
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(1000, |q| (q.trim().parse::<f32>().unwrap_or(0.0).clamp(0.0, 1.0) * 1000.0) as u16);
            if q == 0 {
                continue;
            }
            if best.is_none_or(|(bq, bi, _)| q > bq || (q == bq && i < bi)) {
                best = Some((q, i, lang));
            }
        }
        best.map(|(_, _, l)| l)
    }

    /// `ui_locales`, then `Accept-Language`, then `default`.
    pub fn pick(ui_locales: Option<&str>, accept_language: Option<&str>, default: Self) -> Self {
        ui_locales
            .and_then(Self::from_ui_locales)
            .or_else(|| accept_language.and_then(Self::from_accept_language))
            .unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::Language::{self, *};

    #[test]
    fn ui_locales_win_then_accept_language_then_the_default() {
        assert_eq!(Language::pick(Some("fr ca-ES"), Some("en"), Es), Ca);
        assert_eq!(Language::pick(Some("fr"), Some("fr, en;q=0.5, es;q=0.8"), Ca), Es);
        assert_eq!(Language::pick(None, Some("de"), En), En);
        assert_eq!(Language::pick(None, Some("es;q=0, en;q=0.1"), Ca), En);
        assert_eq!(Language::pick(None, Some("EN-gb, ca"), Es), En, "equal q: first listed");
        assert_eq!(Language::pick(None, None, Ca), Ca);
    }
}
