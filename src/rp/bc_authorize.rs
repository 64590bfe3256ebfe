//! `POST /bc-authorize` (CIBA backchannel authentication, poll/ping/push): authenticate the client,
//! validate every parameter, find the person's operator, start the push there before answering
//! (so early refusals reach the RP at once), store the transaction and acknowledge with our own
//! `auth_req_id`. Operator outcomes map per shared/protocol.md §5 (SMS fallback comes later).
//! Ping/push clients must send a `client_notification_token`; their transaction is handed to
//! the background driver (503 + `Retry-After` when it is full).
//! A signed `request` (CIBA §7.1.1) carries the authentication parameters instead of the form;
//! outer parameters besides client authentication may only repeat its values.

use super::client_auth::RegisteredClient;
use super::error::{json_response, RpError};
use super::form::Params;
use super::idempotency::{self, Claim};
use super::login_hint;
use super::request_object::{verify_request_object, Expected};
use super::RequestLog;
use crate::app::Gateway;
use crate::flow::delivery::RequestDelivery;
use crate::flow::fallback::{Phase, SignalClass, Timing};
use crate::flow::sms_start;
use crate::flow::{Channel, DeliveryMode, FailReason, NotificationToken, OperatorRef, Transaction, TxState};
use crate::operators::{PushError, PushRequest};
use crate::sms::otp::SmsMode;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

/// Handles one backchannel authentication request.
pub async fn handle(
    gw: &Gateway,
    headers: &HeaderMap,
    outer: &Params<'_>,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, RpError> {
    let client = super::client_auth::authenticate(gw, headers, outer, "/bc-authorize").await?;
    log.client = Some(client.client_id.clone());
    let from_object;
    let form = match outer.get("request") {
        None => outer,
        Some(jws) => {
            let claims = Box::pin(verify_request_object(gw, client, jws, Expected::STRICT)).await?;
            from_object = request_params(&claims, outer)?;
            &from_object
        }
    };
    let req = StartRequest { client, params: form, delivery: None, nonce: None };
    Ok(start_once(gw, headers, &req, log).await?.response(true))
}

/// What starts a transaction: the client and the request's parameters (a form or a signed
/// request object at `/bc-authorize`, a request object at `/si-authorize`).
pub(crate) struct StartRequest<'a> {
    /// The client (authenticated, or proven by its signed request object).
    pub client: &'a RegisteredClient,
    /// `scope`, `login_hint` (or the unsupported hints), `acr_values`, `binding_message`,
    /// `requested_expiry`, `client_notification_token`; other names are ignored here but are
    /// part of the `Idempotency-Key` fingerprint.
    pub params: &'a Params<'a>,
    /// Delivery chosen by the request (MC-SI); `None`: the client's registered mode.
    pub delivery: Option<RequestDelivery>,
    /// The RP's nonce for the ID token (MC-SI).
    pub nonce: Option<&'a str>,
}

/// The acknowledgement of a started (or replayed) transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ack {
    /// Our auth_req_id.
    pub auth_req_id: String,
    /// Seconds left to answer.
    pub expires_in: u64,
    /// RP poll interval, seconds.
    pub interval: u64,
}

impl Ack {
    /// `200 {auth_req_id, expires_in}` (+ `interval` when the RP polls).
    pub fn response(&self, with_interval: bool) -> Response<Full<Bytes>> {
        // Written directly (same bytes as serde_json's object, keys in the same order): the
        // `json!` map cost more than the rest of the answer.
        let mut body = Vec::with_capacity(self.auth_req_id.len() + 64);
        body.extend_from_slice(b"{\"auth_req_id\":");
        let _ = serde_json::to_writer(&mut body, self.auth_req_id.as_str());
        body.extend_from_slice(b",\"expires_in\":");
        body.extend_from_slice(itoa::Buffer::new().format(self.expires_in).as_bytes());
        if with_interval {
            body.extend_from_slice(b",\"interval\":");
            body.extend_from_slice(itoa::Buffer::new().format(self.interval).as_bytes());
        }
        body.push(b'}');
        json_response(StatusCode::OK, body)
    }
}

