//! `GET|HEAD|POST /sms/confirm/<token>`: the page behind the SMS confirm link of a decoupled
//! (CIBA) transaction in `pending_sms`, or racing its push in `pending_push` (race mode,
//! [`crate::flow::sms_start::race`]) (shared/security.md S-10). GET and HEAD only render —
//! the RP's name, the binding message (escaped) and explicit Approve / Deny buttons in a POST
//! form carrying a CSRF token bound to the transaction and its live link — and never change
//! state. POST without the right CSRF token → 403 page; otherwise the decision is one
//! compare-and-set ([`crate::sms::otp::decide_link`]): the RP then gets tokens (`acr "2"`,
//! `amr ["sms"]`) or `access_denied` at `/token`. An unknown, expired or used link shows one
//! "no longer valid" page (no oracle). Catalan, Spanish, English by the transaction's
//! `ui_locales`, then `Accept-Language`. Plain HTML, no JavaScript.

use super::error::RpError;
use super::form::Params;
use super::html::{escape, page_in};
use super::RequestLog;
use crate::app::Gateway;
use crate::flow::{Transaction, TxState};
use crate::msisdn::Msisdn;
use crate::sms::language::Language;
use crate::sms::otp::{self, Decision, Verdict};
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

/// Path prefix of confirm links.
pub const PREFIX: &str = "/sms/confirm/";

/// The token of a confirm-link path, if it is one.
pub fn token_of(path: &str) -> Option<&str> {
    path.strip_prefix(PREFIX).filter(|t| !t.is_empty() && !t.contains('/'))
}

struct Text {
    title: &'static str,
    asks: &'static str,
    binding: &'static str,
    approve: &'static str,
    deny: &'static str,
    only_if_you: &'static str,
    invalid_title: &'static str,
    invalid: &'static str,
    forbidden_title: &'static str,
    forbidden: &'static str,
    approved: &'static str,
    denied: &'static str,
    done_title: &'static str,
}

fn text(lang: Language) -> &'static Text {
    match lang {
        Language::En => &Text {
            title: "Confirm on your phone",
            asks: "asks you to confirm it is you.",
            binding: "Message from the service:",
            approve: "Approve",
            deny: "Deny",
            only_if_you: "Approve only if you started this yourself just now. Never approve a request someone else asked you to.",
            invalid_title: "Link no longer valid",
            invalid: "This link is no longer valid: it was used, it expired or it is wrong. Nothing was approved. Start again from the service.",
            forbidden_title: "Request refused",
            forbidden: "This form could not be checked. Open the link from the SMS again.",
            approved: "Approved. You can go back to the service.",
            denied: "Denied. Nothing was shared with the service.",
            done_title: "Thank you",
        },
        Language::Es => &Text {
            title: "Confirma desde tu móvil",
            asks: "te pide que confirmes que eres tú.",
            binding: "Mensaje del servicio:",
            approve: "Aprobar",
            deny: "Rechazar",
            only_if_you: "Aprueba solo si lo acabas de iniciar tú. Nunca apruebes una solicitud que otra persona te haya pedido.",
            invalid_title: "Enlace no válido",
            invalid: "Este enlace ya no es válido: se ha usado, ha caducado o es incorrecto. No se ha aprobado nada. Vuelve a empezar desde el servicio.",
            forbidden_title: "Solicitud rechazada",
            forbidden: "No se ha podido comprobar el formulario. Abre de nuevo el enlace del SMS.",
            approved: "Aprobado. Ya puedes volver al servicio.",
            denied: "Rechazado. No se ha compartido nada con el servicio.",
            done_title: "Gracias",
        },
        Language::Ca => &Text {
            title: "Confirma des del mòbil",
            asks: "et demana que confirmis que ets tu.",
            binding: "Missatge del servei:",
            approve: "Aprova",
            deny: "Rebutja",
            only_if_you: "Aprova-ho només si ho acabes d'iniciar tu. No aprovis mai una sol·licitud que una altra persona t'hagi demanat.",
            invalid_title: "Enllaç no vàlid",
            invalid: "Aquest enllaç ja no és vàlid: s'ha fet servir, ha caducat o és incorrecte. No s'ha aprovat res. Torna a començar des del servei.",
            forbidden_title: "Sol·licitud rebutjada",
            forbidden: "No s'ha pogut comprovar el formulari. Torna a obrir l'enllaç de l'SMS.",
            approved: "Aprovat. Ja pots tornar al servei.",
            denied: "Rebutjat. No s'ha compartit res amb el servei.",
            done_title: "Gràcies",
        },
    }
}

