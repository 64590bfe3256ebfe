//! One-time SMS codes and confirm links: generation from the OS CSPRNG (S-01: uniform by
//! rejection sampling; links ≥ 256 bits), storage as `HMAC-SHA-256(key, auth_req_id ‖ secret ‖
//! binding)` only (S-08, the key lives outside the store), constant-time checks (S-09), lifetime
//! (S-02), the wrong-attempt cap (S-05) and the `pending_sms → approved | denied | expired |
//! failed` transitions, each one store compare-and-set so a code is accepted once across
//! instances (S-03). Wrong, expired and foreign codes give the same [`Verdict`] to the caller's
//! person-facing page (S-07).
//!
//! How the integrator uses it (the SMS path of `bc-authorize` / the redirect flow):
//! 1. `let (state, secret) = gw.sms_codes.arm(&tx, SmsMode::Otp | SmsMode::Link, now_ms, lang)?;`
//!    then store `tx` with `sms: Some(state)`, `state: TxState::PendingSms`, `channel: Sms`
//!    (a compare-and-set from the version it read);
//! 2. link mode: [`publish_link`]`(gw, &secret, &tx)` so `GET /sms/confirm/<token>` finds it;
//!    the URL is [`confirm_url`]; OTP mode in the redirect flow: send the browser to
//!    `crate::rp::sms_otp::open_page(gw, &tx)`;
//! 3. build the text with [`super::message::compose`] using `secret.expose()`, submit it, and
//!    record the SMSC's id in `sms.message_id`.
//!
//! The pages call [`submit_code`] and [`decide_link`]; nothing else needs to.

use crate::app::Gateway;
use crate::flow::progress::{cas, CAS_ATTEMPTS};
use crate::flow::{AuthResult, Channel, FailReason, Transaction, TxState};
use crate::keyed_hash::KeyedHasher;
use crate::store::StoreError;
use base64::Engine;
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Longest typed code we even look at (C-20: longer input is one wrong attempt).
const MAX_PRESENTED_LEN: usize = 64;
/// Random bytes of a confirm-link token (256 bits, S-10 asks ≥ 128).
const LINK_TOKEN_BYTES: usize = 32;
/// Store key prefix: link token HMAC → transaction id.
const LINK_INDEX_PREFIX: &str = "sms:link:";

/// What the SMS carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsMode {
    /// A code typed into the redirect flow's page (`amr ["sms","otp"]`).
    #[default]
    Otp,
    /// A single-use confirm link (CIBA; `amr ["sms"]`).
    Link,
}

impl SmsMode {
    /// `amr` of an approval through this mode (RFC 8176, shared/protocol.md §3).
    pub fn amr(self) -> Vec<String> {
        match self {
            Self::Otp => vec!["sms".into(), "otp".into()],
            Self::Link => vec!["sms".into()],
        }
    }
    fn label(self) -> &'static str {
        match self {
            Self::Otp => "otp",
            Self::Link => "link",
        }
    }
}

/// The SMS part of a transaction: never the code or link itself.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsState {
    /// Code or link.
    pub mode: SmsMode,
    /// Hex `HMAC-SHA-256(key, auth_req_id ‖ secret ‖ binding)` of the live code or link.
    pub code_mac: String,
    /// Wrong codes so far (kept across re-sends).
    pub attempts: u32,
    /// The code or link is dead from this time, ms.
    pub expires_at_ms: u64,
    /// SMS sent for this transaction.
    pub sends: u32,
    /// The SMSC's id of the last message.
    #[serde(default)]
    pub message_id: Option<String>,
    /// Language of the text and pages (`ca`, `es`, `en`), from `ui_locales`.
    #[serde(default)]
    pub language: Option<String>,
}

impl std::fmt::Debug for SmsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsState")
            .field("mode", &self.mode)
            .field("code_mac", &"[redacted]")
            .field("attempts", &self.attempts)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("sends", &self.sends)
            .field("message_id", &self.message_id)
            .field("language", &self.language)
            .finish()
    }
}