/// Starts the transaction of `req` once per `Idempotency-Key` (if the request has one): a retry
/// gets the first attempt's acknowledgement, a key reused for other parameters 422.
pub(crate) async fn start_once(
    gw: &Gateway,
    headers: &HeaderMap,
    req: &StartRequest<'_>,
    log: &mut RequestLog,
) -> Result<Ack, RpError> {
    let client = req.client;
    let Some(key) = idempotency::key(headers)? else {
        return start(gw, req, log, crate::clock::random_token(32)).await;
    };
    // The key lives as long as any transaction it can name.
    let until = gw.clock.now_ms() + (gw.ciba.max_expiry_s + gw.ciba.terminal_retention_s) * 1000;
    let fingerprint = idempotency::fingerprint(req.params);
    match Box::pin(idempotency::claim(&*gw.store, &client.client_id, key, &fingerprint, until)).await? {
        Claim::Replay { tx_id } => Box::pin(replay(gw, &client.client_id, &tx_id)).await,
        Claim::Fresh { store_key, tx_id } => {
            let result = start(gw, req, log, tx_id).await;
            if result.is_err() {
                idempotency::release(&*gw.store, &store_key).await;
            }
            result
        }
    }
}

/// The acknowledgement of a retried request: the transaction the first attempt started.
async fn replay(gw: &Gateway, client_id: &str, tx_id: &str) -> Result<Ack, RpError> {
    let stored = gw
        .store
        .get(tx_id)
        .await
        .map_err(|e| RpError::TemporarilyUnavailable(format!("transaction store: {e}").into()))?;
    let Some(tx) = stored.map(|v| v.value).filter(|tx| tx.client_id == client_id) else {
        // The first attempt is still talking to the operator.
        return Err(RpError::IdempotencyInFlight);
    };
    let expires_in = tx.expires_at_ms.saturating_sub(gw.clock.now_ms()).div_ceil(1000);
    Ok(Ack { auth_req_id: tx.id, expires_in, interval: tx.interval_s })
}