/// The page language: the transaction's (`ui_locales`), else `Accept-Language`, else the default.
pub fn language(gw: &Gateway, tx: Option<&Transaction>, headers: &HeaderMap) -> Language {
    let from_tx = tx.and_then(|t| t.sms.as_ref()).and_then(|s| s.language.as_deref());
    let accept = headers.get(http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    Language::pick(from_tx, accept, gw.sms_codes.default_language)
}

fn message(status: StatusCode, lang: Language, title: &str, msg: &str) -> Response<Full<Bytes>> {
    let role = if status.is_success() { "status" } else { "alert" };
    page_in(status, lang.tag(), &escape(title), &format!("<p role=\"{role}\">{}</p>", escape(msg)))
}

/// The one page for an unknown, expired or used link.
fn invalid(lang: Language) -> Response<Full<Bytes>> {
    let t = text(lang);
    message(StatusCode::NOT_FOUND, lang, t.invalid_title, t.invalid)
}

/// Whether `tx` still waits for this link's answer at `now_ms`.
fn live(tx: &Transaction, now_ms: u64) -> bool {
    (tx.state == TxState::PendingSms || crate::flow::sms_start::racing(tx))
        && now_ms < tx.expires_at_ms
        && tx.sms.as_ref().is_some_and(|s| s.mode == otp::SmsMode::Link && now_ms < s.expires_at_ms)
}

fn log_tx(log: &mut RequestLog, tx: &Transaction) {
    log.client = Some(tx.client_id.clone());
    log.operator = Some(tx.operator.clone());
    log.msisdn = Msisdn::from_digits(tx.msisdn).ok();
}

/// `GET` / `HEAD`: renders, never changes anything.
pub async fn get(
    gw: &Gateway,
    token: &str,
    headers: &HeaderMap,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, RpError> {
    let found = otp::find_link(gw, token).await.map_err(unavailable)?;
    let Some(v) = found.as_ref().filter(|v| live(&v.value, gw.clock.now_ms())) else {
        // The link's holder may learn its language, nothing else.
        return Ok(invalid(language(gw, found.as_ref().map(|v| &v.value), headers)));
    };
    let tx = &v.value;
    log_tx(log, tx);
    let lang = language(gw, Some(tx), headers);
    let t = text(lang);
    let rp = gw.clients.get(&tx.client_id).map_or(tx.client_id.as_str(), |c| c.name.as_str());
    let binding = tx.binding_message.as_deref().map_or(String::new(), |b| {
        format!("<p>{}</p><blockquote id=\"binding\"><p>{}</p></blockquote>", escape(t.binding), escape(b))
    });
    let body = format!(
        "<p><strong>{rp}</strong> {asks}</p>{binding}<p>{only}</p>\
         <form method=\"post\" action=\"{PREFIX}{token}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" name=\"decision\" value=\"approve\">{approve}</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">{deny}</button></form>",
        rp = escape(rp),
        asks = escape(t.asks),
        only = escape(t.only_if_you),
        token = escape(token),
        csrf = escape(&gw.sms_codes.csrf_token(tx)),
        approve = escape(t.approve),
        deny = escape(t.deny),
    );
    Ok(page_in(StatusCode::OK, lang.tag(), &escape(t.title), &body))
}

/// `POST`: the person's decision (form `csrf`, `decision=approve|deny`).
pub async fn post(
    gw: &Gateway,
    token: &str,
    headers: &HeaderMap,
    form: &Params<'_>,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, RpError> {
    let found = otp::find_link(gw, token).await.map_err(unavailable)?;
    let Some(v) = found.as_ref().filter(|v| live(&v.value, gw.clock.now_ms())) else {
        // The link's holder may learn its language, nothing else.
        return Ok(invalid(language(gw, found.as_ref().map(|v| &v.value), headers)));
    };
    let tx = &v.value;
    log_tx(log, tx);
    let lang = language(gw, Some(tx), headers);
    let t = text(lang);
    if !gw.sms_codes.csrf_ok(tx, form.get("csrf")) {
        return Ok(message(StatusCode::FORBIDDEN, lang, t.forbidden_title, t.forbidden));
    }
    let decision = match form.get("decision") {
        Some("approve") => Decision::Approve,
        Some("deny") => Decision::Deny,
        _ => return Ok(message(StatusCode::BAD_REQUEST, lang, t.forbidden_title, t.forbidden)),
    };
    match otp::decide_link(gw, &tx.id, decision).await.map_err(unavailable)? {
        Verdict::Done(done) if done.state == TxState::Approved => {
            Ok(message(StatusCode::OK, lang, t.done_title, t.approved))
        }
        Verdict::Done(_) => Ok(message(StatusCode::OK, lang, t.done_title, t.denied)),
        Verdict::Rejected | Verdict::Ended(_) | Verdict::NotPending => Ok(invalid(lang)),
    }
}

fn unavailable(e: crate::store::StoreError) -> RpError {
    RpError::TemporarilyUnavailable(format!("transaction store: {e}").into())
}