/// A fresh code or link token: goes into the SMS and nowhere else (no `PartialEq`, S-09; no
/// `Debug` content, S-35).
pub struct OneTimeSecret(String);

impl OneTimeSecret {
    /// The secret, for the SMS text only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for OneTimeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Arming failed.
#[derive(Debug, thiserror::Error)]
pub enum OtpError {
    /// The operating system's random source failed.
    #[error("OS random source failed")]
    Rng,
    /// The transaction's window is over.
    #[error("the transaction has no time left for an SMS")]
    NoTimeLeft,
}

/// Settings and key of codes and links (from `[sms_codes]` and `keys.sms_hmac_secret_file`).
pub struct SmsCodes {
    key: KeyedHasher,
    /// Digits per code (6–8).
    pub digits: u8,
    /// Lifetime of a code or link, ms.
    pub ttl_ms: u64,
    /// Wrong codes allowed per transaction.
    pub max_attempts: u32,
    /// SMS segments a message may take.
    pub max_segments: u8,
    /// Language when the request names none we speak.
    pub default_language: super::language::Language,
}

impl std::fmt::Debug for SmsCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsCodes").field("digits", &self.digits).field("ttl_ms", &self.ttl_ms).finish_non_exhaustive()
    }
}

/// A bounded source of uniformly random `u32`s.
fn os_u32() -> Result<u32, OtpError> {
    let mut b = [0u8; 4];
    rand::rngs::OsRng.try_fill_bytes(&mut b).map_err(|_| OtpError::Rng)?;
    Ok(u32::from_le_bytes(b))
}

/// A uniform integer in `0..n` from `next` by rejection sampling: draws at or above the largest
/// multiple of `n` that fits are thrown away, so no residue is favoured.
pub fn uniform_below(n: u32, mut next: impl FnMut() -> Result<u32, OtpError>) -> Result<u32, OtpError> {
    assert!(n > 0);
    let zone = u32::MAX - (u32::MAX % n + 1) % n; // last accepted value
                                                  // Rejection probability < 1/2 per draw: 128 draws fail with probability < 2^-128.
    for _ in 0..128 {
        let x = next()?;
        if x <= zone {
            return Ok(x % n);
        }
    }
    Err(OtpError::Rng)
}

/// A `digits`-digit code (leading zeros kept), uniform over all `10^digits` values.
pub fn generate_code(digits: u8, next: impl FnMut() -> Result<u32, OtpError>) -> Result<String, OtpError> {
    let n = 10u32.pow(u32::from(digits));
    let v = uniform_below(n, next)?;
    Ok(format!("{v:0width$}", width = usize::from(digits)))
}

/// A confirm-link token: 256 bits from the OS CSPRNG, base64url.
fn generate_link_token() -> Result<String, OtpError> {
    let mut b = [0u8; LINK_TOKEN_BYTES];
    rand::rngs::OsRng.try_fill_bytes(&mut b).map_err(|_| OtpError::Rng)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// What the secret is bound to besides the transaction id (S-04): client, MSISDN, binding
/// message, mode. Any change voids the code.
fn binding(tx: &Transaction, mode: SmsMode) -> String {
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{}",
        tx.client_id,
        tx.msisdn,
        mode.label(),
        tx.binding_message.as_deref().unwrap_or("")
    )
}

/// `/sms/confirm/<token>`.
pub fn confirm_url(issuer: &str, secret: &OneTimeSecret) -> String {
    format!("{issuer}/sms/confirm/{}", secret.expose())
}

impl SmsCodes {
    /// From validated `[sms_codes]` settings and the HMAC key.
    pub fn new(cfg: &crate::config::SmsCodesConfig, key: Vec<u8>) -> Self {
        Self {
            key: KeyedHasher::new(&key),
            digits: cfg.code_digits,
            ttl_ms: cfg.code_ttl_s.saturating_mul(1000),
            max_attempts: cfg.max_attempts,
            max_segments: cfg.max_segments,
            default_language: super::language::Language::from_tag(&cfg.default_language)
                .unwrap_or(super::language::Language::Es),
        }
    }

