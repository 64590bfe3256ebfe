//! An SMSC simulator speaking SMPP 3.4 (rusmpp's codec over tokio) for `demo`, tests and
//! `mcgate sim-smsc`. It accepts `bind_transceiver`/`bind_transmitter`/`bind_receiver` with the
//! configured credentials, answers `submit_sm` with a fresh message id, sends an SMPP delivery
//! receipt (`deliver_sm`, esm_class 0x04) after `receipt_after` to transceiver/receiver binds
//! that asked for one, and answers `enquire_link` and `unbind`.
//!
//! Scripted faults: by the destination's last two digits — `…91` → `ESME_RTHROTTLED`, `…92` →
//! `ESME_RSUBMITFAIL`, `…93` → accepted but the receipt says `UNDELIV` — and at run time with
//! [`SimSmsc::set_fault`] (reject every submit, or go silent: read and answer nothing) and
//! [`SimSmsc::drop_connections`].
//!
//! Standing in for the phones, it keeps the last [`KEEP`] messages (concatenated segments
//! reassembled, text included) and serves them read-only on a loopback-only HTTP listener:
//! `GET /sms/<msisdn>` → the last message to that number, `GET /sms` → recent ones, newest
//! first. It never logs message text. Knows nothing of the gateway: it speaks only SMPP.

use crate::server::conn::{serve, ConnOptions, Handler};
use crate::sms::transport::encode;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use parking_lot::Mutex;
use rusmpp::pdus::{BindReceiverResp, BindTransceiverResp, BindTransmitterResp, DeliverSm, SubmitSm, SubmitSmResp};
use rusmpp::tlvs::MessageDeliveryRequestTlvValue;
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{EsmClass, MessageState, Npi, Ton};
use rusmpp::{Command, CommandStatus, Pdu};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::{FramedRead, FramedWrite};

/// Messages kept for the HTTP view.
pub const KEEP: usize = 200;
/// Destination suffix answered `ESME_RTHROTTLED`.
pub const SUFFIX_THROTTLED: &str = "91";
/// Destination suffix answered `ESME_RSUBMITFAIL`.
pub const SUFFIX_SUBMIT_FAIL: &str = "92";
/// Destination suffix accepted, then reported `UNDELIV`.
pub const SUFFIX_UNDELIVERABLE: &str = "93";

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SmscConfig {
    /// Accepted bind `system_id`.
    pub system_id: String,
    /// Accepted bind password.
    pub password: String,
    /// Delay before a delivery receipt.
    pub receipt_after: Duration,
}

impl Default for SmscConfig {
    fn default() -> Self {
        Self { system_id: "mcgate".into(), password: "secret".into(), receipt_after: Duration::from_millis(200) }
    }
}

/// A run-time fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Behave.
    #[default]
    None,
    /// Answer every `submit_sm` with `ESME_RTHROTTLED`.
    Throttle,
    /// Answer every `submit_sm` with `ESME_RSUBMITFAIL`.
    SubmitFail,
    /// Read everything, answer nothing (binds, submits, enquire_link).
    Silent,
}

/// One message as the phone got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsRecord {
    /// Destination digits as submitted.
    pub to: String,
    /// The reassembled text.
    pub text: String,
    /// Message id of the first segment.
    pub message_id: String,
    /// Segments it came in.
    pub segments: usize,
    /// Sender address.
    pub from: String,
}

impl SmsRecord {
    fn json(&self) -> Value {
        json!({"to": self.to, "from": self.from, "text": self.text, "message_id": self.message_id, "segments": self.segments})
    }
}

/// A concatenated message being reassembled: the first segment's id and the parts so far.
type Partial = (String, Vec<Option<String>>);

struct State {
    cfg: SmscConfig,
    fault: Mutex<Fault>,
    messages: Mutex<VecDeque<SmsRecord>>,
    /// Concatenated messages being reassembled: (to, ref) → (first id, parts).
    partial: Mutex<HashMap<(String, u8), Partial>>,
    next_id: AtomicU64,
    submits: AtomicU64,
    binds: AtomicU64,
    kill: watch::Sender<u64>,
}

/// A running SMSC simulator.
pub struct SimSmsc {
    smpp_addr: SocketAddr,
    http_url: String,
    state: Arc<State>,
}

