//! Unit tests of codes, links and the `pending_sms` transitions.

use super::*;

fn codes() -> SmsCodes {
    SmsCodes::new(&crate::config::SmsCodesConfig::default(), vec![7u8; 32])
}

fn pending(codes: &SmsCodes, mode: SmsMode, now: u64) -> (Transaction, OneTimeSecret) {
    let mut tx = Transaction::sample("tx-a", now);
    tx.binding_message = Some("Pay 10 EUR to Shop".into());
    let (state, secret) = codes.arm(&tx, mode, now, Some("ca")).unwrap();
    tx.sms = Some(Box::new(state));
    tx.state = TxState::PendingSms;
    (tx, secret)
}

#[test]
fn rejection_sampling_throws_away_the_biased_top_of_the_range() {
    // n = 10^6: 2^32 mod n = 967296, so values above u32::MAX - 967296 are rejected.
    let top = u32::MAX - 967_296;
    let mut draws = [u32::MAX, top + 1, top, 5].into_iter();
    assert_eq!(uniform_below(1_000_000, || Ok(draws.next().unwrap())).unwrap(), top % 1_000_000);
    let mut draws = [u32::MAX, 42].into_iter();
    assert_eq!(generate_code(6, || Ok(draws.next().unwrap())).unwrap(), "000042", "leading zeros kept");
    assert!(uniform_below(10, || Ok(u32::MAX)).is_err(), "a stuck source ends, bounded");
}

#[test]
fn codes_are_uniform_per_position_chi_square() {
    // 10^5 OS-random 6-digit codes: χ² over the 10 digits of each position, 9 degrees of
    // freedom. 50 is exceeded by chance with p ≈ 1e-7 per position.
    const N: usize = 100_000;
    let mut counts = [[0u32; 10]; 6];
    for _ in 0..N {
        let code = generate_code(6, os_u32).unwrap();
        assert_eq!(code.len(), 6);
        for (pos, b) in code.bytes().enumerate() {
            counts[pos][usize::from(b - b'0')] += 1;
        }
    }
    let expected = N as f64 / 10.0;
    for (pos, c) in counts.iter().enumerate() {
        let chi2: f64 = c.iter().map(|&o| (f64::from(o) - expected).powi(2) / expected).sum();
        assert!(chi2 < 50.0, "position {pos}: χ² = {chi2:.1} ({c:?})");
    }
}

#[test]
fn code_length_follows_the_setting_and_links_carry_256_bits() {
    let mut c = codes();
    c.digits = 8;
    let (tx, secret) = pending(&c, SmsMode::Otp, 0);
    assert_eq!(secret.expose().len(), 8);
    assert!(secret.expose().bytes().all(|b| b.is_ascii_digit()));
    let (_, link) = pending(&c, SmsMode::Link, 0);
    assert_eq!(link.expose().len(), 43, "32 bytes base64url");
    assert_eq!(format!("{secret:?}"), "[redacted]");
    assert!(!format!("{:?}", tx.sms).contains(&tx.sms.as_ref().unwrap().code_mac), "Debug hides the HMAC");
}

#[test]
fn the_store_keeps_an_hmac_bound_to_transaction_client_msisdn_and_binding_message() {
    let c = codes();
    let (tx, secret) = pending(&c, SmsMode::Otp, 0);
    let stored = serde_json::to_string(&tx).unwrap();
    assert!(!stored.contains(&format!("\"{}\"", secret.expose())), "no code at rest");
    let sms = tx.sms.as_ref().unwrap();
    assert_eq!(sms.code_mac.len(), 64);
    assert!(c.matches(&tx, sms, secret.expose()));
    for change in [
        |t: &mut Transaction| t.id = "tx-b".into(),
        |t: &mut Transaction| t.client_id = "other".into(),
        |t: &mut Transaction| t.msisdn += 1,
        |t: &mut Transaction| t.binding_message = Some("Pay 99 EUR to Shop".into()),
    ] {
        let mut other = tx.clone();
        change(&mut other);
        assert!(!c.matches(&other, sms, secret.expose()), "any change voids the code");
    }
    let other_key = SmsCodes::new(&crate::config::SmsCodesConfig::default(), vec![8u8; 32]);
    assert!(!other_key.matches(&tx, sms, secret.expose()));
}

