//! The GSMA Discovery API, metadata, JWKS and the admin listener of the demo gateway.

mod support;

use support::{answer, start_demo, Rp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_names_the_serving_operator_and_its_subscriber_id_works_as_a_hint() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);
    let url = format!("{}/v2/discovery", rp.base);
    let q = [("MSISDN", "34609000101"), ("Redirect_URL", "https://rp.example.org/callback"), ("correlation_id", "c-1")];
    let a = answer(rp.http.get(&url).basic_auth(&rp.client_id, Some(&rp.secret)).query(&q).send().await.unwrap()).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["response"]["serving_operator"], "orange", "ported number");
    assert_eq!(a.body["correlation_id"], "c-1");
    assert_eq!(a.body["response"]["client_id"], "demo-rp");
    let links = a.body["response"]["apis"]["operatorid"]["link"].as_array().unwrap();
    assert!(links.iter().any(|l| l["rel"] == "token" && l["href"] == format!("{}/token", demo.public_url)));
    let sid = a.body["subscriber_id"].as_str().unwrap();
    assert!(!sid.contains("609000101"));

    // The subscriber id works as ENCR_MSISDN for this client …
    let ack = rp.post("/bc-authorize", &[("scope", "openid"), ("login_hint", &format!("ENCR_MSISDN:{sid}"))]).await;
    assert_eq!(ack.status, 200, "{:?}", ack.body);
    // … and not for another.
    let other = answer(
        rp.http
            .post(format!("{}/bc-authorize", rp.base))
            .form(&[
                ("scope", "openid"),
                ("login_hint", &format!("ENCR_MSISDN:{sid}")),
                ("client_id", "demo-rp-post"),
                ("client_secret", &rp.secret),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((other.status, other.error()), (400, "invalid_request"));

    // POST form with Selected-MCC/MNC.
    let a = answer(
        rp.http
            .post(&url)
            .basic_auth(&rp.client_id, Some(&rp.secret))
            .form(&[
                ("Selected-MCC", "214"),
                ("Selected-MNC", "01"),
                ("Redirect_URL", "https://rp.example.org/callback"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.body["response"]["serving_operator"], "vodafone");

    // No MSISDN and no MCC/MNC → 202 with the operator-selection link, whose page redirects
    // only to the registered Redirect_URL.
    let a = answer(
        rp.http
            .get(&url)
            .basic_auth(&rp.client_id, Some(&rp.secret))
            .query(&[("Redirect_URL", "https://rp.example.org/callback")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 202);
    let href = a.body["links"][0]["href"].as_str().unwrap().replace(&demo.public_url, &rp.base);
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = no_redirect.get(&href).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Movistar"));
    let chosen = no_redirect.get(format!("{href}&mcc_mnc=214_07")).send().await.unwrap();
    assert_eq!(chosen.status(), 302);
    assert_eq!(chosen.headers()["location"], "https://rp.example.org/callback?mcc_mnc=214_07");
    let evil = no_redirect
        .get(format!(
            "{}/v2/discovery/operator-selection?client_id=demo-rp&Redirect_URL=https://evil.example&mcc_mnc=214_07",
            rp.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 400, "never an open redirect");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_errors_carry_description_and_correlation_id() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);
    let url = format!("{}/v2/discovery", rp.base);
    let a =
        answer(rp.http.get(&url).query(&[("MSISDN", "34700000011"), ("correlation_id", "c-2")]).send().await.unwrap())
            .await;
    assert_eq!((a.status, a.error()), (401, "invalid_client"));
    assert_eq!(a.body["correlation_id"], "c-2");
    assert!(a.body["description"].is_string());
    let a = answer(
        rp.http
            .get(&url)
            .basic_auth(&rp.client_id, Some(&rp.secret))
            .query(&[("MSISDN", "34700000011"), ("Redirect_URL", "https://evil.example/")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((a.status, a.error()), (400, "invalid_request"));
    let a = answer(
        rp.http
            .get(&url)
            .basic_auth(&rp.client_id, Some(&rp.secret))
            .query(&[("MSISDN", "442071234567"), ("Redirect_URL", "https://rp.example.org/callback")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((a.status, a.error()), (404, "Not_Found_Entity"));
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_jwks_and_admin_endpoints() {
    let demo = start_demo().await;
    let rp = Rp::new(&demo);
    let md: serde_json::Value = rp
        .http
        .get(format!("{}/.well-known/openid-configuration", rp.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(md["issuer"], demo.public_url);
    assert_eq!(md["backchannel_authentication_endpoint"], format!("{}/bc-authorize", demo.public_url));
    assert_eq!(md["backchannel_token_delivery_modes_supported"], serde_json::json!(["poll", "ping", "push"]));
    assert_eq!(md["login_hint_methods_supported"], serde_json::json!(["MSISDN", "ENCR_MSISDN", "PCR"]));
    let jwks: serde_json::Value = rp.http.get(format!("{}/jwks", rp.base)).send().await.unwrap().json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str(), key["use"].as_str()),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    assert!(key.get("d").is_none(), "no private key material");

    // The TLS listener serves the same documents.
    let tls = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(demo.tls_cert_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let md2: serde_json::Value = tls
        .get(format!("{}/.well-known/openid-configuration", demo.public_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(md2, md);

    let admin = &demo.admin_url;
    assert_eq!(reqwest::get(format!("{admin}/live")).await.unwrap().status(), 200);
    assert_eq!(reqwest::get(format!("{admin}/ready")).await.unwrap().status(), 200);
    let metrics = reqwest::get(format!("{admin}/metrics")).await.unwrap().text().await.unwrap();
    for name in [
        "mcgate_http_requests_total",
        "mcgate_http_request_duration_seconds",
        "mcgate_operator_request_duration_seconds",
        "mcgate_transactions{",
        "mcgate_build_info",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
    assert!(!metrics.contains("34700000011"));
    demo.stop().await;
}
