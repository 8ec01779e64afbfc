//! Certificate validity by governance, end to end: `set_node_certificate_validity` makes the
//! node serve a re-endorsed certificate, `set_service_certificate_validity` renews the service
//! certificate (same key, so node certificates still chain to it), and limits are enforced.

mod support;

use std::time::{Duration, Instant};

use coco_client::{BlockingConnection, ClientConfig};
use serde_json::{Value, json};
use support::{Options, TestNode, asn1_time, now, propose_and_vote};

const V: &str = "api-version=2024-07-01";
const DAY: i64 = 86_400;

fn served_certificate(node: &TestNode, ca_pem: &str) -> Vec<u8> {
    let cfg = ClientConfig::new(ca_pem, None, false).unwrap();
    BlockingConnection::connect(&cfg, node.addr)
        .expect("the served certificate chains to the CA")
        .server_certificate_der()
        .to_vec()
}

/// Polls until `f` holds (the change lands once its transaction commits).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn failure_reason(node: &TestNode, vote: &Value) -> String {
    assert_eq!(vote["proposalState"], "Failed", "{vote}");
    let id = vote["proposalId"].as_str().unwrap();
    node.anonymous()
        .get(&format!("/gov/members/proposals/{id}?{V}"))
        .unwrap()
        .json()["failure"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn certificate_validity_by_governance() {
    let node = TestNode::start(Options::default());
    let service_pem = std::fs::read_to_string(node.path("service_cert.pem")).unwrap();
    let service_der = coco_crypto::pem_to_der_certs(&service_pem)
        .unwrap()
        .remove(0);
    let service_spki = coco_crypto::cert_public_key_spki_der(&service_der).unwrap();
    let node_id = node
        .anonymous()
        .get("/node/network/nodes/self")
        .unwrap()
        .json()["node_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let initial = served_certificate(&node, &service_pem);
    let node_spki = coco_crypto::cert_public_key_spki_der(&initial).unwrap();

    // The node's certificate, re-endorsed for 3 days from an hour ago.
    let from = now() - 3600;
    let vote = propose_and_vote(
        &node,
        &json!({"actions": [{"name": "set_node_certificate_validity", "args": {
            "node_id": node_id, "valid_from": asn1_time(from), "validity_period_days": 3}}]}),
    );
    assert_eq!(vote["proposalState"], "Accepted", "{vote}");
    let mut renewed = Vec::new();
    eventually("the renewed node certificate to be served", || {
        renewed = served_certificate(&node, &service_pem);
        renewed != initial
    });
    assert_eq!(
        coco_crypto::cert_validity(&renewed).unwrap(),
        coco_crypto::Validity {
            not_before_unix_s: from,
            not_after_unix_s: from + 3 * DAY - 1
        }
    );
    assert_eq!(
        coco_crypto::cert_public_key_spki_der(&renewed).unwrap(),
        node_spki
    );
    coco_crypto::verify_cert_signed_by(&renewed, &service_spki).unwrap();
    let nodes = node
        .anonymous()
        .get(&format!("/gov/service/nodes?{V}"))
        .unwrap()
        .json();
    let listed = nodes["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["nodeId"] == node_id.as_str())
        .unwrap_or_else(|| panic!("{nodes}"));
    assert_eq!(
        coco_crypto::pem_to_der_certs(listed["certificate"].as_str().unwrap()).unwrap()[0],
        renewed,
        "{listed}"
    );

    // Limits: longer than the service allows, an unknown node, a malformed time.
    for (args, reason) in [
        (
            json!({"node_id": node_id, "valid_from": asn1_time(from), "validity_period_days": 366}),
            "Validity period 366 (days) is not allowed: service max allowed is 365 (days)",
        ),
        (
            json!({"node_id": "ab".repeat(32), "valid_from": asn1_time(from)}),
            "No such node",
        ),
        (
            json!({"node_id": node_id, "valid_from": "yesterday"}),
            "does not match any accepted time format",
        ),
    ] {
        let vote = propose_and_vote(
            &node,
            &json!({"actions": [{"name": "set_node_certificate_validity", "args": args}]}),
        );
        let why = failure_reason(&node, &vote);
        assert!(why.contains(reason), "{why}");
    }
    assert_eq!(served_certificate(&node, &service_pem), renewed);

    // set_all_nodes_certificate_validity with the service maximum (365 days by default).
    let vote = propose_and_vote(
        &node,
        &json!({"actions": [{"name": "set_all_nodes_certificate_validity", "args": {
            "valid_from": asn1_time(from)}}]}),
    );
    assert_eq!(vote["proposalState"], "Accepted", "{vote}");
    eventually("the 365-day node certificate", || {
        let c = served_certificate(&node, &service_pem);
        coco_crypto::cert_validity(&c).unwrap().not_after_unix_s == from + 365 * DAY - 1
    });

    // The service certificate, renewed for 10 days: same key and name, new validity; the node's
    // certificate chains to the new one.
    let vote = propose_and_vote(
        &node,
        &json!({"actions": [{"name": "set_service_certificate_validity", "args": {
            "valid_from": asn1_time(from), "validity_period_days": 10}}]}),
    );
    assert_eq!(vote["proposalState"], "Accepted", "{vote}");
    let info = node
        .anonymous()
        .get(&format!("/gov/service/info?{V}"))
        .unwrap()
        .json();
    let new_service_pem = info["certificate"]
        .as_str()
        .unwrap_or_else(|| panic!("{info}"))
        .to_owned();
    assert_ne!(new_service_pem, service_pem);
    let new_der = coco_crypto::pem_to_der_certs(&new_service_pem)
        .unwrap()
        .remove(0);
    assert_eq!(
        coco_crypto::cert_public_key_spki_der(&new_der).unwrap(),
        service_spki
    );
    assert_eq!(
        coco_crypto::cert_validity(&new_der).unwrap(),
        coco_crypto::Validity {
            not_before_unix_s: from,
            not_after_unix_s: from + 10 * DAY - 1
        }
    );
    served_certificate(&node, &new_service_pem);
    eventually(
        "/node/network to report the renewed service certificate",
        || {
            node.anonymous().get("/node/network").unwrap().json()["service_certificate"]
                == new_service_pem.as_str()
        },
    );
    let vote = propose_and_vote(
        &node,
        &json!({"actions": [{"name": "set_service_certificate_validity", "args": {
            "valid_from": asn1_time(from), "validity_period_days": 400}}]}),
    );
    assert!(failure_reason(&node, &vote).contains("not allowed"));
}
