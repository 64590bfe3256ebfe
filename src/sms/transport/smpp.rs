//! [`SmppTransport`]: `SmsTransport` over SMPP 3.4 to an SMSC, with rusmpp's codec over tokio.
//!
//! One persistent session, bound as **transceiver** by default: SMPP delivers `deliver_sm`
//! receipts only to receiver/transceiver binds, so a transmitter bind (`bind = "transmitter"`)
//! sends fine but its delivery state stays `Pending`. A supervisor task connects, binds, runs
//! the session and, when it is lost or refused, rebinds after 1 s doubling to 30 s
//! (`rebind_initial_ms`/`rebind_max_ms`; security.md F-08), resetting after a good bind.
//! `enquire_link` every `enquire_link_s`; the session is dropped when nothing was heard for
//! that period plus `submit_timeout_ms`.
//!
//! [`SmsTransport::submit`] is bounded by `submit_timeout_ms` (L-01: 5 s) as a whole (window
//! wait included); at most `window` messages await their answer at once. It never retries: no
//! session → `Unavailable` at once; the SMSC refused (`ESME_RTHROTTLED`, `ESME_RSUBMITFAIL`,
//! any non-OK status) → `Rejected`; the session broke or the answer did not come in time after
//! the PDU was written → `Unavailable` — and then the SMS *may* still arrive, so the caller must
//! not send another for the same transaction. Long texts: see [`super::encode`] (≤ `max_segments`
//! UDH-concatenated segments, GSM 7-bit else UCS-2). Message text is never logged; numbers only
//! masked.
//!
//! Use: `let t = SmppTransport::start(SmppSettings::from_config(&cfg, max_segments, password))`
//! inside a tokio runtime (the supervisor is spawned there; drop the transport to unbind).

use super::encode;
use super::receipts::{parse_receipt_text, state_from_stat, Receipts};
use crate::config::model::SmppConfig;
use crate::config::Secret;
use crate::sms::{DeliveryState, OutgoingSms, SmsError, SmsTransport, SubmitReceipt};
use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use rusmpp::pdus::{BindTransceiver, BindTransmitter, DeliverSmResp, SubmitSm};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::COctetString;
use rusmpp::values::{InterfaceVersion, Npi, RegisteredDelivery, ServiceType, Ton};
use rusmpp::{Command, CommandStatus, Pdu};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite};

/// Largest PDU accepted from the SMSC, bytes.
const MAX_PDU: usize = 64 * 1024;

/// How the session binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// `bind_transceiver`: submits and receipts on one session.
    Transceiver,
    /// `bind_transmitter`: submits only; no receipts arrive.
    Transmitter,
}

/// Everything the SMPP client needs (from `[sms.transport.smpp]`).
#[derive(Debug, Clone)]
pub struct SmppSettings {
    /// `host:port` of the SMSC.
    pub addr: String,
    /// Bind `system_id`.
    pub system_id: String,
    /// Bind password.
    pub password: Secret,
    /// Bind `system_type`.
    pub system_type: String,
    /// Bind kind.
    pub bind: BindMode,
    /// Sender address and its TON/NPI.
    pub source_addr: String,
    /// TON of `source_addr`.
    pub source_addr_ton: u8,
    /// NPI of `source_addr`.
    pub source_addr_npi: u8,
    /// Connect and bind-answer timeout.
    pub connect_timeout: Duration,
    /// `enquire_link` period.
    pub enquire_link: Duration,
    /// Whole-submit timeout.
    pub submit_timeout: Duration,
    /// First rebind wait.
    pub rebind_initial: Duration,
    /// Longest rebind wait.
    pub rebind_max: Duration,
    /// Messages awaiting their answer at once.
    pub window: usize,
    /// Most segments per message.
    pub max_segments: usize,
    /// Receipt states remembered.
    pub receipt_capacity: usize,
    /// How long a receipt state is remembered.
    pub receipt_ttl: Duration,
}

