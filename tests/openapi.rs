//! The checked-in OpenAPI 3.1 document (`docs/openapi.json`) describes exactly the routes the
//! router serves, with the same methods, and the gateway serves that very document.

mod support;

use serde_json::Value;
use std::collections::BTreeSet;

fn documented() -> BTreeSet<(String, String)> {
    let doc: Value = serde_json::from_str(mcgate::rp::OPENAPI_JSON).expect("docs/openapi.json is JSON");
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true), "OpenAPI 3.1");
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "post", "put", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                ops.insert((path.clone(), method.to_uppercase()));
            }
        }
    }
    ops
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let served: BTreeSet<(String, String)> =
        mcgate::rp::served_operations().into_iter().map(|(p, m)| (p.to_owned(), m.to_owned())).collect();
    let documented = documented();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&served).collect();
    assert!(undocumented.is_empty(), "served but not in docs/openapi.json: {undocumented:?}");
    assert!(phantom.is_empty(), "in docs/openapi.json but not served: {phantom:?}");
}

#[test]
fn every_reference_resolves() {
    let doc: Value = serde_json::from_str(mcgate::rp::OPENAPI_JSON).unwrap();
    fn walk(v: &Value, doc: &Value, seen: &mut usize) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let pointer = r.strip_prefix('#').expect("local reference");
                    assert!(doc.pointer(pointer).is_some(), "dangling {r}");
                    *seen += 1;
                }
                m.values().for_each(|c| walk(c, doc, seen));
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, doc, seen)),
            _ => {}
        }
    }
    let mut seen = 0;
    walk(&doc, &doc, &mut seen);
    assert!(seen > 10, "the document uses its components");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_the_checked_in_document() {
    let demo = support::start_demo().await;
    let r = reqwest::get(format!("{}/openapi.json", demo.plain_url.as_ref().unwrap())).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let served: Value = r.json().await.unwrap();
    assert_eq!(served, serde_json::from_str::<Value>(mcgate::rp::OPENAPI_JSON).unwrap());
    demo.stop().await;
}
