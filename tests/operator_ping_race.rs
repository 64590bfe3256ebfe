//! An operator's CIBA ping callback racing the RP's own polls: the simulated Orange pings
//! `/op/orange/notify` once the person approved, while bursts of overlapping RP polls land at
//! the same moment. The operator hands the result out once (a second fetch gets
//! `invalid_grant`), so only one fetch may run per transaction and its answer must survive the
//! RP's concurrent `slow_down` writes: every transaction ends approved, never
//! `failed{operator_error}`.

mod support;

use mcgate::demo::test_msisdn;
use mcgate::flow::TxState;
use std::time::Duration;
use support::{start_demo_tuned, Rp};

/// Transactions raced at once.
const RACES: u64 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_ping_racing_rp_polls_never_fails_the_transaction() {
    // The person answers after 1 s, exactly when the operator poll slot (1 s interval) opens.
    let demo = start_demo_tuned(&[], |t| t, |o| o.approve_after = Duration::from_millis(1000)).await;
    let rp = Rp::new(&demo);
    let hint = format!("MSISDN:{}", test_msisdn(&demo.gateway, "orange", 1).expect("orange number").digits());
    let race = |i: u64| {
        let (rp, hint, demo) = (&rp, &hint, &demo);
        async move {
            let ack = rp.bc_authorize(hint).await;
            assert_eq!(ack.status, 200, "{:?}", ack.body);
            let id = ack.body["auth_req_id"].as_str().unwrap().to_owned();
            // Bursts of three overlapping polls spread over 960..1056 ms, around the ping.
            tokio::time::sleep(Duration::from_millis(960 + i * 8)).await;
            let burst = futures_util::future::join_all((0..3).map(|_| rp.token(&id))).await;
            let mut collected = false;
            for a in &burst {
                assert_ne!(a.error(), "transaction_failed", "{:?}", a.body);
                collected |= a.status == 200;
            }
            // Then the stored state settles (bounded) and is never failed.
            let end = tokio::time::Instant::now() + Duration::from_secs(10);
            let state = loop {
                let tx = demo.gateway.store.get(&id).await.unwrap().expect("transaction").value;
                if !tx.state.is_pending() {
                    break tx.state;
                }
                assert!(tokio::time::Instant::now() < end, "still pending");
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            match state {
                TxState::Consumed => assert!(collected, "consumed by a poll of the burst"),
                TxState::Approved => {
                    let t = rp.token(&id).await;
                    assert_eq!(t.status, 200, "{:?}", t.body);
                }
                s => panic!("transaction {i} ended {s:?}"),
            }
        }
    };
    futures_util::future::join_all((0..RACES).map(race)).await;
    let orange = demo.sims.iter().find(|s| s.operator_id() == "orange").expect("orange sim");
    let pings = orange.sent();
    assert_eq!(pings.len() as u64, RACES, "one ping per transaction");
    assert!(pings.iter().all(|p| p.status == 204), "every ping accepted");
    demo.stop().await;
}