impl SmppSettings {
    /// From the config section; `password` resolved by the caller (`password` or `password_env`).
    pub fn from_config(c: &SmppConfig, max_segments: usize, password: Secret) -> Self {
        Self {
            addr: format!("{}:{}", c.host, c.port),
            system_id: c.system_id.clone(),
            password,
            system_type: c.system_type.clone(),
            bind: if c.bind == "transmitter" { BindMode::Transmitter } else { BindMode::Transceiver },
            source_addr: c.source_addr.clone(),
            source_addr_ton: c.source_addr_ton,
            source_addr_npi: c.source_addr_npi,
            connect_timeout: Duration::from_millis(c.connect_timeout_ms),
            enquire_link: Duration::from_secs(c.enquire_link_s.max(1)),
            submit_timeout: Duration::from_millis(c.submit_timeout_ms),
            rebind_initial: Duration::from_millis(c.rebind_initial_ms),
            rebind_max: Duration::from_millis(c.rebind_max_ms),
            window: c.window.max(1),
            max_segments: max_segments.max(1),
            receipt_capacity: c.receipt_capacity,
            receipt_ttl: Duration::from_secs(c.receipt_ttl_s),
        }
    }
}

/// A PDU to write and where its answer goes.
struct Request {
    pdu: Pdu,
    reply: oneshot::Sender<Command>,
}

struct Shared {
    settings: SmppSettings,
    /// The bound session's request queue; `None` while unbound.
    session: Mutex<Option<mpsc::Sender<Request>>>,
    bound: watch::Sender<bool>,
    window: Semaphore,
    receipts: Receipts,
    next_ref: AtomicU8,
}

/// SMPP transport (see the module doc).
pub struct SmppTransport {
    shared: Arc<Shared>,
    _stop: watch::Sender<bool>,
}

impl SmppTransport {
    /// Starts the session supervisor on the current tokio runtime; returns at once (the first
    /// bind happens in the background: see [`SmppTransport::wait_bound`]).
    pub fn start(settings: SmppSettings) -> Self {
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            window: Semaphore::new(settings.window),
            receipts: Receipts::new(settings.receipt_capacity, settings.receipt_ttl),
            session: Mutex::new(None),
            bound: watch::channel(false).0,
            next_ref: AtomicU8::new(1),
            settings,
        });
        tokio::spawn(supervise(shared.clone(), stop_rx));
        Self { shared, _stop: stop_tx }
    }

    /// Whether a session is bound now.
    pub fn is_bound(&self) -> bool {
        *self.shared.bound.borrow()
    }

    /// Waits until a session is bound, at most `timeout`; returns whether it is.
    pub async fn wait_bound(&self, timeout: Duration) -> bool {
        let mut rx = self.shared.bound.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|b| *b)).await.is_ok_and(|r| r.is_ok())
    }

    fn template(&self, to: &str) -> Result<SubmitSm, SmsError> {
        let s = &self.shared.settings;
        let bad = |what: &str| SmsError::Rejected(format!("invalid {what}"));
        let registered = match s.bind {
            BindMode::Transceiver => RegisteredDelivery::from(1u8),
            BindMode::Transmitter => RegisteredDelivery::from(0u8),
        };
        Ok(SubmitSm::builder()
            .service_type(ServiceType::default())
            .source_addr_ton(Ton::from(s.source_addr_ton))
            .source_addr_npi(Npi::from(s.source_addr_npi))
            .source_addr(COctetString::from_str(&s.source_addr).map_err(|_| bad("source_addr"))?)
            .dest_addr_ton(Ton::International)
            .dest_addr_npi(Npi::Isdn)
            .destination_addr(COctetString::from_str(to).map_err(|_| bad("destination"))?)
            .registered_delivery(registered)
            .build())
    }

    async fn submit_parts(&self, parts: Vec<SubmitSm>) -> Result<SubmitReceipt, SmsError> {
        let _permit = self.shared.window.acquire().await.map_err(|_| SmsError::Unavailable("closed".into()))?;
        let mut ids = Vec::with_capacity(parts.len());
        for pdu in parts {
            let tx = self.shared.session.lock().clone();
            let tx = tx.ok_or_else(|| SmsError::Unavailable("no SMPP session bound".into()))?;
            let (reply, answer) = oneshot::channel();
            tx.send(Request { pdu: Pdu::SubmitSm(pdu), reply })
                .await
                .map_err(|_| SmsError::Unavailable("SMPP session closed".into()))?;
            let resp =
                answer.await.map_err(|_| SmsError::Unavailable("SMPP session lost before the SMSC answered".into()))?;
            match (resp.status(), resp.pdu()) {
                (CommandStatus::EsmeRok, Some(Pdu::SubmitSmResp(r))) => ids.push(r.message_id().to_string()),
                (CommandStatus::EsmeRok, _) => {
                    return Err(SmsError::Unavailable("unexpected answer to submit_sm".into()));
                }
                (status, _) => return Err(SmsError::Rejected(status_name(status))),
            }
        }
        Ok(SubmitReceipt { message_id: self.shared.receipts.track(ids) })
    }
}