/// Validates the request, starts the push and stores the transaction under `tx_id`. The rare
/// paths' futures (SMS start, race, replay, idempotency claim) are boxed so that this future,
/// moved several times per request, stays small.
async fn start(gw: &Gateway, req: &StartRequest<'_>, log: &mut RequestLog, tx_id: String) -> Result<Ack, RpError> {
    let (client, form) = (req.client, req.params);
    // Scope: openid plus only what the client is registered for.
    let scope =
        form.require("scope").map_err(|_| RpError::InvalidScope("scope is required and must include openid".into()))?;
    if !scope.split(' ').any(|s| s == "openid") {
        return Err(RpError::InvalidScope("scope must include openid".into()));
    }
    if let Some(s) = scope.split(' ').filter(|s| !s.is_empty()).find(|s| !client.scopes.iter().any(|c| c == s)) {
        return Err(RpError::InvalidScope(
            format!("scope {} is not allowed for this client", super::form::printable(s)).into(),
        ));
    }

    // Exactly one hint; only login_hint is supported today.
    let hints = ["login_hint", "login_hint_token", "id_token_hint"].iter().filter(|h| form.get(h).is_some()).count();
    if hints != 1 {
        return Err(RpError::invalid_request("exactly one of login_hint, login_hint_token, id_token_hint is required"));
    }
    if form.get("id_token_hint").is_some() || form.get("login_hint_token").is_some() {
        return Err(RpError::invalid_request("only login_hint is supported"));
    }

    let acr_floor = acr_floor(form.get("acr_values"), client.min_acr)?;
    let binding_message = form.get("binding_message");
    if let Some(b) = binding_message {
        login_hint::check_binding_message(b, gw.ciba.binding_message_max_chars)?;
    }
    let expires_in = requested_expiry(form.get("requested_expiry"), gw.ciba.default_expiry_s, gw.ciba.max_expiry_s)?;
    let mode = req.delivery.as_ref().map_or(client.delivery, |d| d.mode);
    let notification_token = match mode {
        DeliveryMode::Poll => None,
        DeliveryMode::Ping | DeliveryMode::Push => Some(notification_token(form.get("client_notification_token"))?),
    };

    let msisdn = login_hint::resolve(gw, &client.client_id, form.require("login_hint")?)?;
    log.msisdn = Some(msisdn);
    // An operator without Mobile Connect may still be reached by SMS for opted-in clients.
    let (route, operator) = match operator_for(gw, client, &msisdn, log) {
        Err(RpError::AccessDenied(_)) if gw.sms.opted_in(&client.client_id) => {
            routed_operator(gw, client, &msisdn, log)?
        }
        other => other?,
    };
    let push_capable = operator.push_capable();

    // Ping/push clients are followed by the driver: reserve its place before any push is sent.
    let admission = match notification_token {
        Some(_) => Some(gw.driver.admit().ok_or(RpError::Shed(gw.driver.retry_after_s()))?),
        None => None,
    };
    let id = &tx_id;
    // An operator that calls us back gets `<id>.<secret>`: the callback finds the transaction by
    // id and proves itself with the secret, of which only a hash is stored.
    let operator_notify = (operator.notification_mode() != DeliveryMode::Poll).then(|| {
        let secret = crate::clock::random_token(32);
        (format!("{id}.{secret}"), crate::config::secret::secret_sha256_hex(&secret))
    });
    let acr_values = if acr_floor >= 3 { "3" } else { "2" };
    let push = match push_capable {
        true => Some(
            operator
                .start_push(&PushRequest {
                    msisdn: &msisdn,
                    acr_values,
                    binding_message,
                    requested_expiry_s: expires_in,
                    client_notification_token: operator_notify.as_ref().map(|(t, _)| t.as_str()),
                })
                .await,
        ),
        false => None,
    };
    let now = gw.clock.now_ms();
    let mut tx = Transaction {
        id: tx_id,
        client_id: client.client_id.clone(),
        msisdn: msisdn.value(),
        operator: operator.id().to_owned(),
        route_source: route.source.as_str().to_owned(),
        channel: Channel::Push,
        state: TxState::PendingPush,
        scope: scope.to_owned(),
        acr_floor,
        binding_message: binding_message.map(str::to_owned),
        created_at_ms: now,
        expires_at_ms: now + expires_in * 1000,
        interval_s: gw.ciba.interval_s,
        next_poll_at_ms: now, // the first poll may come at once; then `interval` apart
        push_deadline_ms: now + operator.push_timeout_s().min(expires_in) * 1000,
        client_notification_token: notification_token.map(NotificationToken::new),
        operator_notify_sha256: operator_notify.map(|(_, hash)| hash),
        delivery: req.delivery.clone(),
        nonce: req.nonce.map(str::to_owned),
        trace_id: crate::telemetry::trace::current_trace_id(),
        ..Default::default()
    };
    // SMS fallback (shared/protocol.md §5): "nothing sent" classes only, opted-in clients only.
    let signal = match &push {
        None => Some(SignalClass::NoMc),
        Some(Err(e @ (PushError::NotEnrolled | PushError::Unavailable(_)))) => Some(SignalClass::from_push_error(e)),
        Some(_) => None,
    };
    if let Some(signal) = signal.filter(|_| gw.sms.opted_in(&client.client_id)) {
        let started = Box::pin(sms_start::start(
            gw,
            &tx,
            Some(signal),
            Timing::BeforePushDeadline,
            Phase::BeforeAck,
            SmsMode::Link,
            None,
        ))
        .await;
        let refusal = sms_start::sms_refusal_state(&started);
        match started {
            sms_start::Started::Sms(sent) => return store_and_ack(gw, *sent, admission, operator.id(), &route).await,
            _ if refusal.is_some() => {
                tx.state = refusal.unwrap_or(tx.state);
                return store_and_ack(gw, tx, admission, operator.id(), &route).await;
            }
            _ => {}
        }
    }
    let Some(push) = push else {
        return Err(RpError::AccessDenied("the person's operator offers no Mobile Connect authentication".into()));
    };
    match push {
        Ok(started) => {
            tx.expires_at_ms = tx.expires_at_ms.min(now + started.expires_in.max(1) * 1000);
            // A pushing operator is never polled: its token endpoint would not answer us.
            let next_poll_at_ms = match operator.notification_mode() {
                DeliveryMode::Push => tx.expires_at_ms,
                _ => now + started.interval_s * 1000,
            };
            tx.operator_ref =
                Some(OperatorRef { next_poll_at_ms, auth_req_id: started.auth_req_id, interval_s: started.interval_s });
            // Race mode (issue 6): the SMS link goes out beside the accepted push (opted-in
            // clients only, checked first: the race's future is boxed, it is rarely run).
            if gw.sms.opted_in(&client.client_id) {
                if let Some(racing) = Box::pin(sms_start::race(gw, &tx)).await {
                    tx = racing;
                }
            }
        }
        Err(PushError::NotEnrolled) => {
            return Err(RpError::UnknownUserId("the person is not enrolled in Mobile Connect".into()))
        }
        Err(PushError::BindingMessageRejected(detail)) => {
            // Nothing reached the person. The operator's own text stays in our log.
            tracing::warn!(operator = %operator.id(), error = %detail, "operator refused the binding message");
            return Err(RpError::InvalidBindingMessage(
                "the person's operator does not accept this binding_message; try a shorter one in plain letters and digits"
                    .into(),
            ));
        }
        Err(PushError::Unavailable(detail)) => {
            tracing::warn!(operator = %operator.id(), error = %detail, "operator unavailable at bc-authorize");
            return Err(RpError::TemporarilyUnavailable(
                "the person's operator is unavailable; try again later".into(),
            ));
        }
        Err(PushError::MaybeDelivered(detail)) => {
            // The person may have a prompt: acknowledge and let the push deadline decide.
            tracing::warn!(operator = %operator.id(), error = %detail, "operator push outcome unknown");
        }
        Err(PushError::Rejected(detail)) => {
            tracing::error!(operator = %operator.id(), error = %detail, "operator rejected the gateway's request");
            tx.state = TxState::Failed(FailReason::OperatorError);
        }
    }
    store_and_ack(gw, tx, admission, operator.id(), &route).await
}