impl SimSmsc {
    /// Binds the SMPP listener on `smpp` and the HTTP view on `http` (loopback only; port 0:
    /// ephemeral) and serves until `shutdown`.
    pub async fn start(
        cfg: SmscConfig,
        smpp: SocketAddr,
        http: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<Arc<Self>> {
        if !http.ip().is_loopback() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "the SMS view is loopback only"));
        }
        let listener = TcpListener::from_std(crate::server::bind(smpp)?)?;
        let smpp_addr = listener.local_addr()?;
        let http_listener = TcpListener::from_std(crate::server::bind(http)?)?;
        let http_url = format!("http://{}", http_listener.local_addr()?);
        let state = Arc::new(State {
            cfg,
            fault: Mutex::new(Fault::None),
            messages: Mutex::new(VecDeque::new()),
            partial: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            submits: AtomicU64::new(0),
            binds: AtomicU64::new(0),
            kill: watch::channel(0).0,
        });
        let sim = Arc::new(Self { smpp_addr, http_url, state: state.clone() });
        tokio::spawn(serve(http_listener, None, sim.clone(), shutdown.clone(), ConnOptions::default()));
        tokio::spawn(accept_loop(listener, state, shutdown));
        Ok(sim)
    }

    /// The SMPP listener's address.
    pub fn smpp_addr(&self) -> SocketAddr {
        self.smpp_addr
    }

    /// Base URL of the HTTP view (`http://127.0.0.1:port`).
    pub fn http_url(&self) -> &str {
        &self.http_url
    }

    /// Sets the run-time fault.
    pub fn set_fault(&self, fault: Fault) {
        *self.state.fault.lock() = fault;
    }

    /// Closes every open SMPP connection now (new ones are accepted).
    pub fn drop_connections(&self) {
        self.state.kill.send_modify(|g| *g += 1);
    }

    /// Messages received, newest first.
    pub fn messages(&self) -> Vec<SmsRecord> {
        self.state.messages.lock().iter().rev().cloned().collect()
    }

    /// The last message to `digits` (with or without `+`).
    pub fn last_for(&self, digits: &str) -> Option<SmsRecord> {
        let d = digits.trim_start_matches('+');
        self.state.messages.lock().iter().rev().find(|m| m.to.trim_start_matches('+') == d).cloned()
    }

    /// `submit_sm` PDUs received (accepted or not; segments count one each).
    pub fn submit_count(&self) -> u64 {
        self.state.submits.load(Ordering::Relaxed)
    }

    /// Successful binds so far.
    pub fn bind_count(&self) -> u64 {
        self.state.binds.load(Ordering::Relaxed)
    }
}

