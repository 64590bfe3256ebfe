//! `GET|HEAD|POST /sms/otp?s=<handle>`: the redirect flow's SMS code page. The integrator arms
//! an OTP transaction (`crate::sms::otp`), then sends the browser to [`open_page`]'s URL; the
//! handle (256 random bits, stored only as an HMAC key naming the transaction, dead with the
//! code) names the transaction. GET/HEAD render [`render`] — labelled input with
//! `autocomplete="one-time-code"` and `inputmode="numeric"`, the RP's name and binding message
//! (escaped), a CSRF token bound to the transaction — and change nothing. POST (`s`, `csrf`,
//! `code`, or `action=cancel`) without the right CSRF token → 403 page; otherwise
//! [`crate::sms::otp::submit_code`]: right → our authorization code and a 302 back to the RP
//! ([`super::callback::issue_code_redirect`]; tokens then carry `acr "2"`, `amr ["sms","otp"]`);
//! wrong → the same page with one "not accepted" message (wrong, foreign and junk codes look
//! alike, S-07); the 5th wrong, or expiry → back to the RP with `transaction_failed` /
//! `expired_token`; cancel → `access_denied`. Catalan, Spanish, English by the transaction's
//! `ui_locales`, then `Accept-Language`. Plain HTML, no JavaScript.

use super::error::RpError;
use super::form::Params;
use super::html::{escape, page_in};
use super::sms_confirm::language;
use super::{redirect_back, RequestLog};
use crate::app::Gateway;
use crate::flow::{Transaction, TxState};
use crate::msisdn::Msisdn;
use crate::sms::language::Language;
use crate::sms::otp::{self, SmsMode, Verdict};
use crate::store::StoreError;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

/// The page's path.
pub const PATH: &str = "/sms/otp";
/// Longest handle looked up.
const MAX_HANDLE_LEN: usize = 64;

struct Text {
    title: &'static str,
    asks: &'static str,
    binding: &'static str,
    label: &'static str,
    hint: &'static str,
    submit: &'static str,
    cancel: &'static str,
    wrong: &'static str,
    invalid_title: &'static str,
    invalid: &'static str,
    forbidden_title: &'static str,
    forbidden: &'static str,
}

fn text(lang: Language) -> &'static Text {
    match lang {
        Language::En => &Text {
            title: "Enter the code from the SMS",
            asks: "asks you to confirm it is you.",
            binding: "Message from the service:",
            label: "Code from the SMS",
            hint: "We sent it to your mobile phone. Never share it with anyone.",
            submit: "Confirm",
            cancel: "Cancel",
            wrong: "That code was not accepted. Check the latest SMS and try again.",
            invalid_title: "Page no longer valid",
            invalid: "This page is no longer valid: the code was used or expired. Start again from the service.",
            forbidden_title: "Request refused",
            forbidden: "This form could not be checked. Start again from the service.",
        },
        Language::Es => &Text {
            title: "Introduce el código del SMS",
            asks: "te pide que confirmes que eres tú.",
            binding: "Mensaje del servicio:",
            label: "Código del SMS",
            hint: "Te lo hemos enviado al móvil. No lo compartas nunca con nadie.",
            submit: "Confirmar",
            cancel: "Cancelar",
            wrong: "No se ha aceptado el código. Revisa el último SMS y vuelve a intentarlo.",
            invalid_title: "Página no válida",
            invalid:
                "Esta página ya no es válida: el código se ha usado o ha caducado. Vuelve a empezar desde el servicio.",
            forbidden_title: "Solicitud rechazada",
            forbidden: "No se ha podido comprobar el formulario. Vuelve a empezar desde el servicio.",
        },
        Language::Ca => &Text {
            title: "Introdueix el codi de l'SMS",
            asks: "et demana que confirmis que ets tu.",
            binding: "Missatge del servei:",
            label: "Codi de l'SMS",
            hint: "Te l'hem enviat al mòbil. No el comparteixis mai amb ningú.",
            submit: "Confirma",
            cancel: "Cancel·la",
            wrong: "No s'ha acceptat el codi. Revisa l'últim SMS i torna-ho a provar.",
            invalid_title: "Pàgina no vàlida",
            invalid:
                "Aquesta pàgina ja no és vàlida: el codi s'ha fet servir o ha caducat. Torna a començar des del servei.",
            forbidden_title: "Sol·licitud rebutjada",
            forbidden: "No s'ha pogut comprovar el formulari. Torna a començar des del servei.",
        },
    }
}