/// Stores the new transaction, hands it to the driver (ping/push) and acknowledges it.
async fn store_and_ack(
    gw: &Gateway,
    tx: Transaction,
    admission: Option<crate::flow::driver::Admission<'_>>,
    operator_id: &str,
    route: &crate::discovery::Route,
) -> Result<Ack, RpError> {
    let now = gw.clock.now_ms();
    let retain = tx.retain_until_ms(gw.ciba.terminal_retention_s * 1000);
    let state = tx.state;
    let auth_req_id = tx.id.clone();
    // Whole seconds left, rounded up: the milliseconds spent on the operator call and the
    // store must not turn the RP's `requested_expiry=2` into `expires_in: 1`.
    let expires_in = tx.expires_at_ms.saturating_sub(now).div_ceil(1000);
    // The operator accepted the push (it answered with its own id): it counts, stored or not,
    // and the count goes with the insert (one write, one round trip).
    let accepted = tx.operator_ref.is_some().then(|| (tx.client_id.clone(), tx.operator.clone()));
    let audit = gw.audit.started_event(&tx);
    let counted = gw.metrics.auth.created(&tx);
    let inserted = match &accepted {
        Some((client, operator)) => {
            let (counter, counter_until) = gw.usage.push_counter(client, operator);
            let (inserted, usage) = gw.store.insert_counted(tx, retain, &counter, counter_until).await;
            gw.usage.push_counted(client, operator, usage);
            inserted
        }
        None => gw.store.insert(tx, retain).await,
    };
    inserted.map_err(|e| RpError::TemporarilyUnavailable(format!("transaction store: {e}").into()))?;
    gw.audit.emit(audit).await;
    gw.metrics.transition(None, Some(state.as_str()));
    counted.inc();
    if let TxState::Failed(reason) = state {
        gw.metrics.failed(reason.as_str());
    }
    if let Some(a) = admission {
        a.schedule(auth_req_id.clone(), now);
    }
    gw.metrics.transaction_started(operator_id, route.source);

    Ok(Ack { auth_req_id, expires_in, interval: gw.ciba.interval_s })
}

