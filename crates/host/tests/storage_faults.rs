//! Storage faults: a failed write or fsync in the host's storage layer must never let a
//! transaction whose bytes were not durably synced be reported Committed.
//!
//! The node runs with a `Disk` that fails the k-th write or fsync and records, per file, the
//! length that the last *successful* fsync covered. After the fault, the test checks that the
//! globally committed seqno's entry lies entirely within that synced length.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use coco_app_api::{Method, PeerCert, Request};
use coco_host::config::NodeConfigFile;
use coco_host::storage::{Disk, RealDisk};

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The k-th `write_all` (counting from the first after arming) fails with EIO.
    Write(u32),
    /// The k-th `sync_data` fails with EIO.
    Sync(u32),
}

#[derive(Default)]
struct State {
    armed: Option<Fault>,
    writes: u32,
    syncs: u32,
    fired: bool,
    /// Length of each file as of its last successful fsync.
    synced_len: HashMap<PathBuf, u64>,
    paths: HashMap<u64, PathBuf>,
}

struct FaultyDisk {
    real: RealDisk,
    state: Arc<Mutex<State>>,
}

fn eio() -> io::Error {
    io::Error::other("injected I/O error")
}

fn inode(f: &File) -> u64 {
    use std::os::unix::fs::MetadataExt;
    f.metadata().map(|m| m.ino()).unwrap_or(0)
}

impl Disk for FaultyDisk {
    fn create_new(&mut self, path: &Path) -> io::Result<File> {
        let f = self.real.create_new(path)?;
        self.state
            .lock()
            .unwrap()
            .paths
            .insert(inode(&f), path.to_owned());
        Ok(f)
    }
    fn write_all(&mut self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        if let Some(Fault::Write(k)) = s.armed {
            s.writes += 1;
            if s.writes >= k {
                s.fired = true;
                // A torn write: half the bytes reach the file, then the error.
                drop(s);
                let _ = self.real.write_all(file, &bytes[..bytes.len() / 2]);
                return Err(eio());
            }
        }
        drop(s);
        self.real.write_all(file, bytes)
    }
    fn write_at(&mut self, file: &mut File, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.real.write_at(file, offset, bytes)
    }
    fn sync_data(&mut self, file: &mut File) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        if let Some(Fault::Sync(k)) = s.armed {
            s.syncs += 1;
            if s.syncs >= k {
                s.fired = true;
                return Err(eio());
            }
        }
        drop(s);
        self.real.sync_data(file)?;
        let len = file.metadata()?.len();
        let mut s = self.state.lock().unwrap();
        if let Some(p) = s.paths.get(&inode(file)).cloned() {
            s.synced_len.insert(p, len);
        }
        Ok(())
    }
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        self.real.sync_dir(dir)
    }
    fn open_existing(&mut self, path: &Path) -> io::Result<File> {
        self.real.open_existing(path)
    }
    fn set_len(&mut self, file: &mut File, len: u64) -> io::Result<()> {
        self.real.set_len(file, len)
    }
    fn remove(&mut self, path: &Path) -> io::Result<()> {
        self.real.remove(path)
    }
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.real.rename(from, to)?;
        let mut s = self.state.lock().unwrap();
        for p in s.paths.values_mut() {
            if p == from {
                *p = to.to_owned();
            }
        }
        if let Some(len) = s.synced_len.remove(from) {
            s.synced_len.insert(to.to_owned(), len);
        }
        Ok(())
    }
}

fn write_identity(dir: &Path, name: &str) -> (PathBuf, Vec<u8>, coco_crypto::EcKeyPair) {
    let key = coco_crypto::EcKeyPair::generate(coco_crypto::Curve::P256).unwrap();
    let cert = coco_crypto::self_signed_cert(
        &key,
        name,
        coco_crypto::Validity {
            not_before_unix_s: 0,
            not_after_unix_s: 4_000_000_000,
        },
    )
    .unwrap();
    let path = dir.join(format!("{name}_cert.pem"));
    std::fs::write(&path, &cert).unwrap();
    let der = coco_crypto::pem_to_der_certs(&cert).unwrap().remove(0);
    (path, der, key)
}