#[test]
fn the_right_code_approves_with_acr_2_and_honest_amr() {
    let c = codes();
    let (tx, secret) = pending(&c, SmsMode::Otp, 1_000);
    match check_code(&c, &tx, SmsMode::Otp, Some(secret.expose()), 2_000) {
        Check::Approve(n) => {
            assert_eq!(n.state, TxState::Approved);
            assert_eq!(n.channel, Channel::Sms);
            let r = n.result.unwrap();
            assert_eq!((r.acr.as_str(), r.amr), ("2", vec!["sms".to_owned(), "otp".to_owned()]));
        }
        other => panic!("{other:?}"),
    }
    let (tx, _) = pending(&c, SmsMode::Link, 1_000);
    match check_decision(&tx, Decision::Approve, 2_000) {
        Check::Approve(n) => assert_eq!(n.result.unwrap().amr, vec!["sms".to_owned()]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(check_decision(&tx, Decision::Deny, 2_000), Check::Deny(n) if n.state == TxState::Denied));
}

#[test]
fn five_wrong_codes_fail_the_transaction_and_a_sixth_right_one_fails_too() {
    let c = codes();
    let (mut tx, secret) = pending(&c, SmsMode::Otp, 0);
    let wrong = if secret.expose() == "000000" { "111111" } else { "000000" };
    for i in 1..=5u32 {
        match check_code(&c, &tx, SmsMode::Otp, Some(wrong), 1_000) {
            Check::Wrong(n) => {
                assert_eq!(n.sms.as_ref().unwrap().attempts, i);
                assert_eq!(n.state.is_pending(), i < 5, "attempt {i}");
                tx = n;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(tx.state, TxState::Failed(FailReason::TooManyAttempts));
    assert_eq!(check_code(&c, &tx, SmsMode::Otp, Some(secret.expose()), 1_000), Check::NotPending);
    // Even if the state were still pending, the cap holds.
    tx.state = TxState::PendingSms;
    assert!(matches!(check_code(&c, &tx, SmsMode::Otp, Some(secret.expose()), 1_000), Check::Wrong(_)));
}

#[test]
fn expiry_junk_foreign_codes_and_wrong_modes() {
    let c = codes();
    let (tx, secret) = pending(&c, SmsMode::Otp, 0);
    let expiry = tx.sms.as_ref().unwrap().expires_at_ms;
    assert_eq!(expiry, 300_000, "300 s, never past the transaction");
    assert!(matches!(check_code(&c, &tx, SmsMode::Otp, Some(secret.expose()), expiry - 1), Check::Approve(_)));
    assert!(
        matches!(check_code(&c, &tx, SmsMode::Otp, Some(secret.expose()), expiry + 1_000), Check::Expire(n) if n.state == TxState::Expired),
        "right code at expiry + 1 s"
    );
    assert!(matches!(check_code(&c, &tx, SmsMode::Otp, None, 1), Check::Wrong(_)), "junk is one failure");
    assert_eq!(check_code(&c, &tx, SmsMode::Link, Some(secret.expose()), 1), Check::NotPending);
    // A's code on B: rejected and counted on B.
    let mut b = Transaction::sample("tx-b", 0);
    let (state_b, _) = c.arm(&b, SmsMode::Otp, 0, None).unwrap();
    b.sms = Some(Box::new(state_b));
    b.state = TxState::PendingSms;
    assert!(
        matches!(check_code(&c, &b, SmsMode::Otp, Some(secret.expose()), 1), Check::Wrong(n) if n.sms.as_ref().unwrap().attempts == 1)
    );
}

#[test]
fn typed_codes_have_one_documented_form() {
    assert_eq!(normalise_code(" 123 456 ", 6).as_deref(), Some("123456"));
    assert_eq!(normalise_code("1234567", 6), None);
    assert_eq!(normalise_code("123456\0", 6), None);
    assert_eq!(normalise_code("１２３４５６", 6), None, "full-width digits");
    assert_eq!(normalise_code(&"1".repeat(10_000), 6), None);
}

#[test]
fn re_arming_keeps_attempts_and_counts_sends_and_csrf_follows_the_code() {
    let c = codes();
    let (mut tx, _) = pending(&c, SmsMode::Otp, 0);
    tx.sms.as_mut().unwrap().attempts = 3;
    let csrf = c.csrf_token(&tx);
    assert!(c.csrf_ok(&tx, Some(&csrf)));
    assert!(!c.csrf_ok(&tx, None));
    assert!(!c.csrf_ok(&tx, Some("x")));
    let (again, _) = c.arm(&tx, SmsMode::Otp, 10_000, None).unwrap();
    assert_eq!((again.attempts, again.sends, again.language.as_deref()), (3, 2, Some("ca")));
    tx.sms = Some(Box::new(again));
    assert!(!c.csrf_ok(&tx, Some(&csrf)), "a new code voids the old pages");
    assert!(c.arm(&tx, SmsMode::Otp, tx.expires_at_ms, None).is_err());
}