impl Handler for SimSmsc {
    async fn handle(self: Arc<Self>, req: Request<Incoming>, _peer: SocketAddr) -> Response<Full<Bytes>> {
        let answer = |status: StatusCode, body: Value| {
            let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
            *r.status_mut() = status;
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        };
        if req.method() != Method::GET {
            return answer(StatusCode::METHOD_NOT_ALLOWED, json!({"error": "GET only"}));
        }
        let path = req.uri().path().trim_end_matches('/');
        match path.strip_prefix("/sms") {
            Some("") => {
                answer(StatusCode::OK, Value::from(self.messages().iter().map(SmsRecord::json).collect::<Vec<_>>()))
            }
            Some(rest) if rest.starts_with('/') => {
                let number = percent_encoding::percent_decode_str(&rest[1..]).decode_utf8_lossy().into_owned();
                match self.last_for(&number) {
                    Some(m) => answer(StatusCode::OK, m.json()),
                    None => answer(StatusCode::NOT_FOUND, json!({"error": "no SMS to that number"})),
                }
            }
            _ => answer(StatusCode::NOT_FOUND, json!({"error": "try GET /sms or GET /sms/<msisdn>"})),
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(connection(stream, state.clone(), shutdown.clone()));
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    No,
    Transmitter,
    Receiver,
    Transceiver,
}

async fn connection(stream: TcpStream, state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    let (r, w) = stream.into_split();
    let mut reader = FramedRead::new(r, CommandCodec::new().with_max_length(64 * 1024));
    let mut writer = FramedWrite::new(w, CommandCodec::new());
    // Receipts are sent from timers: everything written goes through one queue.
    let (out_tx, mut out_rx) = mpsc::channel::<Command>(256);
    let mut kill = state.kill.subscribe();
    kill.mark_unchanged();
    let mut bound = Bound::No;
    let mut seq_out: u32 = 0x4000_0000;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = kill.changed() => return,
            out = out_rx.recv() => {
                let Some(cmd) = out else { return };
                if writer.send(cmd).await.is_err() { return; }
            }
            frame = reader.next() => {
                let Some(Ok(cmd)) = frame else { return };
                if *state.fault.lock() == Fault::Silent {
                    if matches!(cmd.pdu(), Some(Pdu::SubmitSm(_))) {
                        state.submits.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                let seq = cmd.sequence_number();
                let reply = |status: CommandStatus, pdu: Pdu| Command::new(status, seq, pdu);
                let answer = match cmd.pdu() {
                    Some(Pdu::BindTransceiver(b)) => {
                        let ok = state.credentials_ok(b.system_id.as_str(), b.password.as_str());
                        if ok { bound = Bound::Transceiver; }
                        let pdu = BindTransceiverResp::builder().system_id(sim_id()).build();
                        Some(reply(bind_status(&state, ok), pdu.into()))
                    }
                    Some(Pdu::BindTransmitter(b)) => {
                        let ok = state.credentials_ok(b.system_id.as_str(), b.password.as_str());
                        if ok { bound = Bound::Transmitter; }
                        let pdu = BindTransmitterResp::builder().system_id(sim_id()).build();
                        Some(reply(bind_status(&state, ok), pdu.into()))
                    }
                    Some(Pdu::BindReceiver(b)) => {
                        let ok = state.credentials_ok(b.system_id.as_str(), b.password.as_str());
                        if ok { bound = Bound::Receiver; }
                        let pdu = BindReceiverResp::builder().system_id(sim_id()).build();
                        Some(reply(bind_status(&state, ok), pdu.into()))
                    }
                    Some(Pdu::SubmitSm(sm)) if matches!(bound, Bound::Transmitter | Bound::Transceiver) => {
                        let (status, id) = state.submit(sm);
                        if let Some(id) = &id {
                            let wants_receipt = u8::from(sm.registered_delivery) & 0x03 != 0;
                            if wants_receipt && bound == Bound::Transceiver {
                                let to = sm.destination_addr.to_string();
                                let failed = to.ends_with(SUFFIX_UNDELIVERABLE);
                                seq_out = seq_out.wrapping_add(1).max(0x4000_0000);
                                tokio::spawn(send_receipt(out_tx.clone(), state.cfg.receipt_after, seq_out, id.clone(), to, failed));
                            }
                        }
                        let msg_id = COctetString::from_str(id.as_deref().unwrap_or("")).unwrap_or_default();
                        let pdu = SubmitSmResp::builder().message_id(msg_id).build();
                        Some(reply(status, pdu.into()))
                    }
                    Some(Pdu::SubmitSm(_)) => Some(reply(CommandStatus::EsmeRinvbndsts, Pdu::GenericNack)),
                    Some(Pdu::EnquireLink) => Some(reply(CommandStatus::EsmeRok, Pdu::EnquireLinkResp)),
                    Some(Pdu::Unbind) => {
                        let _ = writer.send(reply(CommandStatus::EsmeRok, Pdu::UnbindResp)).await;
                        return;
                    }
                    // Answers to our deliver_sm, enquire_link_resp, generic_nack: nothing to do.
                    _ if u32::from(cmd.id()) & 0x8000_0000 != 0 => None,
                    _ => Some(reply(CommandStatus::EsmeRinvcmdid, Pdu::GenericNack)),
                };
                if let Some(a) = answer {
                    if writer.send(a).await.is_err() { return; }
                }
            }
        }
    }
}

fn sim_id() -> COctetString<1, 16> {
    COctetString::from_str("mcgate-smsc").unwrap_or_default()
}

fn bind_status(state: &State, ok: bool) -> CommandStatus {
    if ok {
        state.binds.fetch_add(1, Ordering::Relaxed);
        CommandStatus::EsmeRok
    } else {
        CommandStatus::EsmeRinvpaswd
    }
}

impl State {
    fn credentials_ok(&self, system_id: &str, password: &str) -> bool {
        use subtle::ConstantTimeEq;
        let id_ok = system_id.as_bytes().ct_eq(self.cfg.system_id.as_bytes());
        let pw_ok = password.as_bytes().ct_eq(self.cfg.password.as_bytes());
        (id_ok & pw_ok).into()
    }

    /// Answers one submit: the status and, when accepted, the message id.
    fn submit(&self, sm: &SubmitSm) -> (CommandStatus, Option<String>) {
        self.submits.fetch_add(1, Ordering::Relaxed);
        let to = sm.destination_addr.to_string();
        match *self.fault.lock() {
            Fault::Throttle => return (CommandStatus::EsmeRthrottled, None),
            Fault::SubmitFail => return (CommandStatus::EsmeRsubmitfail, None),
            Fault::None | Fault::Silent => {}
        }
        if to.ends_with(SUFFIX_THROTTLED) {
            return (CommandStatus::EsmeRthrottled, None);
        }
        if to.ends_with(SUFFIX_SUBMIT_FAIL) {
            return (CommandStatus::EsmeRsubmitfail, None);
        }
        let id = format!("{:08x}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let bytes: &[u8] = sm.short_message().as_ref();
        let udhi = u8::from(sm.esm_class) & 0x40 != 0;
        let text = encode::decode(sm.data_coding, udhi, bytes);
        let from = sm.source_addr.to_string();
        // Concatenation UDH (8-bit reference): 05 00 03 ref total seq.
        if udhi && bytes.len() >= 6 && bytes[0] == 5 && bytes[1] == 0 && bytes[2] == 3 {
            let (reference, total, part) = (bytes[3], bytes[4] as usize, bytes[5] as usize);
            if total >= 1 && (1..=total).contains(&part) {
                let mut partial = self.partial.lock();
                if partial.len() > KEEP {
                    partial.clear();
                }
                let key = (to.clone(), reference);
                let entry = partial.entry(key.clone()).or_insert_with(|| (id.clone(), vec![None; total]));
                if part == 1 {
                    entry.0 = id.clone();
                }
                if let Some(slot) = entry.1.get_mut(part - 1) {
                    *slot = Some(text);
                }
                if entry.1.iter().all(Option::is_some) {
                    let (first, parts) = partial.remove(&key).unwrap_or_default();
                    let text: String = parts.into_iter().flatten().collect();
                    self.keep(SmsRecord { to, text, message_id: first, segments: total, from });
                }
                return (CommandStatus::EsmeRok, Some(id));
            }
        }
        self.keep(SmsRecord { to, text, message_id: id.clone(), segments: 1, from });
        (CommandStatus::EsmeRok, Some(id))
    }

    fn keep(&self, record: SmsRecord) {
        let mut m = self.messages.lock();
        if m.len() >= KEEP {
            m.pop_front();
        }
        m.push_back(record);
    }
}

/// Sends the SMPP 3.4 appendix B receipt for `id` after `delay`.
async fn send_receipt(out: mpsc::Sender<Command>, delay: Duration, seq: u32, id: String, to: String, failed: bool) {
    tokio::time::sleep(delay).await;
    let (stat, state, dlvrd) = if failed {
        ("UNDELIV", MessageState::Undeliverable, "000")
    } else {
        ("DELIVRD", MessageState::Delivered, "001")
    };
    let text =
        format!("id:{id} sub:001 dlvr:{dlvrd} submit date:2601010000 done date:2601010000 stat:{stat} err:000 text:");
    let Ok(short_message) = OctetString::from_str(&text) else { return };
    let mut pdu = DeliverSm::builder()
        .source_addr_ton(Ton::International)
        .source_addr_npi(Npi::Isdn)
        .source_addr(COctetString::from_str(&to).unwrap_or_default())
        .esm_class(EsmClass::from(0x04u8))
        .short_message(short_message)
        .build();
    if let Ok(rid) = COctetString::from_str(&id) {
        pdu.push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(rid));
    }
    pdu.push_tlv(MessageDeliveryRequestTlvValue::MessageState(state));
    let _ = out.send(Command::new(CommandStatus::EsmeRok, seq, pdu)).await;
}