fn request(method: Method, path: &str, body: &str, cert: &[u8]) -> Request {
    Request {
        method,
        path: path.split('?').next().unwrap().to_owned(),
        query: path
            .split_once('?')
            .map(|(_, q)| q.to_owned())
            .unwrap_or_default(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Bytes::from(body.to_owned()),
        peer_cert: Some(PeerCert {
            der: Bytes::copy_from_slice(cert),
            fingerprint_hex: coco_crypto::cert_der_fingerprint_hex(cert),
        }),
    }
}

/// Runs one node with `fault` armed after a healthy warm-up, and checks the invariant.
fn check(fault: Fault) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (member, member_der, member_key) = write_identity(d, "member0");
    let (user, user_der, _) = write_identity(d, "user0");
    let constitution = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../constitution/default.js");
    // A recovery member: the service opens only with as many as the recovery threshold (1).
    let member_enc = d.join("member0_enc_pubk.pem");
    std::fs::write(
        &member_enc,
        coco_crypto::RsaKeyPair::generate(2048)
            .unwrap()
            .public_key_pem(),
    )
    .unwrap();
    let config = serde_json::json!({
        "network": {"rpc_interfaces": {"main": {"bind_address": "127.0.0.1:0"}}},
        "command": {"type": "Start", "service_certificate_file": d.join("service_cert.pem"),
            "start": {"members": [{"certificate_file": member, "encryption_public_key_file": member_enc}], "constitution_files": [constitution]}},
        "ledger": {"directory": d.join("ledger"), "chunk_size": "4KB"},
        "ledger_signatures": {"tx_count": 5, "delay": "5ms"}
    });
    let cfg = NodeConfigFile::parse(&config.to_string(), Path::new("test.json")).unwrap();
    let state = Arc::new(Mutex::new(State::default()));
    let node = coco_host::start_with_disk(
        &cfg,
        coco_node::Plugins {
            app: coco_app_logging::registry(),
            constitution: Some(Box::new(coco_js::JsConstitutionLoader::default())),
        },
        FaultyDisk {
            real: RealDisk,
            state: state.clone(),
        },
    )
    .unwrap();
    let core = node.core_handle();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let call = |r: Request| {
        rt.block_on(core.submit(r, Default::default()).unwrap())
            .unwrap()
    };
    let commit_seqno = |call: &dyn Fn(Request) -> coco_app_api::Response| -> u64 {
        let r = call(request(Method::GET, "/node/commit", "", &user_der));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["transaction_id"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };

    open_by_governance(
        &call,
        &member_key,
        &member_der,
        &std::fs::read_to_string(&user).unwrap(),
        &std::fs::read_to_string(d.join("service_cert.pem")).unwrap(),
    );

    // Healthy warm-up: writes commit.
    for i in 0..30 {
        let r = call(request(
            Method::POST,
            "/app/log/private",
            &format!(r#"{{"id":{i},"msg":"warm {i}"}}"#),
            &user_der,
        ));
        assert_eq!(r.status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while commit_seqno(&call) < 30 {
        assert!(Instant::now() < deadline, "warm-up writes did not commit");
        std::thread::sleep(Duration::from_millis(5));
    }

    state.lock().unwrap().armed = Some(fault);
    let mut refused = false;
    for i in 0..200 {
        let r = call(request(
            Method::POST,
            "/app/log/private",
            &format!(r#"{{"id":{i},"msg":"after fault {i}"}}"#),
            &user_der,
        ));
        if r.status == 503 {
            refused = true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // Let any in-flight storage batches and signature ticks settle.
    std::thread::sleep(Duration::from_millis(200));
    let s = state.lock().unwrap();
    assert!(s.fired, "{fault:?} never fired");
    assert!(
        refused,
        "{fault:?}: the node kept accepting writes after its storage failed"
    );
    let committed = commit_seqno(&call);
    // Find the committed entry in the chunk files and check its bytes were covered by a
    // successful fsync.
    let mut found = false;
    for (path, synced) in &s.synced_len {
        let bytes = std::fs::read(path).unwrap();
        let Ok(scan) = coco_codec::chunk::scan_chunk(&bytes) else {
            continue;
        };
        if let Some(e) = scan.entries.iter().find(|e| e.seqno == committed) {
            found = true;
            assert!(
                e.range().end as u64 <= *synced,
                "{fault:?}: committed seqno {committed} ends at {} but only {synced} bytes of {} were synced",
                e.range().end,
                path.display()
            );
        }
    }
    assert!(
        found,
        "{fault:?}: committed seqno {committed} not found in any synced file"
    );
    drop(s);
    node.shutdown();
}

#[test]
fn failed_fsync_is_never_reported_committed() {
    for k in [1, 2, 5] {
        check(Fault::Sync(k));
    }
}

#[test]
fn failed_write_is_never_reported_committed() {
    for k in [1, 3, 40] {
        check(Fault::Write(k));
    }
}

/// A request signed by the member, as `coco member` signs them.
fn signed(
    key: &coco_crypto::EcKeyPair,
    member_der: &[u8],
    path: &str,
    msg_type: &str,
    payload: &str,
    proposal_id: Option<&str>,
) -> Request {
    let id = coco_crypto::cert_der_fingerprint_hex(member_der);
    let body = coco_node::gov::sign_request(
        key,
        &id,
        msg_type,
        1_700_000_000,
        proposal_id,
        payload.as_bytes(),
    );
    let (p, q) = path.split_once('?').unwrap();
    Request {
        method: Method::POST,
        path: p.to_owned(),
        query: q.to_owned(),
        headers: vec![("content-type".into(), "application/cose".into())],
        body: Bytes::from(body),
        peer_cert: None,
    }
}

/// member0 acks, proposes user0 and opening the service, and votes.
fn open_by_governance(
    call: &dyn Fn(Request) -> coco_app_api::Response,
    key: &coco_crypto::EcKeyPair,
    member_der: &[u8],
    user_pem: &str,
    service_pem: &str,
) {
    let id = coco_crypto::cert_der_fingerprint_hex(member_der);
    let v = "api-version=2024-07-01";
    let json =
        |r: &coco_app_api::Response| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap();
    let r = call(signed(
        key,
        member_der,
        &format!("/gov/members/state-digests/{id}:update?{v}"),
        "state_digest",
        "{}",
        None,
    ));
    let digest = json(&r)["stateDigest"].as_str().unwrap().to_owned();
    let r = call(signed(
        key,
        member_der,
        &format!("/gov/members/state-digests/{id}:ack?{v}"),
        "ack",
        &serde_json::json!({"stateDigest": digest}).to_string(),
        None,
    ));
    assert_eq!(r.status, 204);
    let proposal = serde_json::json!({"actions": [
        {"name": "set_user", "args": {"cert": user_pem}},
        {"name": "transition_service_to_open", "args": {"next_service_identity": service_pem}},
    ]});
    let r = call(signed(
        key,
        member_der,
        &format!("/gov/members/proposals:create?{v}"),
        "proposal",
        &proposal.to_string(),
        None,
    ));
    let pid = json(&r)["proposalId"].as_str().unwrap().to_owned();
    let ballot =
        serde_json::json!({"ballot": "export function vote(p, id) { return true; }"}).to_string();
    let r = call(signed(
        key,
        member_der,
        &format!("/gov/members/proposals/{pid}/ballots/{id}:submit?{v}"),
        "ballot",
        &ballot,
        Some(&pid),
    ));
    assert_eq!(
        json(&r)["proposalState"],
        "Accepted",
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}