    /// HMAC-SHA256 of length-prefixed `parts` ([`KeyedHasher::digest`]; label first).
    fn hmac(&self, parts: &[&[u8]]) -> [u8; 32] {
        self.key.digest(parts)
    }

    /// The stored HMAC of `secret` for `tx` in `mode` (hex).
    fn code_mac(&self, tx: &Transaction, mode: SmsMode, secret: &str) -> String {
        let b = binding(tx, mode);
        hex::encode(self.hmac(&[b"mcgate sms code v1", tx.id.as_bytes(), secret.as_bytes(), b.as_bytes()]))
    }

    /// Whether `secret` is the live code or link of `tx` (constant time; mode included).
    fn matches(&self, tx: &Transaction, state: &SmsState, secret: &str) -> bool {
        let mac = self.code_mac(tx, state.mode, secret);
        bool::from(mac.as_bytes().ct_eq(state.code_mac.as_bytes()))
    }

    /// A new code or link for `tx` at `now_ms`: its [`SmsState`] (attempts and sends carried
    /// over from a previous SMS) and the secret for the text. Lifetime: `code_ttl_s`, never past
    /// the transaction's own end.
    pub fn arm(
        &self,
        tx: &Transaction,
        mode: SmsMode,
        now_ms: u64,
        language: Option<&str>,
    ) -> Result<(SmsState, OneTimeSecret), OtpError> {
        if now_ms >= tx.expires_at_ms {
            return Err(OtpError::NoTimeLeft);
        }
        let secret = match mode {
            SmsMode::Otp => generate_code(self.digits, os_u32)?,
            SmsMode::Link => generate_link_token()?,
        };
        let prev = tx.sms.as_ref();
        let state = SmsState {
            mode,
            code_mac: self.code_mac(tx, mode, &secret),
            attempts: prev.map_or(0, |p| p.attempts),
            expires_at_ms: now_ms.saturating_add(self.ttl_ms).min(tx.expires_at_ms),
            sends: prev.map_or(0, |p| p.sends) + 1,
            message_id: None,
            language: language.map(str::to_owned).or_else(|| prev.and_then(|p| p.language.clone())),
        };
        Ok((state, OneTimeSecret(secret)))
    }

    /// Store key naming the transaction of a confirm-link token (an HMAC: S-08).
    pub fn link_index_key(&self, token: &str) -> String {
        format!("{LINK_INDEX_PREFIX}{}", hex::encode(self.hmac(&[b"mcgate sms link index v1", token.as_bytes()])))
    }

    /// Store key naming the transaction of an OTP page handle.
    pub fn page_index_key(&self, handle: &str) -> String {
        format!("sms:page:{}", hex::encode(self.hmac(&[b"mcgate sms page index v1", handle.as_bytes()])))
    }

    /// The CSRF token of the pages of `tx`: bound to the transaction and its live code.
    pub fn csrf_token(&self, tx: &Transaction) -> String {
        let mac = tx.sms.as_ref().map_or("", |s| s.code_mac.as_str());
        let t = self.hmac(&[b"mcgate sms csrf v1", tx.id.as_bytes(), mac.as_bytes()]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t)
    }

    /// Whether `presented` is the CSRF token of `tx` (constant time).
    pub fn csrf_ok(&self, tx: &Transaction, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| bool::from(self.csrf_token(tx).as_bytes().ct_eq(p.as_bytes())))
    }
}

