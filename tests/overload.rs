//! Overload at the edge (shared/security.md L-04, F-03, F-14), against the real `mcgate serve`:
//! more concurrent requests than the in-flight cap against a slow operator → the excess gets
//! 503 `temporarily_unavailable` + `Retry-After: 1` at once, every request answers (no hang),
//! the shed counter matches, health stays served, memory stays bounded; the connection cap
//! closes the excess connection; too many / too large headers → 431; a slowloris client and an
//! idle keep-alive connection are disconnected after `header_read_timeout_ms`.

mod edge_support;

use edge_support::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const CAP: usize = 8;
const SLOW: Duration = Duration::from_millis(2500);

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("routing.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_the_in_flight_cap_the_excess_is_shed_at_once_and_nothing_hangs() {
    let sims = start_sims(&["movistar"], Duration::from_millis(500), SLOW).await;
    let dir = tempfile::tempdir().unwrap();
    let text =
        head_toml("", &format!("max_in_flight = {CAP}")) + &operator_toml(&sims.ops[0], "34") + &client_toml("rp");
    let gw = Gateway::start(&write_config(&dir, &text));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(0).build().unwrap();
    // Warm up (operator metadata fetched once), then measure.
    let warm = http
        .post(format!("{}/bc-authorize", gw.public))
        .basic_auth("rp", Some("test"))
        .form(&[("scope", "openid"), ("login_hint", "MSISDN:34600000001")])
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200, "{}", warm.text().await.unwrap());
    let rss_before = gw.rss_kb();

    const WAVES: usize = 3;
    const PER_WAVE: usize = 64;
    let (mut ok, mut shed, mut other) = (0usize, 0usize, Vec::new());
    let mut shed_latencies = Vec::new();
    for wave in 0..WAVES {
        let mut tasks = Vec::new();
        for i in 0..PER_WAVE {
            let (http, url) = (http.clone(), format!("{}/bc-authorize", gw.public));
            // Last digit 6: the simulated operator acknowledges after SLOW.
            let hint = format!("MSISDN:3460{wave}0{i:03}6");
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                let r = http
                    .post(url)
                    .basic_auth("rp", Some("test"))
                    .form(&[("scope", "openid"), ("login_hint", hint.as_str())])
                    .send()
                    .await
                    .expect("every request answers (no hang, no transport error)");
                let status = r.status().as_u16();
                let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                (status, retry_after, body, started.elapsed())
            }));
        }
        if wave == 0 {
            // While the cap is full: health is served on the admin listener, the gauge shows the cap.
            tokio::time::sleep(Duration::from_millis(800)).await;
            let ready = http.get(format!("{}/ready", gw.admin)).send().await.unwrap();
            assert_eq!(ready.status(), 200, "health is exempt from shedding");
            assert_eq!(metric(&http, &gw.admin, "mcgate_inflight_requests").await, CAP as f64);
        }
        for t in tasks {
            let (status, retry_after, body, took) = t.await.unwrap();
            match status {
                200 => ok += 1,
                503 => {
                    shed += 1;
                    assert_eq!(retry_after.as_deref(), Some("1"));
                    assert_eq!(body["error"], "temporarily_unavailable");
                    assert!(took < SLOW, "a shed answer is immediate, never queued behind slow work: {took:?}");
                    shed_latencies.push(took);
                }
                s => other.push((s, body)),
            }
        }
    }
    let total = WAVES * PER_WAVE;
    shed_latencies.sort();
    if let (Some(p50), Some(max)) = (shed_latencies.get(shed_latencies.len() / 2), shed_latencies.last()) {
        println!("overload: shed answer latency (client side, debug build, shared CPU) p50 {p50:?}, max {max:?}");
    }
    println!("overload: {total} requests, cap {CAP}: {ok} admitted (200), {shed} shed (503), {} other", other.len());
    assert!(other.is_empty(), "unexpected answers: {other:?}");
    assert!(ok >= CAP, "at least the cap is served per wave: {ok}");
    assert!(shed > 0, "some requests must be shed");
    let counted = metric(&http, &gw.admin, "mcgate_requests_shed_total{reason=\"in_flight\"}").await;
    assert_eq!(counted, shed as f64, "every shed answer is counted");
    assert_eq!(metric(&http, &gw.admin, "mcgate_inflight_requests").await, 0.0, "every place released");
    let rss_after = gw.rss_kb();
    println!("overload: RSS before {rss_before} kB, after {rss_after} kB");
    assert!(rss_after < rss_before + 64 * 1024, "memory bounded: {rss_before} kB → {rss_after} kB");
}