/// `ESME_RTHROTTLED`-style name of a status.
pub fn status_name(status: CommandStatus) -> String {
    let raw = format!("{status:?}");
    let name = raw.strip_prefix("EsmeR").unwrap_or(&raw);
    format!("ESME_R{}", name.to_uppercase())
}

#[async_trait]
impl SmsTransport for SmppTransport {
    fn kind(&self) -> &'static str {
        "smpp"
    }

    async fn submit(&self, sms: &OutgoingSms<'_>) -> Result<SubmitReceipt, SmsError> {
        let template = self.template(&sms.to.digits())?;
        let reference = self.shared.next_ref.fetch_add(1, Ordering::Relaxed);
        let parts = encode::segments(template, sms.text, reference, self.shared.settings.max_segments)
            .map_err(|e| SmsError::Rejected(e.to_string()))?;
        let timeout = self.shared.settings.submit_timeout;
        let result = match tokio::time::timeout(timeout, self.submit_parts(parts)).await {
            Ok(r) => r,
            Err(_) => Err(SmsError::Unavailable(format!("no SMSC answer within {} ms", timeout.as_millis()))),
        };
        match &result {
            Ok(r) => {
                tracing::info!(to = %sms.to.masked(), message_id = %r.message_id, "sms submitted")
            }
            Err(e) => tracing::warn!(to = %sms.to.masked(), error = %e, "sms not submitted"),
        }
        result
    }

    fn delivery_state(&self, message_id: &str) -> DeliveryState {
        self.shared.receipts.state(message_id)
    }
}

type Reader = FramedRead<OwnedReadHalf, CommandCodec>;
type Writer = FramedWrite<OwnedWriteHalf, CommandCodec>;

async fn supervise(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let s = &shared.settings;
    let mut backoff = s.rebind_initial;
    loop {
        match bind(s).await {
            Ok((reader, writer)) => {
                tracing::info!(smsc = %s.addr, "smpp bound");
                backoff = s.rebind_initial;
                let stopped = run_session(&shared, reader, writer, &mut stop).await;
                *shared.session.lock() = None;
                shared.bound.send_replace(false);
                if stopped {
                    return;
                }
                tracing::warn!(smsc = %s.addr, "smpp session lost");
            }
            Err(e) => {
                tracing::warn!(smsc = %s.addr, error = %e, retry_ms = backoff.as_millis() as u64, "smpp bind failed")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(s.rebind_max);
    }
}

async fn bind(s: &SmppSettings) -> Result<(Reader, Writer), String> {
    let stream = tokio::time::timeout(s.connect_timeout, TcpStream::connect(&s.addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let mut reader = FramedRead::new(r, CommandCodec::new().with_max_length(MAX_PDU));
    let mut writer = FramedWrite::new(w, CommandCodec::new());
    let (id, pw, ty) = (
        field(&s.system_id, "system_id")?,
        field(s.password.expose(), "password")?,
        field(&s.system_type, "system_type")?,
    );
    let pdu: Pdu = match s.bind {
        BindMode::Transceiver => BindTransceiver::builder()
            .system_id(id)
            .password(pw)
            .system_type(ty)
            .interface_version(InterfaceVersion::Smpp3_4)
            .build()
            .into(),
        BindMode::Transmitter => BindTransmitter::builder()
            .system_id(id)
            .password(pw)
            .system_type(ty)
            .interface_version(InterfaceVersion::Smpp3_4)
            .build()
            .into(),
    };
    writer.send(Command::new(CommandStatus::EsmeRok, 1, pdu)).await.map_err(|e| format!("write: {e}"))?;
    let answer = tokio::time::timeout(s.connect_timeout, reader.next())
        .await
        .map_err(|_| "no bind answer in time".to_string())?
        .ok_or("closed before the bind answer")?
        .map_err(|e| format!("bad bind answer: {e}"))?;
    let is_bind_resp = matches!(answer.pdu(), Some(Pdu::BindTransceiverResp(_) | Pdu::BindTransmitterResp(_)));
    match answer.status() {
        CommandStatus::EsmeRok if is_bind_resp => Ok((reader, writer)),
        CommandStatus::EsmeRok => Err("unexpected answer to bind".into()),
        status => Err(format!("bind refused: {}", status_name(status))),
    }
}

/// A bind field (C-octet string of at most `MAX - 1` characters).
fn field<const MIN: usize, const MAX: usize>(v: &str, what: &str) -> Result<COctetString<MIN, MAX>, String> {
    COctetString::from_str(v).map_err(|_| format!("{what} too long (at most {} characters)", MAX - 1))
}

/// Runs one bound session until it is lost (`false`) or the transport stops (`true`).
async fn run_session(
    shared: &Shared,
    mut reader: Reader,
    mut writer: Writer,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let s = &shared.settings;
    let (tx, mut rx) = mpsc::channel::<Request>(s.window);
    *shared.session.lock() = Some(tx);
    shared.bound.send_replace(true);
    let mut pending: HashMap<u32, oneshot::Sender<Command>> = HashMap::new();
    let mut seq: u32 = 1;
    let mut next_seq = move || {
        // SMPP sequence numbers: 1..=0x7FFFFFFF.
        seq = if seq >= 0x7FFF_FFFF { 1 } else { seq + 1 };
        seq
    };
    let mut ticker = tokio::time::interval(s.enquire_link);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    let _ = writer.send(Command::new(CommandStatus::EsmeRok, next_seq(), Pdu::Unbind)).await;
                    return true;
                }
            }
            req = rx.recv() => {
                let Some(req) = req else { return false };
                let n = next_seq();
                pending.insert(n, req.reply);
                if writer.send(Command::new(CommandStatus::EsmeRok, n, req.pdu)).await.is_err() {
                    return false;
                }
            }
            frame = reader.next() => {
                let Some(Ok(cmd)) = frame else { return false };
                last_heard = Instant::now();
                if !on_command(shared, &mut writer, &mut pending, cmd).await {
                    return false;
                }
            }
            _ = ticker.tick() => {
                if last_heard.elapsed() > s.enquire_link + s.submit_timeout {
                    tracing::warn!(smsc = %s.addr, "smpp peer silent; dropping the session");
                    return false;
                }
                if writer.send(Command::new(CommandStatus::EsmeRok, next_seq(), Pdu::EnquireLink)).await.is_err() {
                    return false;
                }
            }
        }
    }
}