/// A typed code in its one accepted form (C-20): ASCII digits, spaces anywhere ignored.
/// Anything else (letters, NUL, full-width digits, too long) is `None`: one wrong attempt.
pub fn normalise_code(presented: &str, digits: u8) -> Option<String> {
    if presented.len() > MAX_PRESENTED_LEN {
        return None;
    }
    let code: String = presented.chars().filter(|c| *c != ' ').collect();
    (code.len() == usize::from(digits) && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// What a presented code or a link decision does to a transaction (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Right: store this (approved) transaction.
    Approve(Transaction),
    /// Wrong: store this (attempt counted; `failed{too_many_attempts}` at the cap).
    Wrong(Transaction),
    /// The person said no: store this (denied).
    Deny(Transaction),
    /// The code or the transaction is past its time: store this (expired).
    Expire(Transaction),
    /// Not waiting for an SMS answer (ended, consumed, never armed, other mode).
    NotPending,
}

/// Checks `presented` (already [`normalise_code`]d, `None` = junk) against `tx` at `now_ms`.
/// Order: not pending → expired → attempts exhausted → compare. A right code after the cap
/// fails (S-05); a right code after expiry expires (S-02).
pub fn check_code(codes: &SmsCodes, tx: &Transaction, mode: SmsMode, presented: Option<&str>, now_ms: u64) -> Check {
    let Some(sms) = tx.sms.as_ref().filter(|s| s.mode == mode) else { return Check::NotPending };
    if tx.state != TxState::PendingSms {
        return Check::NotPending;
    }
    if now_ms >= sms.expires_at_ms || now_ms >= tx.expires_at_ms {
        return Check::Expire(Transaction { state: TxState::Expired, ..tx.clone() });
    }
    // Always compute the HMAC, junk included: same work whatever was typed.
    let right = codes.matches(tx, sms, presented.unwrap_or("")) && presented.is_some();
    if sms.attempts < codes.max_attempts && right {
        return Check::Approve(approved(tx, mode, now_ms));
    }
    let mut next = tx.clone();
    let s = next.sms.as_mut().expect("checked above");
    s.attempts = s.attempts.saturating_add(1);
    if s.attempts >= codes.max_attempts {
        next.state = TxState::Failed(FailReason::TooManyAttempts);
    }
    Check::Wrong(next)
}

fn approved(tx: &Transaction, mode: SmsMode, now_ms: u64) -> Transaction {
    Transaction {
        state: TxState::Approved,
        channel: Channel::Sms,
        // SMS never above LoA 2, and amr says what happened (S-32).
        result: Some(AuthResult { acr: "2".into(), amr: mode.amr(), auth_time: now_ms / 1000 }),
        ..tx.clone()
    }
}

/// A person's answer on the confirm page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// "Approve".
    Approve,
    /// "Deny".
    Deny,
}

/// What the person's decision on a confirm link does to `tx` (the token already matched).
pub fn check_decision(tx: &Transaction, decision: Decision, now_ms: u64) -> Check {
    let Some(sms) = tx.sms.as_ref().filter(|s| s.mode == SmsMode::Link) else { return Check::NotPending };
    // A race (issue 6) waits for the link in `pending_push` too: first approval wins.
    if tx.state != TxState::PendingSms && !crate::flow::sms_start::racing(tx) {
        return Check::NotPending;
    }
    if now_ms >= sms.expires_at_ms || now_ms >= tx.expires_at_ms {
        if crate::flow::sms_start::racing(tx) && now_ms < tx.expires_at_ms {
            // Only the link died: the push still runs.
            return Check::NotPending;
        }
        return Check::Expire(Transaction { state: TxState::Expired, ..tx.clone() });
    }
    match decision {
        Decision::Approve => Check::Approve(approved(tx, SmsMode::Link, now_ms)),
        Decision::Deny => Check::Deny(Transaction { state: TxState::Denied, channel: Channel::Sms, ..tx.clone() }),
    }
}

/// The outcome for the page (wrong, expired and foreign codes look alike to the person: the
/// page shows one text for [`Verdict::Rejected`], and the RP sees only the final state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted (or denied, for a link decision); the transaction as written.
    Done(Box<Transaction>),
    /// Not accepted; the person may try again.
    Rejected,
    /// Not accepted, and the transaction ended (too many attempts, expired); as written.
    Ended(Box<Transaction>),
    /// Unknown transaction, or not waiting for this answer.
    NotPending,
}