/// Sends `request` raw and returns the status line (or "" if the server closed without one).
fn raw_status(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).lines().next().unwrap_or("").to_owned()
}

fn host(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

#[test]
fn header_limits_answer_431_and_the_connection_cap_closes_the_excess() {
    let dir = tempfile::tempdir().unwrap();
    let text = head_toml("header_read_timeout_ms = 3000", "max_headers = 16\nmax_connections = 4\nmax_header_bytes = 8192")
        + "[[operators]]\nid = \"movistar\"\nprefixes = [\"34\"]\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"mcgate\"\nclient_secret = \"x\"\n\n"
        + &client_toml("rp");
    let gw = Gateway::start(&write_config(&dir, &text));
    let addr = host(&gw.public);

    let mut many = String::from("GET /jwks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..40 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let status = raw_status(&addr, many.as_bytes());
    assert!(status.starts_with("HTTP/1.1 431"), "too many headers: {status:?}");

    let big = format!("GET /jwks HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    let status = raw_status(&addr, big.as_bytes());
    assert!(status.starts_with("HTTP/1.1 431"), "oversize head: {status:?}");

    let fine = raw_status(&addr, b"GET /jwks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(fine.starts_with("HTTP/1.1 200"), "{fine:?}");

    // Four idle connections fill the cap; the fifth is accepted and closed at once.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let http = reqwest::Client::new();
    let idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // Wait (bounded) until the server holds exactly the four idle connections.
    let end = Instant::now() + Duration::from_secs(5);
    while rt.block_on(metric(&http, &gw.admin, "mcgate_open_connections")) != 4.0 {
        assert!(Instant::now() < end, "the four idle connections were not all accepted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut fifth = TcpStream::connect(&addr).unwrap();
    fifth.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = fifth.write_all(b"GET /jwks HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = [0u8; 64];
    let n = fifth.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "over the connection cap: closed without an answer, got {:?}", String::from_utf8_lossy(&buf[..n]));
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));
    let again = raw_status(&addr, b"GET /jwks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(again.starts_with("HTTP/1.1 200"), "served again once connections closed: {again:?}");
    let shed = rt.block_on(metric(&http, &gw.admin, "mcgate_requests_shed_total{reason=\"connections\"}"));
    assert!(shed >= 1.0, "connection shed counted: {shed}");
}

#[test]
fn a_slowloris_client_and_an_idle_keep_alive_connection_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let text = head_toml("header_read_timeout_ms = 1000", "")
        + "[[operators]]\nid = \"movistar\"\nprefixes = [\"34\"]\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"mcgate\"\nclient_secret = \"x\"\n\n"
        + &client_toml("rp");
    let gw = Gateway::start(&write_config(&dir, &text));
    let addr = host(&gw.public);

    // Slowloris: one header byte every 200 ms never completes a head; cut off after ~1 s.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    s.write_all(b"GET /jwks HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(8) {
        if s.write_all(b"X").is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {} // a 408 may be written before the close
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let took = started.elapsed();
    println!("slowloris: disconnected after {took:?}");
    assert!(closed, "the slow header sender must be disconnected");
    assert!(took >= Duration::from_millis(900), "not before the header-read timeout: {took:?}");

    // Idle keep-alive: after one answer, a silent connection is closed by the same timer.
    let mut k = TcpStream::connect(&addr).unwrap();
    k.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    k.write_all(b"GET /jwks HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = k.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    let mut rest = Vec::new();
    let _ = k.read_to_end(&mut rest); // returns at EOF (server closed) or the 8 s read timeout
    let idle = idle_from.elapsed();
    println!("idle keep-alive: closed after {idle:?}");
    assert!(idle < Duration::from_secs(6), "idle keep-alive connection closed by the server: {idle:?}");
}
