use bytes::Bytes;
use coco_kv::Store;
use coco_node::proposals::{Constitution, NodeHook, ProposalState};

use super::*;

const CONSTITUTION: &str = r#"
export function validate(input) {
  const p = JSON.parse(input);
  const ok = Array.isArray(p.actions) && p.actions.every(a => typeof a.name === "string");
  return { valid: ok, description: ok ? "ok" : "actions must be named" };
}
export function resolve(proposal, proposerId, votes, proposalId) {
  let members = 0;
  ccf.kv["public:ccf.gov.members.info"].forEach(() => { members += 1; });
  const yes = votes.filter(v => v.vote).length;
  if (yes * 2 > members) return "Accepted";
  if ((votes.length - yes) * 2 >= members) return "Rejected";
  return "Open";
}
export function apply(proposal, proposalId) {
  for (const a of JSON.parse(proposal).actions) {
    if (a.name === "set_thing") {
      ccf.kv["public:ccf.gov.things"].set(ccf.strToBuf(a.args.key), ccf.jsonCompatibleToBuf(a.args.value));
    } else if (a.name === "write_app") {
      ccf.kv["public:records"].set(ccf.strToBuf("k"), ccf.strToBuf("v"));
    } else if (a.name === "read_private") {
      ccf.kv["records"].get(ccf.strToBuf("k"));
    } else if (a.name === "spin") {
      while (true) {}
    } else if (a.name === "allocate") {
      let xs = []; while (true) { xs.push(new Array(100000).fill(1)); }
    } else if (a.name === "throw") {
      throw new Error("apply refused");
    }
  }
}
"#;

/// A service identity for `ccf.network`.
fn network() -> NetworkIdentity {
    let key = coco_crypto::EcKeyPair::generate(coco_crypto::Curve::P384).unwrap();
    let cert = coco_crypto::self_signed_ca_cert(
        &key,
        "CCF Service",
        coco_crypto::validity_for_days(1_700_000_000, 365).unwrap(),
    )
    .unwrap();
    NetworkIdentity {
        service_key: std::sync::Arc::new(key),
        service_cert_pem: cert,
        latest_ledger_secret_seqno: 1,
        now_unix_seconds: 1_800_000_000,
    }
}