/// Looks up a confirm-link token: the transaction it names, if it is still the live link.
pub async fn find_link(gw: &Gateway, token: &str) -> Result<Option<crate::store::Versioned<Transaction>>, StoreError> {
    if token.is_empty() || token.len() > MAX_PRESENTED_LEN {
        return Ok(None);
    }
    let Some(id) = gw.store.get_value(&gw.sms_codes.link_index_key(token)).await? else { return Ok(None) };
    let Some(v) = gw.store.get(&id).await? else { return Ok(None) };
    let live =
        v.value.sms.as_ref().is_some_and(|s| s.mode == SmsMode::Link && gw.sms_codes.matches(&v.value, s, token));
    Ok(live.then_some(v))
}

/// Makes a link token findable by `GET /sms/confirm/<token>` until the link dies.
pub async fn publish_link(gw: &Gateway, secret: &OneTimeSecret, tx: &Transaction) -> Result<(), StoreError> {
    let until = tx.sms.as_ref().map_or(tx.expires_at_ms, |s| s.expires_at_ms);
    gw.store.put_if_absent(&gw.sms_codes.link_index_key(secret.expose()), &tx.id, until).await?;
    Ok(())
}

/// Applies `check` (re-run on the freshest version after a lost race) to transaction `id`.
async fn commit(gw: &Gateway, id: &str, check: impl Fn(&Transaction, u64) -> Check) -> Result<Verdict, StoreError> {
    for _ in 0..CAS_ATTEMPTS {
        let Some(current) = gw.store.get(id).await? else { return Ok(Verdict::NotPending) };
        let (tx, version) = (&current.value, current.version);
        let (next, verdict): (Transaction, fn(Box<Transaction>) -> Verdict) = match check(tx, gw.clock.now_ms()) {
            Check::NotPending => return Ok(Verdict::NotPending),
            Check::Approve(n) | Check::Deny(n) => (n, Verdict::Done),
            Check::Expire(n) => (n, Verdict::Ended),
            Check::Wrong(n) if n.state.is_pending() => (n, |_| Verdict::Rejected),
            Check::Wrong(n) => (n, Verdict::Ended),
        };
        let mut next = next;
        if next.state == TxState::Approved && next.redirect.is_some() {
            // The browser goes back to the RP with our code at once: the approval lives as
            // long as that code (as after an operator's redirect, `rp::callback`).
            next.expires_at_ms = gw.clock.now_ms().saturating_add(gw.redirect.code_ttl_s * 1000);
        }
        if cas(gw, version, tx, next.clone()).await?.is_some() {
            if !next.state.is_pending() {
                gw.driver.kick(&next.id, gw.clock.now_ms());
            }
            return Ok(verdict(Box::new(next)));
        }
    }
    // Others keep writing it: count this as not accepted.
    Ok(Verdict::Rejected)
}

/// Denies transaction `id` from the OTP page ("Cancel"), if it still waits for a code.
pub async fn cancel_code(gw: &Gateway, id: &str) -> Result<Verdict, StoreError> {
    commit(gw, id, |tx, _| match tx.sms.as_ref() {
        Some(s) if s.mode == SmsMode::Otp && tx.state == TxState::PendingSms => {
            Check::Deny(Transaction { state: TxState::Denied, channel: Channel::Sms, ..tx.clone() })
        }
        _ => Check::NotPending,
    })
    .await
}

/// Checks a typed code for transaction `id` and records the outcome by compare-and-set (one
/// success across instances, S-03).
pub async fn submit_code(gw: &Gateway, id: &str, presented: &str) -> Result<Verdict, StoreError> {
    let codes = &gw.sms_codes;
    let normalised = normalise_code(presented, codes.digits);
    commit(gw, id, |tx, now| check_code(codes, tx, SmsMode::Otp, normalised.as_deref(), now)).await
}

/// Records the person's decision on the confirm link of transaction `id`.
pub async fn decide_link(gw: &Gateway, id: &str, decision: Decision) -> Result<Verdict, StoreError> {
    commit(gw, id, |tx, now| check_decision(tx, decision, now)).await
}

#[cfg(test)]
mod tests;
