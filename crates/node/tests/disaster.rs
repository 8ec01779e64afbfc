//! Disaster recovery, first phase, through the real core: a node recovering a dead service's
//! ledger replays its public state, records the recovery under a new service identity and opens
//! only to `WaitingForRecoveryShares` once members name both identities. Damaged ledgers are
//! refused with the entry at fault.

mod common;

use bytes::Bytes;
use coco_app_api::Method;
use coco_codec::tables;
use coco_node::{CoreConfig, GenesisConfig, Input, Node, Output};
use common::{fixture, identity, now, request};

/// Runs a service with public and private writes; returns its ledger (seqno 1..) up to and
/// including its last signature, and its service certificate.
fn dead_service_ledger() -> (Vec<Bytes>, String) {
    let mut f = fixture(CoreConfig {
        signature_tx_interval_count: 4,
        ..CoreConfig::default()
    });
    let mut ledger: Vec<(Bytes, bool)> = Vec::new();
    let collect = |out: &[Output], ledger: &mut Vec<(Bytes, bool)>| {
        for o in out {
            if let Output::Append {
                bytes,
                is_signature,
                ..
            } = o
            {
                ledger.push((bytes.clone(), *is_signature));
            }
        }
    };
    collect(&f.genesis_outputs, &mut ledger);
    let user = f.user.clone();
    for i in 0..10 {
        for (path, msg) in [("/app/log/public", "pub"), ("/app/log/private", "priv")] {
            let mut out = Vec::new();
            f.node.step(
                now(10 + i),
                Input::Request {
                    id: i,
                    request: request(
                        Method::POST,
                        path,
                        &format!(r#"{{"id":{i},"msg":"{msg}{i}"}}"#),
                        Some(&user),
                    ),
                    session: Default::default(),
                },
                &mut out,
            );
            collect(&out, &mut ledger);
        }
    }
    // A tail after the last signature is what a crash leaves: the recovery starts before it.
    let last_signature = ledger.iter().rposition(|(_, sig)| *sig).unwrap();
    ledger.truncate(last_signature + 1);
    (
        ledger.into_iter().map(|(b, _)| b).collect(),
        f.service_cert_pem,
    )
}

fn recover(ledger: &[Bytes]) -> Result<(Node, Vec<Output>), String> {
    let mut out = Vec::new();
    let node = Node::start_recovery(
        CoreConfig::default(),
        identity(),
        coco_node::disaster::Recovery {
            snapshot: None,
            ledger,
            genesis: &GenesisConfig::default(),
            ledger_secret: [5; 32],
            previous_service_identity: None,
        },
        coco_node::Plugins {
            app: coco_app_logging::registry(),
            constitution: None,
        },
        now(100_000),
        &mut out,
    )?;
    Ok((node, out))
}

fn singleton(node: &Node, map: &str) -> Bytes {
    node.kv_snapshot()
        .iter()
        .find(|(m, k, _, _)| *m == map && k[..] == tables::SINGLETON_KEY)
        .map(|(_, _, _, v)| v.clone())
        .unwrap_or_else(|| panic!("{map} is empty"))
}

#[test]
fn a_recovered_service_replays_public_state_under_a_new_identity() {
    let (ledger, old_cert) = dead_service_ledger();
    let last = ledger.len() as u64;
    let (node, out) = recover(&ledger).unwrap();
    // The recovery transaction, then a signature, after the old ledger, in a later view.
    let appended: Vec<(u64, u64, bool)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Append {
                txid, is_signature, ..
            } => Some((txid.view, txid.seqno, *is_signature)),
            _ => None,
        })
        .collect();
    assert_eq!(appended.len(), 2, "{appended:?}");
    assert_eq!((appended[0].1, appended[0].2), (last + 1, false));
    assert_eq!((appended[1].1, appended[1].2), (last + 2, true));
    assert_eq!(
        appended[0].0,
        coco_types::FIRST_VIEW + coco_types::RECOVERY_VIEW_CHANGE,
        "CCF's view after a recovery"
    );
    let info: tables::ServiceInfo =
        tables::from_ccf_json(&singleton(&node, tables::SERVICE_INFO)).unwrap();
    assert_eq!(info.status, tables::ServiceStatus::Recovering);
    assert_ne!(info.cert, old_cert);
    assert_eq!(info.cert, node.service_cert_pem());
    assert_eq!(info.recovery_count, Some(1));
    assert_eq!(info.previous_service_identity_version, Some(1));
    assert_eq!(info.current_service_create_txid.unwrap().seqno, last + 1);
    let previous: String =
        tables::from_ccf_json(&singleton(&node, tables::PREVIOUS_SERVICE_IDENTITY)).unwrap();
    assert_eq!(previous, old_cert);
    // Public records are back; private ones wait for the recovery shares.
    let snapshot = node.kv_snapshot();
    let count = |map: &str| snapshot.iter().filter(|(m, ..)| *m == map).count();
    assert_eq!(count("public:records"), 10);
    assert_eq!(count("records"), 0);
    // Every previous node is retired; this one is trusted.
    let statuses = node.node_statuses();
    assert_eq!(statuses[node.node_id()], tables::NodeStatus::Trusted);
    assert!(
        statuses
            .iter()
            .filter(|(id, _)| *id != node.node_id())
            .all(|(_, s)| *s == tables::NodeStatus::Retired)
    );
    assert_eq!(node.role(), coco_consensus::Role::Leader);
    assert_eq!(node.consensus().commit.seqno, last);

    // Opening needs both identities; it leads to WaitingForRecoveryShares.
    let mut tx = node.kv_snapshot_store().begin();
    let new_cert = node.service_cert_pem().to_owned();
    let other = identity();
    let network = coco_node::proposals::NetworkIdentity {
        service_key: other.service_key.clone(),
        service_cert_pem: other.service_cert_pem.clone(),
        latest_ledger_secret_seqno: last + 1,
        now_unix_seconds: 1_800_000_000,
    };
    let open = |tx: &mut coco_kv::Tx, previous: Option<&str>| {
        coco_node::gov::open_service(tx, previous, &new_cert, &network)
    };
    assert!(open(&mut tx, None).is_err());
    assert!(open(&mut tx, Some(&other.service_cert_pem)).is_err());
    open(&mut tx, Some(&old_cert)).unwrap();
    let info: tables::ServiceInfo = tables::from_ccf_json(
        &tx.get(tables::SERVICE_INFO, &tables::SINGLETON_KEY)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(info.status, tables::ServiceStatus::WaitingForRecoveryShares);
}

#[test]
fn damaged_ledgers_are_refused_with_the_entry_at_fault() {
    let (ledger, _) = dead_service_ledger();
    // Not ending at a signature.
    let e = recover(&ledger[..ledger.len() - 1]).err().unwrap();
    assert!(e.contains("last signature"), "{e}");
    // A flipped byte in an entry's public domain: the signed root no longer matches.
    let mut damaged = ledger.clone();
    let mut bytes = damaged[3].to_vec();
    let n = bytes.len();
    bytes[n - 20] ^= 1;
    damaged[3] = Bytes::from(bytes);
    let e = recover(&damaged).err().unwrap();
    assert!(e.contains("ledger entry"), "{e}");
    // An entry out of place.
    let mut swapped = ledger.clone();
    swapped.swap(2, 3);
    let e = recover(&swapped).err().unwrap();
    assert!(e.contains("ledger entry 3"), "{e}");
}