fn store_with_members(n: usize) -> Store {
    let mut s = Store::new();
    let mut tx = s.begin();
    for i in 0..n {
        tx.put(
            "public:ccf.gov.members.info",
            Bytes::from(format!("m{i}")),
            Bytes::from_static(br#"{"status":"Active"}"#),
        );
    }
    tx.put(
        "records",
        Bytes::from_static(b"k"),
        Bytes::from_static(b"secret"),
    );
    s.commit(tx, 1).unwrap();
    s
}

fn quick() -> JsLimits {
    JsLimits {
        max_execution_time_ms: 300,
        max_heap_bytes: 32 * 1024 * 1024,
        ..JsLimits::default()
    }
}

#[test]
fn validate_resolve_apply_round_trip() {
    let c = JsConstitution::start(CONSTITUTION, quick()).unwrap();
    let store = store_with_members(3);
    let mut tx = store.begin();
    let p = r#"{"actions":[{"name":"set_thing","args":{"key":"a","value":{"x":1}}}]}"#;
    assert!(c.validate(&mut tx, p).unwrap().valid);
    assert!(!c.validate(&mut tx, r#"{"actions":[{}]}"#).unwrap().valid);
    let votes = |v: &[bool]| {
        v.iter()
            .enumerate()
            .map(|(i, b)| (format!("m{i}"), *b))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        c.resolve(&mut tx, p, "m0", &votes(&[true]), "id").unwrap(),
        ProposalState::Open
    );
    assert_eq!(
        c.resolve(&mut tx, p, "m0", &votes(&[true, true]), "id")
            .unwrap(),
        ProposalState::Accepted
    );
    assert_eq!(
        c.resolve(&mut tx, p, "m0", &votes(&[false, false]), "id")
            .unwrap(),
        ProposalState::Rejected
    );
    c.apply(&mut tx, p, "id", &network()).unwrap();
    assert_eq!(
        tx.get("public:ccf.gov.things", b"a"),
        Some(Bytes::from_static(br#"{"x":1}"#))
    );
    // Ballots.
    assert!(
        c.ballot(
            &mut tx,
            "export function vote(p, id) { return JSON.parse(p).actions.length === 1; }",
            p,
            "m0"
        )
        .unwrap()
    );
    assert!(
        !c.ballot(
            &mut tx,
            "export function vote(p, id) { return id === 'someone else'; }",
            p,
            "m0"
        )
        .unwrap()
    );
    assert!(
        c.ballot(
            &mut tx,
            "export function vote(p, id) { return 'yes'; }",
            p,
            "m0"
        )
        .is_err(),
        "non-boolean vote"
    );
    assert!(
        c.ballot(&mut tx, "this is not javascript", p, "m0")
            .is_err()
    );
}

#[test]
fn kv_access_rules_and_failures() {
    let c = JsConstitution::start(CONSTITUTION, quick()).unwrap();
    let store = store_with_members(1);
    // (action, expected error fragment)
    let cases = [
        ("write_app", "may only write governance maps"),
        ("read_private", "is private"),
        ("throw", "apply refused"),
        ("spin", "interrupted"),
        ("allocate", "memory"),
    ];
    for (action, want) in cases {
        let mut tx = store.begin();
        let p = format!(r#"{{"actions":[{{"name":"{action}"}}]}}"#);
        let err = c.apply(&mut tx, &p, "id", &network()).unwrap_err();
        assert!(err.contains(want), "{action}: {err}");
    }
    // Read-only contexts cannot write even governance maps.
    let ro = JsConstitution::start(
        r#"export function validate(i) { ccf.kv["public:ccf.gov.x"].set(ccf.strToBuf("a"), ccf.strToBuf("b")); return {valid: true}; }"#,
        quick(),
    )
    .unwrap();
    let mut tx = store.begin();
    assert!(
        ro.validate(&mut tx, "{}")
            .unwrap_err()
            .contains("read-only")
    );
    // The runtime survives all of the above.
    let mut tx = store.begin();
    assert!(c.validate(&mut tx, r#"{"actions":[]}"#).unwrap().valid);
}

#[test]
fn bad_constitutions_fail_to_load() {
    for (src, want) in [
        ("export function validate( {", "compile"),
        ("throw new Error('at load')", "at load"),
    ] {
        let err = JsConstitution::start(src, quick()).err().unwrap();
        assert!(err.contains(want), "{src}: {err}");
    }
    let c = JsConstitution::start("export const x = 1;", quick()).unwrap();
    let store = store_with_members(1);
    let mut tx = store.begin();
    assert!(
        c.validate(&mut tx, "{}")
            .unwrap_err()
            .contains("does not export validate")
    );
}

#[test]
fn helpers() {
    let c = JsConstitution::start(
        r#"
        export function validate(input) {
          const pem = JSON.parse(input).pem;
          const b = ccf.strToBuf("héllo");
          const d = ccf.crypto.digest("SHA-256", ccf.strToBuf("abc"));
          const hex = Array.from(new Uint8Array(d)).map(x => x.toString(16).padStart(2, "0")).join("");
          return { valid: true, description: JSON.stringify({
            round: ccf.bufToStr(b), json: ccf.bufToJsonCompatible(ccf.jsonCompatibleToBuf({a: [1]})),
            sha: hex, id: ccf.pemToId(pem), bundle: ccf.crypto.isValidX509CertBundle(pem), notBundle: ccf.crypto.isValidX509CertBundle("x") }) };
        }"#,
        quick(),
    )
    .unwrap();
    let key = coco_crypto::EcKeyPair::generate(coco_crypto::Curve::P256).unwrap();
    let pem = coco_crypto::self_signed_cert(
        &key,
        "m",
        coco_crypto::Validity {
            not_before_unix_s: 0,
            not_after_unix_s: 4_000_000_000,
        },
    )
    .unwrap();
    let id =
        coco_crypto::cert_der_fingerprint_hex(&coco_crypto::pem_to_der_certs(&pem).unwrap()[0]);
    let store = store_with_members(1);
    let mut tx = store.begin();
    let v = c
        .validate(&mut tx, &serde_json::json!({ "pem": pem }).to_string())
        .unwrap();
    let d: serde_json::Value = serde_json::from_str(&v.description).unwrap();
    assert_eq!(d["round"], "héllo");
    assert_eq!(d["json"], serde_json::json!({"a": [1]}));
    assert_eq!(
        d["sha"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(d["id"], id.as_str());
    assert_eq!(d["bundle"], true);
    assert_eq!(d["notBundle"], false);
}

/// coco's default constitution, action by action: valid arguments apply the expected KV change;
/// bad arguments fail validation.
#[test]
fn default_constitution_actions_table() {
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../constitution/default.js"),
    )
    .unwrap();
    let c = JsConstitution::start(&source, quick()).unwrap();
    let key = coco_crypto::EcKeyPair::generate(coco_crypto::Curve::P256).unwrap();
    let cert = coco_crypto::self_signed_cert(
        &key,
        "x",
        coco_crypto::Validity {
            not_before_unix_s: 0,
            not_after_unix_s: 4_000_000_000,
        },
    )
    .unwrap();
    let cert_id =
        coco_crypto::cert_der_fingerprint_hex(&coco_crypto::pem_to_der_certs(&cert).unwrap()[0]);
    let mut store = store_with_members(1);
    let mut tx = store.begin();
    tx.put(
        "public:ccf.gov.service.config",
        Bytes::from_static(&[0; 8]),
        Bytes::from_static(br#"{"recovery_threshold":1}"#),
    );
    tx.put(
        "public:ccf.gov.nodes.info",
        Bytes::from_static(b"n1"),
        Bytes::from_static(br#"{"status":"Pending"}"#),
    );
    store.commit(tx, 2).unwrap();
    // (action JSON, map written, key, expected value fragment or None for removal)
    let cases: Vec<(serde_json::Value, &str, String, Option<&str>)> = vec![
        (
            serde_json::json!({"name": "set_user", "args": {"cert": cert}}),
            "public:ccf.gov.users.certs",
            cert_id.clone(),
            Some("BEGIN CERTIFICATE"),
        ),
        (
            serde_json::json!({"name": "set_member", "args": {"cert": cert, "member_data": {"role": "x"}}}),
            "public:ccf.gov.members.info",
            cert_id.clone(),
            Some(r#""status":"Accepted""#),
        ),
        (
            serde_json::json!({"name": "set_recovery_threshold", "args": {"recovery_threshold": 2}}),
            "public:ccf.gov.service.config",
            "\0\0\0\0\0\0\0\0".into(),
            Some(r#""recovery_threshold":2"#),
        ),
        (
            serde_json::json!({"name": "set_service_configuration", "args": {"recent_cose_proposals_window_size": 7}}),
            "public:ccf.gov.service.config",
            "\0\0\0\0\0\0\0\0".into(),
            Some(r#""recent_cose_proposals_window_size":7"#),
        ),
        (
            serde_json::json!({"name": "transition_node_to_trusted", "args": {"node_id": "n1", "valid_from": "20240101000000Z"}}),
            "public:ccf.gov.nodes.info",
            "n1".into(),
            Some(r#""status":"Trusted","ledger_secret_seqno":1"#),
        ),
        (
            serde_json::json!({"name": "remove_node", "args": {"node_id": "n1"}}),
            "public:ccf.gov.nodes.info",
            "n1".into(),
            Some(r#""status":"Retired""#),
        ),
        (
            serde_json::json!({"name": "add_virtual_measurement", "args": {"measurement": "m"}}),
            "public:ccf.gov.nodes.virtual.measurements",
            "m".into(),
            Some("AllowedToJoin"),
        ),
        (
            serde_json::json!({"name": "add_snp_measurement", "args": {"measurement": "s"}}),
            "public:ccf.gov.nodes.snp.measurements",
            "s".into(),
            Some("AllowedToJoin"),
        ),
        (
            serde_json::json!({"name": "add_snp_host_data", "args": {"host_data": "h", "metadata": "meta"}}),
            "public:ccf.gov.nodes.snp.host_data",
            "h".into(),
            Some("meta"),
        ),
        (
            serde_json::json!({"name": "add_snp_uvm_endorsement", "args": {"did": "did:x509:a", "feed": "f", "svn": "1"}}),
            "public:ccf.gov.nodes.snp.uvm_endorsements",
            "did:x509:a".into(),
            Some(r#""f":{"svn":"1"}"#),
        ),
        (
            serde_json::json!({"name": "set_snp_minimum_tcb_version", "args": {"cpuid": "00a00f11", "tcb_version": {"boot_loader": 1}}}),
            "public:ccf.gov.nodes.snp.tcb_versions",
            "00a00f11".into(),
            Some("boot_loader"),
        ),
        (
            serde_json::json!({"name": "set_ca_cert_bundle", "args": {"name": "b", "cert_bundle": cert}}),
            "public:ccf.gov.tls.ca_cert_bundles",
            "b".into(),
            Some("BEGIN CERTIFICATE"),
        ),
        (
            serde_json::json!({"name": "set_js_runtime_options", "args": {"max_heap_bytes": 1024}}),
            "public:ccf.gov.js_runtime_options",
            "\0\0\0\0\0\0\0\0".into(),
            Some("max_heap_bytes"),
        ),
        (
            serde_json::json!({"name": "set_constitution", "args": {"constitution": "export function validate(i) {} export function resolve(p, q, v) {} export function apply(p, i) {}"}}),
            "public:ccf.gov.constitution",
            "\0\0\0\0\0\0\0\0".into(),
            Some("export function validate(i)"),
        ),
    ];
    for (action, map, key, want) in cases {
        let proposal = serde_json::json!({"actions": [action.clone()]}).to_string();
        let mut tx = store.begin();
        let v = c.validate(&mut tx, &proposal).unwrap();
        assert!(v.valid, "{action}: {}", v.description);
        c.apply(&mut tx, &proposal, "p", &network())
            .unwrap_or_else(|e| panic!("{action}: {e}"));
        let got = tx
            .get(map, key.as_bytes())
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        match want {
            Some(fragment) => assert!(
                got.as_deref().is_some_and(|g| g.contains(fragment)),
                "{action}: {map}[{key}] = {got:?}"
            ),
            None => assert!(got.is_none(), "{action}: {got:?}"),
        }
    }
    let bad = [
        serde_json::json!({"name": "set_user", "args": {"cert": "nope"}}),
        serde_json::json!({"name": "set_recovery_threshold", "args": {"recovery_threshold": 0}}),
        serde_json::json!({"name": "set_member", "args": {"cert": cert, "recovery_role": "King"}}),
        serde_json::json!({"name": "set_jwt_issuer", "args": {"issuer": "i", "jwks": {"keys": [{"kid": "k", "kty": "OKP"}]}}}),
        serde_json::json!({"name": "no_such_action", "args": {}}),
        serde_json::json!({"name": "transition_node_to_trusted", "args": {}}),
        serde_json::json!({"name": "transition_node_to_trusted", "args": {"node_id": "n1"}}),
        serde_json::json!({"name": "set_node_certificate_validity", "args": {"node_id": "n1", "valid_from": "x", "validity_period_days": 0}}),
        serde_json::json!({"name": "set_service_certificate_validity", "args": {"validity_period_days": 1}}),
    ];
    for action in bad {
        let proposal = serde_json::json!({"actions": [action.clone()]}).to_string();
        let mut tx = store.begin();
        assert!(
            !c.validate(&mut tx, &proposal).unwrap().valid,
            "{action} should not validate"
        );
    }
}

#[test]
fn node_hooks_are_returned_by_apply_only() {
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../constitution/default.js"),
    )
    .unwrap();
    let c = JsConstitution::start(&source, quick()).unwrap();
    let store = store_with_members(1);
    let mut tx = store.begin();
    let p = r#"{"actions":[{"name":"trigger_ledger_chunk"},{"name":"trigger_snapshot"}]}"#;
    assert!(c.validate(&mut tx, p).unwrap().valid);
    assert_eq!(
        c.apply(&mut tx, p, "id", &network()).unwrap(),
        vec![NodeHook::TriggerLedgerChunk, NodeHook::TriggerSnapshot]
    );
    // A later apply does not repeat earlier hooks.
    assert_eq!(
        c.apply(&mut tx, r#"{"actions":[]}"#, "id", &network())
            .unwrap(),
        vec![]
    );
    // Outside apply, ccf.node is refused.
    let ro = JsConstitution::start(
        "export function validate(i) { ccf.node.triggerSnapshot(); return {valid: true}; }",
        quick(),
    )
    .unwrap();
    assert!(
        ro.validate(&mut tx, "{}")
            .unwrap_err()
            .contains("only be called by apply")
    );
}

#[test]
fn runtime_options_set_the_limits() {
    let spin = "export function validate(i) { const end = Date.now() + 400; while (Date.now() < end) {} return {valid: true}; }";
    let loader = JsConstitutionLoader::default();
    let store = store_with_members(1);
    let mut tx = store.begin();
    // Default limit (5 s): the 400 ms loop completes.
    let c = loader.load(spin, None).unwrap();
    assert!(c.validate(&mut tx, "{}").unwrap().valid);
    // set_js_runtime_options lowers it: the loop is interrupted.
    let c = loader
        .load(spin, Some(r#"{"max_execution_time_ms": 50}"#))
        .unwrap();
    assert!(
        c.validate(&mut tx, "{}")
            .unwrap_err()
            .contains("interrupted")
    );
    assert!(loader.load(spin, Some("not json")).is_err());
}

/// Regression: a script that overruns inside native calls (where QuickJS cannot interrupt it)
/// used to answer late, and its answer and transaction were taken for the next call's.
#[test]
fn a_late_answer_never_reaches_a_later_call() {
    let source = r#"
export function validate(i) {
  if (i === "slow") { for (let k = 0; k < 150; k++) { "x".repeat(1 << 18).split("").join(","); } }
  return { valid: true, description: i };
}"#;
    let c = JsConstitution::start(
        source,
        JsLimits {
            max_execution_time_ms: 100,
            ..quick()
        },
    )
    .unwrap();
    let store = store_with_members(1);
    let mut tx = store.begin();
    tx.put(
        "public:ccf.gov.marker",
        Bytes::from_static(b"k"),
        Bytes::from_static(b"mine"),
    );
    let err = c.validate(&mut tx, "slow").unwrap_err();
    assert!(
        err.contains("did not finish") || err.contains("interrupted"),
        "{err}"
    );
    assert_eq!(
        tx.get("public:ccf.gov.marker", b"k"),
        Some(Bytes::from_static(b"mine")),
        "the caller's transaction is untouched"
    );
    for word in ["fast", "again"] {
        assert_eq!(
            c.validate(&mut tx, word).unwrap().description,
            word,
            "each call gets its own answer"
        );
    }
}

#[test]
fn async_entry_points_are_refused() {
    let c = JsConstitution::start("export async function apply(p, id) { throw new Error('late'); }\nexport async function validate(i) { return {valid: true}; }", quick()).unwrap();
    let store = store_with_members(1);
    let mut tx = store.begin();
    assert!(
        c.apply(&mut tx, "{}", "id", &network())
            .unwrap_err()
            .contains("synchronous")
    );
    assert!(
        c.validate(&mut tx, "{}")
            .unwrap_err()
            .contains("synchronous")
    );
}

/// `ccf.network` and the JWT key natives: available to `apply` only, with CCF's argument counts;
/// certificates come from the service identity passed with the call.
#[test]
fn network_and_jwt_natives() {
    const NATIVES: &str = r#"
export function validate(input) {
  const p = JSON.parse(input);
  if (p.probe === "network") ccf.network.getLatestLedgerSecretSeqno();
  if (p.probe === "jwt") ccf.removeJwtPublicSigningKeys("https://a.example");
  return { valid: true, description: "" };
}
export function resolve() { return "Accepted"; }
export function apply(input) {
  const p = JSON.parse(input);
  const put = (k, v) => ccf.kv["public:ccf.gov.out"].set(ccf.strToBuf(k), ccf.strToBuf(String(v)));
  if (p.seqno) put("seqno", ccf.network.getLatestLedgerSecretSeqno());
  if (p.csr) put("cert", ccf.network.generateEndorsedCertificate(p.csr, "20240301000000Z", 2));
  if (p.renew) put("service", ccf.network.generateNetworkCertificate("2024-03-01 00:00:00", 5));
  if (p.badArgs) ccf.network.generateNetworkCertificate("2024-03-01 00:00:00");
  if (p.jwks) ccf.setJwtPublicSigningKeys("https://a.example", {}, p.jwks);
  if (p.unjwt) ccf.removeJwtPublicSigningKeys("https://a.example");
}
"#;
    let c = JsConstitution::start(NATIVES, quick()).unwrap();
    let store = store_with_members(1);
    let net = network();
    let mut tx = store.begin();
    for probe in ["network", "jwt"] {
        let p = format!(r#"{{"probe":"{probe}"}}"#);
        assert!(c.validate(&mut tx, &p).is_err(), "{probe} outside apply");
    }
    let node = coco_crypto::EcKeyPair::generate(coco_crypto::Curve::P256).unwrap();
    let csr = coco_crypto::certificate_signing_request(&node, "CCF Node", &[]).unwrap();
    let p = serde_json::json!({"seqno": true, "csr": csr, "renew": true}).to_string();
    c.apply(&mut tx, &p, "id", &net).unwrap();
    let out = |tx: &mut Tx, k: &str| {
        String::from_utf8(tx.get("public:ccf.gov.out", k.as_bytes()).unwrap().to_vec()).unwrap()
    };
    assert_eq!(out(&mut tx, "seqno"), "1");
    let cert = coco_crypto::pem_to_der_certs(&out(&mut tx, "cert"))
        .unwrap()
        .remove(0);
    assert_eq!(
        coco_crypto::cert_public_key_spki_der(&cert).unwrap(),
        node.public_key_spki_der()
    );
    coco_crypto::verify_cert_signed_by(&cert, &net.service_key.public_key_spki_der()).unwrap();
    let from = 1_709_251_200; // 2024-03-01T00:00:00Z
    assert_eq!(
        coco_crypto::cert_validity(&cert).unwrap(),
        coco_crypto::Validity {
            not_before_unix_s: from,
            not_after_unix_s: from + 2 * 86_400 - 1
        }
    );
    let service = coco_crypto::pem_to_der_certs(&out(&mut tx, "service"))
        .unwrap()
        .remove(0);
    assert_eq!(
        coco_crypto::cert_validity(&service)
            .unwrap()
            .not_after_unix_s,
        from + 5 * 86_400 - 1
    );
    let err = c
        .apply(&mut tx, r#"{"badArgs":true}"#, "id", &net)
        .unwrap_err();
    assert!(err.contains("Passed 1 arguments but expected 2"), "{err}");
    let err = c
        .apply(&mut tx, r#"{"csr":"not a csr"}"#, "id", &net)
        .unwrap_err();
    assert!(err.contains("Failed to create endorsed cert"), "{err}");

    // JWT keys land in CCF's table form and go again.
    let point = node.public_key_sec1_uncompressed().to_vec();
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = serde_json::json!({"keys": [{"kty": "EC", "kid": "k1", "crv": "P-256",
        "x": b64(&point[1..33]), "y": b64(&point[33..])}]});
    let p = serde_json::json!({ "jwks": jwks }).to_string();
    c.apply(&mut tx, &p, "id", &net).unwrap();
    let keys = coco_node::jwt::keys_of(&mut tx, "k1").unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].public_key, node.public_key_spki_der());
    let err = c
        .apply(&mut tx, r#"{"jwks":{"keys":[]}}"#, "id", &net)
        .unwrap_err();
    assert!(err.contains("JWKS has no keys"), "{err}");
    c.apply(&mut tx, r#"{"unjwt":true}"#, "id", &net).unwrap();
    assert!(coco_node::jwt::keys_of(&mut tx, "k1").unwrap().is_empty());
}

/// `ccf.gov.validateConstitution` checks exports and their arities in a separate runtime;
/// `ccf.node.transitionServiceToOpen` opens an Opening service for its own certificate only.
#[test]
fn validate_constitution_and_open_service() {
    const C: &str = r#"
export function validate(input) {
  ccf.gov.validateConstitution(JSON.parse(input).source);
  return { valid: true, description: "" };
}
export function resolve(proposal, proposerId, votes) { return "Accepted"; }
export function apply(input, proposalId) {
  const p = JSON.parse(input);
  ccf.node.transitionServiceToOpen(undefined, ccf.strToBuf(p.next));
}
"#;
    let c = JsConstitution::start(C, quick()).unwrap();
    let store = store_with_members(1);
    let mut tx = store.begin();
    let check = |c: &JsConstitution, tx: &mut Tx, source: &str| {
        let p = serde_json::json!({ "source": source }).to_string();
        c.validate(tx, &p).map(|_| ())
    };
    check(&c, &mut tx, C).unwrap();
    check(
        &c,
        &mut tx,
        include_str!("../../../constitution/default.js"),
    )
    .unwrap();
    for (source, why) in [
        ("", "constitution is empty"),
        (
            "export function validate(a) {}",
            "does not export a function named apply",
        ),
        (
            "export function validate(a) {} export function resolve(a, b, c) {} export function apply(a) {}",
            "exports function apply with 1 arg, expected 2 args",
        ),
        (
            "export function validate(a, b) {} export function resolve(a, b, c, d) {} export function apply(a, b) {}",
            "exports function validate with 2 args",
        ),
        ("export function validate( {", "does not evaluate"),
        ("while (true) {}", "does not evaluate"),
        ("globalThis.ccf = undefined; ccf.kv;", "does not evaluate"),
    ] {
        let err = check(&c, &mut tx, source).unwrap_err();
        assert!(err.contains(why), "{source:?}: {err}");
    }
    // The calling constitution is untouched by what the proposed one did.
    check(&c, &mut tx, C).unwrap();

    let net = network();
    let info = |status: &str, cert: &str| {
        serde_json::json!({"cert": cert, "status": status, "current_service_create_txid": "2.1"})
            .to_string()
    };
    let mut w = store.begin();
    w.put(
        "public:ccf.gov.service.info",
        Bytes::from_static(&[0; 8]),
        Bytes::from(info("Opening", &net.service_cert_pem)),
    );
    w.put(
        "public:ccf.gov.service.config",
        Bytes::from_static(&[0; 8]),
        Bytes::from_static(br#"{"recovery_threshold":1}"#),
    );
    let open = |c: &JsConstitution, tx: &mut Tx, next: &str| {
        let p = serde_json::json!({ "next": next }).to_string();
        c.apply(tx, &p, "id", &network())
    };
    let err = open(&c, &mut w.clone(), &net.service_cert_pem).unwrap_err();
    assert!(
        err.contains("active recovery members (0) is less than recovery threshold (1)"),
        "{err}"
    );
    w.put(
        "public:ccf.gov.members.encryption_public_keys",
        Bytes::from_static(b"m0"),
        Bytes::from_static(b"RSA PEM"),
    );
    let err = open(&c, &mut w.clone(), "another certificate").unwrap_err();
    assert!(
        err.contains("next service identity does not match"),
        "{err}"
    );
    let mut opened = w.clone();
    open(&c, &mut opened, &net.service_cert_pem).unwrap();
    let status: serde_json::Value =
        serde_json::from_slice(&opened.get("public:ccf.gov.service.info", &[0; 8]).unwrap())
            .unwrap();
    assert_eq!(status["status"], "Open");
    // Opening writes the service key's endorsement of itself, from its creation on.
    let endorsement: coco_codec::tables::CoseEndorsement = coco_codec::tables::from_ccf_json(
        &opened
            .get(
                coco_codec::tables::PREVIOUS_SERVICE_IDENTITY_ENDORSEMENT,
                &[0; 8],
            )
            .unwrap(),
    )
    .unwrap();
    assert!(endorsement.is_self_endorsement());
    assert_eq!(endorsement.endorsement_epoch_begin.to_string(), "2.1");
    assert_eq!(endorsement.endorsement_epoch_end, None);
    let parsed = coco_codec::cose::parse_sign1(&endorsement.endorsement).unwrap();
    assert_eq!(
        parsed.payload.as_deref(),
        Some(&endorsement.endorsing_key[..])
    );
}