/// `client_notification_token`: required, 1-1024 visible ASCII characters (CIBA §7.1).
pub(crate) fn notification_token(v: Option<&str>) -> Result<&str, RpError> {
    match v {
        None | Some("") => {
            Err(RpError::invalid_request("client_notification_token is required for ping and push clients"))
        }
        Some(t) if t.len() > 1024 || !t.bytes().all(|b| b.is_ascii_graphic()) => {
            Err(RpError::invalid_request("client_notification_token must be 1-1024 visible ASCII characters"))
        }
        Some(t) => Ok(t),
    }
}

/// Authentication request parameters a request object may carry (CIBA §7.1).
const REQUEST_PARAMS: &[&str] = &[
    "scope",
    "client_notification_token",
    "acr_values",
    "login_hint_token",
    "id_token_hint",
    "login_hint",
    "binding_message",
    "user_code",
    "requested_expiry",
];

/// Form parameters that belong to client authentication, never to the request.
const CLIENT_AUTH_PARAMS: &[&str] =
    &["client_id", "client_secret", "client_assertion", "client_assertion_type", "request"];

/// The request object's claims as the request's parameters. Strings are taken as they are,
/// `requested_expiry` may be a number; any other shape of a parameter is refused. An outer form
/// parameter must be client authentication or repeat the object's value exactly.
fn request_params(
    claims: &serde_json::Map<String, serde_json::Value>,
    outer: &Params<'_>,
) -> Result<Params<'static>, RpError> {
    use serde_json::Value;
    let mut pairs = Vec::new();
    for name in REQUEST_PARAMS {
        let value = match claims.get(*name) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) if *name == "requested_expiry" => n.to_string(),
            Some(_) => {
                return Err(RpError::InvalidRequestObject(format!("request claim {name} must be a string").into()))
            }
        };
        pairs.push((name.to_string(), value));
    }
    let params = Params::from_owned(pairs);
    for name in outer.names().filter(|n| !CLIENT_AUTH_PARAMS.contains(n)) {
        if params.get(name) != outer.get(name) {
            return Err(RpError::InvalidRequest(
                format!(
                    "parameter {} must be inside the signed request object only (or repeat its value)",
                    super::form::printable(name)
                )
                .into(),
            ));
        }
    }
    Ok(params)
}

/// The person's operator for `client` as routed, whether or not it offers Mobile Connect (the
/// SMS fallback may still reach its subscribers).
pub(crate) fn routed_operator<'g>(
    gw: &'g Gateway,
    client: &RegisteredClient,
    msisdn: &crate::msisdn::Msisdn,
    log: &mut RequestLog,
) -> Result<(crate::discovery::Route, &'g std::sync::Arc<dyn crate::operators::OperatorBackend>), RpError> {
    let route =
        gw.directory.route(msisdn).ok_or_else(|| RpError::UnknownUserId("no operator serves this number".into()))?;
    log.route_source = Some(route.source.as_str());
    if !client.allowed_operators.is_empty() && !client.allowed_operators.contains(&route.operator) {
        return Err(RpError::UnknownUserId("no operator available to this client serves this number".into()));
    }
    let operator = gw
        .operators
        .get(route.operator.0 as usize)
        .ok_or_else(|| RpError::Internal("route names a missing operator".into()))?;
    log.operator = Some(operator.id().to_owned());
    Ok((route, operator))
}