/// Makes the code page of the armed OTP transaction `tx` reachable; returns the path and
/// query to send the browser to (`/sms/otp?s=<handle>`), valid while the code is.
pub async fn open_page(gw: &Gateway, tx: &Transaction) -> Result<String, StoreError> {
    let handle = crate::clock::random_token(32);
    let until = tx.sms.as_ref().map_or(tx.expires_at_ms, |s| s.expires_at_ms);
    gw.store.put_if_absent(&gw.sms_codes.page_index_key(&handle), &tx.id, until).await?;
    Ok(format!("{PATH}?s={handle}"))
}

/// The code page of `tx` reached through `handle`, in `lang`; `wrong`: after a refused code.
pub fn render(gw: &Gateway, tx: &Transaction, handle: &str, lang: Language, wrong: bool) -> Response<Full<Bytes>> {
    let t = text(lang);
    let rp = gw.clients.get(&tx.client_id).map_or(tx.client_id.as_str(), |c| c.name.as_str());
    let binding = tx.binding_message.as_deref().map_or(String::new(), |b| {
        format!("<p>{}</p><blockquote id=\"binding\"><p>{}</p></blockquote>", escape(t.binding), escape(b))
    });
    let (status, alert, described) = if wrong {
        (
            StatusCode::BAD_REQUEST,
            format!("<p class=\"error\" id=\"code-error\" role=\"alert\">{}</p>", escape(t.wrong)),
            " aria-invalid=\"true\" aria-describedby=\"code-hint code-error\"",
        )
    } else {
        (StatusCode::OK, String::new(), " aria-describedby=\"code-hint\"")
    };
    let digits = gw.sms_codes.digits;
    let body = format!(
        "<p><strong>{rp}</strong> {asks}</p>{binding}{alert}\
         <form method=\"post\" action=\"{PATH}\">\
         <input type=\"hidden\" name=\"s\" value=\"{handle}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label for=\"code\">{label}</label>\
         <span id=\"code-hint\">{hint}</span>\
         <input id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
         pattern=\"[0-9 ]*\" minlength=\"{digits}\" maxlength=\"{max}\" required{described}>\
         <button type=\"submit\">{submit}</button></form>\
         <form method=\"post\" action=\"{PATH}\">\
         <input type=\"hidden\" name=\"s\" value=\"{handle}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" name=\"action\" value=\"cancel\">{cancel}</button></form>",
        rp = escape(rp),
        asks = escape(t.asks),
        handle = escape(handle),
        csrf = escape(&gw.sms_codes.csrf_token(tx)),
        label = escape(t.label),
        hint = escape(t.hint),
        max = usize::from(digits) * 2,
        submit = escape(t.submit),
        cancel = escape(t.cancel),
    );
    let page = page_in(status, lang.tag(), &escape(t.title), &body);
    // Its POST answers with a 302 back to the RP: CSP form-action must allow that origin.
    match tx.redirect.as_ref() {
        Some(flow) => super::html::allow_form_redirect_to(page, &flow.redirect_uri),
        None => page,
    }
}

fn message(status: StatusCode, lang: Language, title: &str, msg: &str) -> Response<Full<Bytes>> {
    page_in(status, lang.tag(), &escape(title), &format!("<p role=\"alert\">{}</p>", escape(msg)))
}

fn invalid(lang: Language) -> Response<Full<Bytes>> {
    let t = text(lang);
    message(StatusCode::NOT_FOUND, lang, t.invalid_title, t.invalid)
}