/// Handles one PDU from the SMSC; `false` ends the session.
async fn on_command(
    shared: &Shared,
    writer: &mut Writer,
    pending: &mut HashMap<u32, oneshot::Sender<Command>>,
    cmd: Command,
) -> bool {
    let seq = cmd.sequence_number();
    let answer = |pdu: Pdu| Command::new(CommandStatus::EsmeRok, seq, pdu);
    match cmd.pdu() {
        Some(Pdu::DeliverSm(d)) => {
            let esm = u8::from(d.esm_class);
            // esm_class bits 2–5 = 0001: an SMSC delivery receipt.
            if esm & 0x3C == 0x04 {
                on_receipt(shared, d);
            }
            let resp = DeliverSmResp::builder().message_id(COctetString::empty()).build();
            writer.send(answer(resp.into())).await.is_ok()
        }
        Some(Pdu::EnquireLink) => writer.send(answer(Pdu::EnquireLinkResp)).await.is_ok(),
        Some(Pdu::Unbind) => {
            let _ = writer.send(answer(Pdu::UnbindResp)).await;
            false
        }
        Some(Pdu::EnquireLinkResp) => true,
        _ if u32::from(cmd.id()) & 0x8000_0000 != 0 => {
            // An answer (submit_sm_resp, generic_nack, …): to whoever waits for it.
            if let Some(reply) = pending.remove(&seq) {
                let _ = reply.send(cmd);
            }
            true
        }
        _ => {
            let nack = Command::new(CommandStatus::EsmeRinvcmdid, seq, Pdu::GenericNack);
            writer.send(nack).await.is_ok()
        }
    }
}

fn on_receipt(shared: &Shared, d: &rusmpp::pdus::DeliverSm) {
    use rusmpp::tlvs::TlvValue;
    let mut id = None;
    let mut state = None;
    for tlv in d.tlvs() {
        match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(v)) => id = Some(v.to_string()),
            Some(TlvValue::MessageState(m)) => {
                state = match u8::from(*m) {
                    2 => Some(DeliveryState::Delivered),
                    3 | 4 | 5 | 8 => Some(DeliveryState::Failed),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(d.short_message().as_ref()).into_owned();
    if let Some((tid, stat)) = parse_receipt_text(&text) {
        id = id.or(Some(tid));
        state = state.or_else(|| state_from_stat(&stat));
    }
    if let (Some(id), Some(state)) = (id, state) {
        shared.receipts.record(&id, state);
    }
}