/// The person's operator for `client`: routed by the directory (ported numbers, then the longest
/// prefix), allowed for this client, and offering Mobile Connect (shared/protocol.md §5, §6).
pub(crate) fn operator_for<'g>(
    gw: &'g Gateway,
    client: &RegisteredClient,
    msisdn: &crate::msisdn::Msisdn,
    log: &mut RequestLog,
) -> Result<(crate::discovery::Route, &'g std::sync::Arc<dyn crate::operators::OperatorBackend>), RpError> {
    let (route, operator) = routed_operator(gw, client, msisdn, log)?;
    if !operator.push_capable() {
        return Err(RpError::AccessDenied("the person's operator offers no Mobile Connect authentication".into()));
    }
    Ok((route, operator))
}

/// The lowest acceptable acr: the lowest requested value, raised to the client's minimum.
pub(crate) fn acr_floor(acr_values: Option<&str>, client_min: u8) -> Result<u8, RpError> {
    let Some(v) = acr_values else {
        return Ok(client_min.max(2));
    };
    let mut lowest: Option<u8> = None;
    for a in v.split(' ').filter(|a| !a.is_empty()) {
        let n = match a {
            "2" => 2,
            "3" => 3,
            _ => return Err(RpError::invalid_request("acr_values may only contain \"2\" and \"3\"")),
        };
        lowest = Some(lowest.map_or(n, |l: u8| l.min(n)));
    }
    Ok(lowest.unwrap_or(2).max(client_min))
}

/// `requested_expiry`: a positive integer, clamped to the maximum.
fn requested_expiry(v: Option<&str>, default: u64, max: u64) -> Result<u64, RpError> {
    match v {
        None => Ok(default),
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n.min(max)),
            _ => Err(RpError::invalid_request("requested_expiry must be a positive integer number of seconds")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ack_body_is_what_serde_json_writes() {
        for (id, with_interval) in [("abc-_XYZ09", true), ("q\"uo\\te\u{1}é", false), ("", true)] {
            let ack = Ack { auth_req_id: id.into(), expires_in: 120, interval: 5 };
            let mut want = serde_json::json!({"auth_req_id": id, "expires_in": 120});
            if with_interval {
                want["interval"] = 5.into();
            }
            let body = http_body_util::BodyExt::collect(ack.response(with_interval).into_body());
            let got = body.await.unwrap().to_bytes();
            assert_eq!(got, serde_json::to_vec(&want).unwrap(), "{id:?}");
        }
    }

    #[test]
    fn acr_floor_takes_lowest_and_client_minimum() {
        assert_eq!(acr_floor(None, 2), Ok(2));
        assert_eq!(acr_floor(Some("3 2"), 2), Ok(2));
        assert_eq!(acr_floor(Some("3"), 2), Ok(3));
        assert_eq!(acr_floor(Some("2"), 3), Ok(3));
        assert!(acr_floor(Some("4"), 2).is_err());
    }

    #[test]
    fn notification_token_is_required_and_visible_ascii() {
        assert_eq!(notification_token(Some("abc-123.XYZ")), Ok("abc-123.XYZ"));
        assert_eq!(notification_token(Some(&"a".repeat(1024))).map(str::len), Ok(1024));
        for bad in [None, Some(""), Some("a b"), Some("é"), Some("a\n")] {
            assert!(notification_token(bad).is_err(), "{bad:?}");
        }
        assert!(notification_token(Some(&"a".repeat(1025))).is_err());
    }

    #[test]
    fn requested_expiry_is_validated_and_clamped() {
        assert_eq!(requested_expiry(None, 300, 600), Ok(300));
        assert_eq!(requested_expiry(Some("1000000000"), 300, 600), Ok(600));
        for bad in ["0", "-1", "abc", "1.5"] {
            assert!(requested_expiry(Some(bad), 300, 600).is_err(), "{bad}");
        }
    }
}
