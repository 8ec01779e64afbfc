use bytes::Bytes;
use coco_kv::Store;
use coco_node::proposals::{Constitution, ProposalState};

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
    c.apply(&mut tx, p, "id").unwrap();
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
        let err = c.apply(&mut tx, &p, "id").unwrap_err();
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