/// The pending OTP transaction named by `handle`.
async fn find(gw: &Gateway, handle: Option<&str>) -> Result<Option<Transaction>, RpError> {
    let Some(h) = handle.filter(|h| !h.is_empty() && h.len() <= MAX_HANDLE_LEN) else { return Ok(None) };
    let Some(id) = gw.store.get_value(&gw.sms_codes.page_index_key(h)).await.map_err(unavailable)? else {
        return Ok(None);
    };
    let tx = gw.store.get(&id).await.map_err(unavailable)?.map(|v| v.value);
    let now = gw.clock.now_ms();
    Ok(tx.filter(|tx| {
        tx.state == TxState::PendingSms
            && tx.redirect.is_some()
            && now < tx.expires_at_ms
            && tx.sms.as_ref().is_some_and(|s| s.mode == SmsMode::Otp && now < s.expires_at_ms)
    }))
}

fn log_tx(log: &mut RequestLog, tx: &Transaction) {
    log.client = Some(tx.client_id.clone());
    log.operator = Some(tx.operator.clone());
    log.msisdn = Msisdn::from_digits(tx.msisdn).ok();
}

/// `GET` / `HEAD` (`query`: `s=<handle>`): renders, never changes anything.
pub async fn get(
    gw: &Gateway,
    query: &Params<'_>,
    headers: &HeaderMap,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, RpError> {
    let handle = query.get("s");
    let Some(tx) = find(gw, handle).await? else { return Ok(invalid(language(gw, None, headers))) };
    log_tx(log, &tx);
    Ok(render(gw, &tx, handle.unwrap_or_default(), language(gw, Some(&tx), headers), false))
}

/// `POST`: a typed code or a cancel.
pub async fn post(
    gw: &Gateway,
    form: &Params<'_>,
    headers: &HeaderMap,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, RpError> {
    let handle = form.get("s");
    let Some(tx) = find(gw, handle).await? else { return Ok(invalid(language(gw, None, headers))) };
    log_tx(log, &tx);
    let lang = language(gw, Some(&tx), headers);
    if !gw.sms_codes.csrf_ok(&tx, form.get("csrf")) {
        let t = text(lang);
        return Ok(message(StatusCode::FORBIDDEN, lang, t.forbidden_title, t.forbidden));
    }
    let verdict = if form.get("action") == Some("cancel") {
        otp::cancel_code(gw, &tx.id).await
    } else {
        otp::submit_code(gw, &tx.id, form.get("code").unwrap_or_default()).await
    };
    let flow = tx.redirect.as_ref().expect("checked by find");
    let back = |e: RpError| redirect_back::error(&flow.redirect_uri, &e, Some(&flow.state), &gw.issuer);
    let verdict = verdict.map_err(unavailable)?;
    // S-06: consecutive wrong codes per number across transactions (only a success resets).
    if let Ok(to) = crate::msisdn::Msisdn::from_digits(tx.msisdn) {
        let counted = match &verdict {
            Verdict::Rejected | Verdict::Ended(_) if form.get("action") != Some("cancel") => {
                gw.sms.limits.record_failure(&to).await.map(|_| ())
            }
            Verdict::Done(d) if d.state == TxState::Approved => gw.sms.limits.record_success(&to).await,
            _ => Ok(()),
        };
        if let Err(e) = counted {
            tracing::warn!(error = %e, "SMS failure counter not updated");
        }
    }
    match verdict {
        Verdict::Rejected => Ok(render(gw, &tx, handle.unwrap_or_default(), lang, true)),
        Verdict::NotPending => Ok(invalid(lang)),
        Verdict::Done(done) | Verdict::Ended(done) => match done.state {
            TxState::Approved => super::callback::issue_code_redirect(gw, &done.id, flow, gw.clock.now_ms()).await,
            TxState::Denied => back(RpError::PersonDenied),
            TxState::Expired => back(RpError::ExpiredToken),
            TxState::Failed(reason) => back(RpError::TransactionFailed(reason)),
            _ => back(RpError::Internal("unexpected state after an SMS code".into())),
        },
    }
}

fn unavailable(e: StoreError) -> RpError {
    RpError::TemporarilyUnavailable(format!("transaction store: {e}").into())
}
