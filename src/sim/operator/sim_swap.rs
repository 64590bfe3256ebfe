//! The simulated operator's CAMARA SIM Swap v2 `check` (`POST /sim-swap/v2/check`, the
//! gateway's client_secret_basic credentials), scripted by the SECOND-TO-LAST digit of the
//! number so it never collides with the last-digit push outcomes:
//!
//! | second-to-last digit | answer |
//! |---|---|
//! | 9 | `{"swapped": true}` |
//! | 8 | HTTP 500 |
//! | 7 | answers after [`SLOW`] (beyond the default 2 s timeout) |
//! | 6 | HTTP 200 with junk (not JSON) |
//! | other | `{"swapped": false}` |
//!
//! `maxAge` outside 1–2400 → 400 `OUT_OF_RANGE`; a bad `phoneNumber` → 400 `INVALID_ARGUMENT`.
//! E.g. `+34600000191` approves the push (last digit 1) but its SIM was swapped.

use super::{json_ok, SimOperator};
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Delay of the "slow" SIM-swap answer.
pub const SLOW: Duration = Duration::from_secs(3);

fn camara_error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let mut r = json_ok(json!({"status": status.as_u16(), "code": code, "message": message}));
    *r.status_mut() = status;
    r
}

impl SimOperator {
    /// `POST /sim-swap/v2/check` with a JSON body (authentication checked by the caller).
    pub(super) async fn sim_swap_check(&self, body: &[u8]) -> Response<Full<Bytes>> {
        self.stats.sim_swap.fetch_add(1, Ordering::Relaxed);
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return camara_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "body must be JSON");
        };
        let phone = v.get("phoneNumber").and_then(|p| p.as_str()).unwrap_or_default();
        let Some(digits) = phone
            .strip_prefix('+')
            .filter(|d| (5..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0'))
        else {
            return camara_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "phoneNumber must be E.164");
        };
        let max_age = v.get("maxAge").map_or(Some(240), |m| m.as_u64());
        if !max_age.is_some_and(|m| (1..=2400).contains(&m)) {
            return camara_error(StatusCode::BAD_REQUEST, "OUT_OF_RANGE", "maxAge must be 1-2400");
        }
        match digits.as_bytes()[digits.len() - 2] {
            b'9' => json_ok(json!({"swapped": true})),
            b'8' => camara_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "simulated failure"),
            b'7' => {
                tokio::time::sleep(SLOW).await;
                json_ok(json!({"swapped": false}))
            }
            b'6' => Response::new(Full::new(Bytes::from_static(b"<html>oops</html>"))),
            _ => json_ok(json!({"swapped": false})),
        }
    }
}
