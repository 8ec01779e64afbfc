//! Replication through the real core, in one process: a primary and backups exchange consensus
//! messages directly (no sockets); persistence completes at once. Backups apply the primary's
//! exact entries, and a primary cut off from its backups loses its unsigned suffix to the new
//! primary's log.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use coco_app_api::{Method, Response};
use coco_crypto::{Curve, EcKeyPair, RsaKeyPair};
use coco_node::join::{JoinRequest, JoinResponse, Joiner, NodeInfoNetwork};
use coco_node::snapshot::SnapshotAction;
use coco_node::{CoreConfig, GenesisConfig, Input, Node, NodeIdentity, Output, Session};
use common::{VALIDITY, identity, now, open_genesis, peer, request};

struct Cluster {
    nodes: BTreeMap<String, Node>,
    ledgers: BTreeMap<String, Vec<Bytes>>,
    messages: Vec<(String, String, coco_node::PeerMessage)>,
    persisted: BTreeMap<String, u64>,
    /// Nodes whose messages (both ways) are dropped.
    cut_off: BTreeSet<String>,
    /// Nodes whose storage stopped reporting appends durable (a stalled disk).
    stalled: BTreeSet<String>,
    /// The configuration nodes start with.
    config: CoreConfig,
    now_ms: u64,
    responses: BTreeMap<u64, Response>,
    next_request: u64,
    user: coco_app_api::PeerCert,
    /// Snapshots the simulated host serialised (node, seqno) → entry, then wrote with their
    /// evidence seqno, then committed with the receipt appended: node → files by name.
    serialised: BTreeMap<(String, u64), Vec<u8>>,
    snapshot_files: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Inputs the host delivers after the step that caused them (snapshot digests).
    deferred: Vec<(String, Input)>,
}

fn plugins() -> coco_node::Plugins {
    coco_node::Plugins {
        app: coco_app_logging::registry(),
        constitution: None,
    }
}

fn n2n_interface(address: &str) -> coco_codec::tables::NetInterface {
    coco_codec::tables::NetInterface {
        bind_address: address.to_owned(),
        ..Default::default()
    }
}

fn network(address: &str) -> NodeInfoNetwork {
    NodeInfoNetwork {
        node_to_node_interface: n2n_interface(address),
        rpc_interfaces: Default::default(),
    }
}

/// Fresh keys for a joining node running the same executable as the genesis node (engine tests
/// use all-zero host data).
fn new_joiner() -> Joiner {
    Joiner::new(
        EcKeyPair::generate(Curve::P384).unwrap(),
        "CCF Node",
        &[],
        VALIDITY,
        RsaKeyPair::generate(2048).unwrap(),
        [0; 32],
    )
    .unwrap()
}

/// Certificates (PEM) of a fresh member and user.
fn member_and_user() -> (String, String) {
    let cert = |name: &str| {
        let key = EcKeyPair::generate(Curve::P256).unwrap();
        coco_crypto::self_signed_cert(&key, name, VALIDITY).unwrap()
    };
    (cert("member0"), cert("user0"))
}

fn config() -> CoreConfig {
    CoreConfig {
        signature_tx_interval_count: 5,
        signature_interval_ms: 20,
        snapshot_tx_interval_count: 30,
        consensus: coco_consensus::Config {
            message_timeout_ms: 10,
            election_timeout_ms: 100,
            append_entries_batch_max: 8,
        },
        ..CoreConfig::default()
    }
}

impl Cluster {
    /// A primary with `backups` joined backups, all trusted from genesis; the service is open
    /// and has one user.
    fn new(backups: usize) -> Cluster {
        Cluster::with_spares(backups, 0).0
    }

    /// As [`Cluster::new`], plus `spares` nodes trusted from genesis that are not running:
    /// their identities are returned, to start later (from a snapshot, say).
    fn with_spares(backups: usize, spares: usize) -> (Cluster, Vec<NodeIdentity>) {
        Cluster::configured(backups, spares, config())
    }

    /// As [`Cluster::with_spares`], every node started with `cfg` (seeds aside).
    fn configured(backups: usize, spares: usize, cfg: CoreConfig) -> (Cluster, Vec<NodeIdentity>) {
        let primary = identity();
        let mut others: Vec<NodeIdentity> = (0..backups + spares)
            .map(|_| {
                NodeIdentity::new(
                    EcKeyPair::generate(Curve::P384).unwrap(),
                    "CCF Node",
                    &[],
                    VALIDITY,
                    Arc::clone(&primary.service_key),
                    primary.service_cert_pem.clone(),
                    RsaKeyPair::generate(2048).unwrap(),
                )
                .unwrap()
            })
            .collect();
        let (member_pem, user_pem) = member_and_user();
        let genesis = GenesisConfig {
            other_trusted_nodes: others
                .iter()
                .map(|b| {
                    let info = b.trusted_node_info(Default::default(), Default::default());
                    (b.node_id.clone(), info, b.node_cert_pem.clone())
                })
                .collect(),
            ..open_genesis(&member_pem, &user_pem)
        };
        let mut cluster = Cluster::empty(&user_pem);
        cluster.config = cfg;
        let secret = [9; 32];
        let spare_identities = others.split_off(backups);
        for (k, b) in others.into_iter().enumerate() {
            let id = b.node_id.clone();
            let cfg = CoreConfig {
                seed: k as u64 + 1,
                ..cluster.config.clone()
            };
            cluster
                .nodes
                .insert(id.clone(), Node::join(cfg, b, secret, plugins(), now(0)));
            cluster.ledgers.insert(id, Vec::new());
        }
        cluster.start(primary, &genesis, secret);
        (cluster, spare_identities)
    }

    /// Runs genesis on `primary` and routes its outputs.
    fn start(&mut self, primary: NodeIdentity, genesis: &GenesisConfig, secret: [u8; 32]) {
        let mut out = Vec::new();
        let pid = primary.node_id.clone();
        let node = Node::start_genesis(
            self.config.clone(),
            primary,
            genesis,
            secret,
            plugins(),
            now(0),
            &mut out,
        );
        self.nodes.insert(pid.clone(), node);
        self.ledgers.insert(pid.clone(), Vec::new());
        self.route(&pid, out);
    }

    /// A service still Opening, with only its genesis node: nodes join it by `/node/join`.
    fn opening() -> Cluster {
        let primary = identity();
        let (member_pem, user_pem) = member_and_user();
        let genesis = GenesisConfig {
            open_service_without_governance: false,
            node_to_node_interface: n2n_interface("127.0.0.1:9000"),
            ..open_genesis(&member_pem, &user_pem)
        };
        let mut cluster = Cluster::empty(&user_pem);
        cluster.start(primary, &genesis, [9; 32]);
        cluster
    }

    fn empty(user_pem: &str) -> Cluster {
        Cluster {
            nodes: BTreeMap::new(),
            ledgers: BTreeMap::new(),
            messages: Vec::new(),
            persisted: BTreeMap::new(),
            cut_off: BTreeSet::new(),
            stalled: BTreeSet::new(),
            config: config(),
            now_ms: 0,
            responses: BTreeMap::new(),
            next_request: 0,
            user: peer(user_pem),
            serialised: BTreeMap::new(),
            snapshot_files: BTreeMap::new(),
            deferred: Vec::new(),
        }
    }

    /// Sends `POST /node/join` for `joiner` to `via` with `body`, as the joiner's TLS client.
    fn join_call(&mut self, via: &str, joiner: &Joiner, body: &JoinRequest) -> Response {
        let req = request(
            Method::POST,
            "/node/join",
            &serde_json::to_string(body).unwrap(),
            Some(&peer(&joiner.self_signed_cert_pem)),
        );
        self.step_request(via, req)
    }

    /// A new node joins through `via`; if the primary trusts it at once, it starts as a backup.
    /// Returns its id and the join response.
    fn join(&mut self, via: &str, address: &str) -> (String, JoinResponse) {
        let joiner = new_joiner();
        let body = joiner.request(network(address), serde_json::Value::Null);
        let r = self.join_call(via, &joiner, &body);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let response: JoinResponse = serde_json::from_slice(&r.body).unwrap();
        let id = joiner.node_id();
        assert_eq!(response.node_id, id);
        if let Some(info) = &response.network_info {
            let secret = info.latest_ledger_secret().unwrap();
            let identity = joiner.into_identity(info).unwrap();
            let cfg = CoreConfig {
                seed: self.nodes.len() as u64,
                ..self.config.clone()
            };
            self.nodes.insert(
                id.clone(),
                Node::join(cfg, identity, secret, plugins(), now(self.now_ms)),
            );
            self.ledgers.insert(id.clone(), Vec::new());
        }
        (id, response)
    }

    fn route(&mut self, from: &str, out: Vec<Output>) {
        for o in out {
            match o {
                Output::Respond { id, response } => {
                    self.responses.insert(id, response);
                }
                Output::Append { txid, bytes, .. } => {
                    let ledger = self.ledgers.get_mut(from).unwrap();
                    assert_eq!(
                        ledger.len() as u64 + 1,
                        txid.seqno,
                        "{from} appends in order"
                    );
                    ledger.push(bytes);
                    self.persisted.insert(from.to_owned(), txid.seqno);
                }
                Output::Truncate { seqno } => {
                    self.ledgers.get_mut(from).unwrap().truncate(seqno as usize);
                    let p = self.persisted.entry(from.to_owned()).or_default();
                    *p = (*p).min(seqno);
                }
                Output::Peer { to, message, .. } => {
                    self.messages.push((from.to_owned(), to, message));
                }
                Output::FetchEntries {
                    peer,
                    from_idx,
                    to_idx,
                } => {
                    let entries =
                        self.ledgers[from][from_idx as usize - 1..to_idx as usize].to_vec();
                    let mut out = Vec::new();
                    let now = now(self.now_ms);
                    self.nodes.get_mut(from).unwrap().step(
                        now,
                        Input::Fetched {
                            peer,
                            from_idx,
                            entries,
                        },
                        &mut out,
                    );
                    self.route(from, out);
                }
                Output::ReadLedger { from_idx, to_idx } => {
                    let entries =
                        self.ledgers[from][from_idx as usize - 1..to_idx as usize].to_vec();
                    let mut out = Vec::new();
                    let now = now(self.now_ms);
                    self.nodes.get_mut(from).unwrap().step(
                        now,
                        Input::LedgerRead { from_idx, entries },
                        &mut out,
                    );
                    self.route(from, out);
                }
                Output::Snapshot(SnapshotAction::Serialise(job)) => {
                    let entry = job.serialise();
                    let digest = coco_crypto::sha256(&entry);
                    self.serialised.insert((from.to_owned(), job.seqno), entry);
                    self.deferred.push((
                        from.to_owned(),
                        Input::SnapshotSerialised {
                            seqno: job.seqno,
                            digest,
                        },
                    ));
                }
                Output::Snapshot(SnapshotAction::Write {
                    seqno,
                    evidence_seqno,
                }) => {
                    let entry = self.serialised.remove(&(from.to_owned(), seqno)).unwrap();
                    self.snapshot_files
                        .entry(from.to_owned())
                        .or_default()
                        .insert(format!("snapshot_{seqno}_{evidence_seqno}"), entry);
                }
                Output::Snapshot(SnapshotAction::Commit {
                    seqno,
                    evidence_seqno,
                    receipt,
                }) => {
                    let files = self.snapshot_files.get_mut(from).unwrap();
                    let mut file = files
                        .remove(&format!("snapshot_{seqno}_{evidence_seqno}"))
                        .unwrap();
                    file.extend_from_slice(&receipt);
                    files.insert(format!("snapshot_{seqno}_{evidence_seqno}.committed"), file);
                }
                Output::GlobalCommit { .. }
                | Output::NodeCertificate { .. }
                | Output::ServiceCertificate { .. }
                | Output::RecoveryComplete => {}
            }
        }
    }

    /// Runs `ms` milliseconds: messages are delivered and entries persisted every millisecond.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now_ms += 1;
            let now = now(self.now_ms);
            for (node, input) in std::mem::take(&mut self.deferred) {
                let mut out = Vec::new();
                self.nodes
                    .get_mut(&node)
                    .unwrap()
                    .step(now, input, &mut out);
                self.route(&node, out);
            }
            for (from, to, message) in std::mem::take(&mut self.messages) {
                if self.cut_off.contains(&from)
                    || self.cut_off.contains(&to)
                    || !self.nodes.contains_key(&to)
                {
                    // Cut off, or a trusted node that is not running.
                    continue;
                }
                let mut out = Vec::new();
                self.nodes
                    .get_mut(&to)
                    .unwrap()
                    .step(now, Input::Peer { from, message }, &mut out);
                self.route(&to, out);
            }
            let ids: Vec<String> = self.nodes.keys().cloned().collect();
            for id in ids {
                let mut out = Vec::new();
                if let Some(&seqno) = self.persisted.get(&id)
                    && !self.stalled.contains(&id)
                {
                    self.nodes.get_mut(&id).unwrap().step(
                        now,
                        Input::Persisted { seqno },
                        &mut out,
                    );
                }
                self.nodes
                    .get_mut(&id)
                    .unwrap()
                    .step(now, Input::Tick, &mut out);
                self.route(&id, out);
            }
        }
    }

    fn primary(&self) -> String {
        self.nodes
            .iter()
            .filter(|(id, n)| {
                !self.cut_off.contains(*id)
                    && n.consensus().primary_id.as_deref() == Some(id.as_str())
            })
            .max_by_key(|(_, n)| n.consensus().view)
            .map(|(id, _)| id.clone())
            .expect("a primary")
    }

    fn call(&mut self, node: &str, method: Method, path: &str, body: &str) -> Response {
        let req = request(method, path, body, Some(&self.user.clone()));
        self.step_request(node, req)
    }

    fn step_request(&mut self, node: &str, req: coco_app_api::Request) -> Response {
        self.step_request_in(node, req, Session::default())
    }

    fn step_request_in(
        &mut self,
        node: &str,
        req: coco_app_api::Request,
        session: Session,
    ) -> Response {
        let id = self.send(node, req, session);
        // A write on a backup is forwarded: run until the primary's answer comes back.
        for _ in 0..5_000 {
            if let Some(r) = self.responses.remove(&id) {
                return r;
            }
            self.run(1);
        }
        panic!("no response to request {id}")
    }

    /// Steps `req` on `node` and returns its request id; the response, when it comes, lands in
    /// `responses`.
    fn send(&mut self, node: &str, req: coco_app_api::Request, session: Session) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        let mut out = Vec::new();
        let now = now(self.now_ms);
        self.nodes.get_mut(node).unwrap().step(
            now,
            Input::Request {
                id,
                request: req,
                session,
            },
            &mut out,
        );
        self.route(node, out);
        id
    }

    fn write(&mut self, node: &str, id: u64, msg: &str) -> Response {
        let body = serde_json::json!({"id": id, "msg": msg}).to_string();
        self.call(node, Method::POST, "/app/log/private", &body)
    }

    fn read(&mut self, node: &str, id: u64) -> Option<String> {
        let r = self.call(node, Method::GET, &format!("/app/log/private?id={id}"), "");
        r.status.is_success().then(|| {
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["msg"]
                .as_str()
                .unwrap()
                .to_owned()
        })
    }
}

#[test]
fn backups_apply_the_primarys_exact_entries() {
    let mut c = Cluster::new(2);
    let p = c.primary();
    c.run(50);
    for i in 0..12 {
        assert_eq!(c.write(&p, i, &format!("m{i}")).status, 200);
    }
    c.run(100);
    let commit = c.nodes[&p].consensus().commit;
    assert!(commit.seqno >= 14, "{commit:?}");
    for (id, node) in &c.nodes {
        assert_eq!(node.consensus().commit, commit, "{id} has the same commit");
        assert_eq!(
            c.ledgers[id][..commit.seqno as usize],
            c.ledgers[&p][..commit.seqno as usize],
            "{id}'s ledger is byte-identical"
        );
    }
    let backups: Vec<String> = c.nodes.keys().filter(|id| **id != p).cloned().collect();
    for (k, b) in backups.iter().enumerate() {
        // Backups serve reads from the replicated (decrypted) private map...
        assert_eq!(c.read(b, 7).as_deref(), Some("m7"));
        // ...and forward writes to the primary, answering with its response.
        let r = c.write(b, 90 + k as u64, "forwarded");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let txid = r
            .headers
            .iter()
            .find(|(h, _)| h == coco_app_api::TX_ID_HEADER)
            .map(|(_, v)| v.clone())
            .expect("the primary's transaction id");
        assert!(txid.starts_with("2."), "{txid}");
    }
    c.run(100);
    for id in c.nodes.keys().cloned().collect::<Vec<_>>() {
        assert_eq!(c.read(&id, 90).as_deref(), Some("forwarded"), "{id}");
        assert_eq!(c.read(&id, 91).as_deref(), Some("forwarded"), "{id}");
    }
}

/// A transaction's status on `node` from `/node/tx`, `/app/tx` and `/gov/service/transactions`.
fn tx_statuses(c: &mut Cluster, node: &str, txid: &str) -> [String; 3] {
    let mut status = |path: String, field: &str| {
        let r = c.call(node, Method::GET, &path, "");
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()[field]
            .as_str()
            .unwrap()
            .to_owned()
    };
    [
        status(format!("/node/tx?transaction_id={txid}"), "status"),
        status(format!("/app/tx?transaction_id={txid}"), "status"),
        status(
            format!("/gov/service/transactions/{txid}?api-version=2024-07-01"),
            "status",
        ),
    ]
}

#[test]
fn a_new_primary_discards_the_old_primarys_unsigned_suffix() {
    let mut c = Cluster::new(2);
    let old = c.primary();
    c.run(50);
    for i in 0..5 {
        c.write(&old, i, "kept");
    }
    c.run(50);
    let committed = c.nodes[&old].consensus().commit;
    // Cut the primary off; it executes two writes that never replicate (no signature yet).
    c.cut_off.insert(old.clone());
    let lost = c.write(&old, 100, "lost");
    assert_eq!(lost.status, 200);
    let lost_txid = lost.header("x-ms-ccf-transaction-id").unwrap().to_owned();
    assert_eq!(c.write(&old, 101, "lost").status, 200);
    // Executed but not committed: Pending on the old primary.
    assert_eq!(tx_statuses(&mut c, &old, &lost_txid), ["Pending"; 3]);
    c.run(400);
    let new = c.primary();
    assert_ne!(new, old, "the others elected a new primary");
    assert!(c.nodes[&new].consensus().view > committed.view);
    assert_eq!(c.write(&new, 200, "after").status, 200);
    // Heal: the old primary follows, rolls back its two writes and takes the new log. (Its
    // higher term from failed elections while cut off may force one more election, as in CCF
    // without pre-vote; whoever leads then, it is not the old primary, whose log is behind.)
    c.cut_off.clear();
    c.run(400);
    let new = c.primary();
    assert_ne!(new, old);
    let commit = c.nodes[&new].consensus().commit;
    assert_eq!(
        c.nodes[&old].consensus().primary_id.as_deref(),
        Some(new.as_str())
    );
    assert_eq!(c.nodes[&old].consensus().commit, commit);
    assert_eq!(
        c.ledgers[&old][..commit.seqno as usize],
        c.ledgers[&new][..commit.seqno as usize]
    );
    assert_eq!(c.read(&old, 100), None, "the unreplicated write is gone");
    // CCF's status table after the election: the rolled-back transaction is Invalid on every
    // node and every endpoint, the kept ones Committed.
    let after = c.write(&new, 201, "after");
    let after_txid = after.header("x-ms-ccf-transaction-id").unwrap().to_owned();
    c.run(100);
    let ids: Vec<String> = c.nodes.keys().cloned().collect();
    for id in &ids {
        assert_eq!(tx_statuses(&mut c, id, &lost_txid), ["Invalid"; 3], "{id}");
        assert_eq!(
            tx_statuses(&mut c, id, &after_txid),
            ["Committed"; 3],
            "{id}"
        );
    }
    assert_eq!(c.read(&old, 3).as_deref(), Some("kept"));
    assert_eq!(c.read(&old, 200).as_deref(), Some("after"));
}

#[test]
fn nodes_join_an_opening_service_and_take_over_when_the_primary_fails() {
    let mut c = Cluster::opening();
    let p = c.primary();
    let (a, ra) = c.join(&p, "127.0.0.1:9001");
    let (b, rb) = c.join(&p, "127.0.0.1:9002");
    for r in [&ra, &rb] {
        assert_eq!(r.node_status, coco_codec::tables::NodeStatus::Trusted);
        let info = r
            .network_info
            .as_ref()
            .expect("network info for a trusted node");
        assert_eq!(
            info.service_status,
            coco_codec::tables::ServiceStatus::Opening
        );
    }
    c.run(200);
    for id in [&a, &b] {
        let node = &c.nodes[id];
        assert_eq!(
            node.consensus().commit,
            c.nodes[&p].consensus().commit,
            "{id} caught up"
        );
        let commit = node.consensus().commit.seqno as usize;
        assert!(commit >= 5, "{commit}");
        assert_eq!(c.ledgers[id][..commit], c.ledgers[&p][..commit]);
    }
    let r = c.call(&a, Method::GET, "/node/network/nodes", "");
    let nodes: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let trusted = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == "Trusted")
        .count();
    assert_eq!(trusted, 3, "{nodes}");
    // The genesis node fails: the two joined nodes form a majority and elect one of them, which
    // signs (and so commits) in its new view.
    c.cut_off.insert(p.clone());
    c.run(600);
    let new = c.primary();
    assert!(new == a || new == b, "{new}");
    let commit = c.nodes[&new].consensus().commit;
    assert!(commit.view > 2, "{commit:?}");
    let other = if new == a { &b } else { &a };
    assert_eq!(c.nodes[other].consensus().commit, commit);
}

#[test]
fn a_node_joining_an_open_service_stays_pending() {
    let mut c = Cluster::new(0);
    let p = c.primary();
    let (id, r) = c.join(&p, "127.0.0.1:9003");
    assert_eq!(r.node_status, coco_codec::tables::NodeStatus::Pending);
    assert!(r.network_info.is_none(), "no secrets for a pending node");
    assert!(!c.nodes.contains_key(&id));
    c.run(50);
    let r = c.call(&p, Method::GET, &format!("/node/network/nodes/{id}"), "");
    let node: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(node["status"], "Pending");
}

/// Every way a join request can be wrong, and the error CCF gives for it.
#[test]
fn join_requests_are_checked() {
    let mut c = Cluster::opening();
    let p = c.primary();
    let joiner = new_joiner();
    let good = joiner.request(network("127.0.0.1:9010"), serde_json::Value::Null);
    let other = new_joiner();
    let quote_of = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut body = good.clone();
        let mut q: serde_json::Value = serde_json::from_slice(&body.quote_info.quote).unwrap();
        f(&mut q);
        body.quote_info.quote = serde_json::to_vec(&q).unwrap();
        body
    };
    let other_key_hash = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(coco_crypto::sha256(&other.node_key.public_key_spki_der()))
    };
    let cases: Vec<(&str, JoinRequest, u16, &str, &str)> = vec![
        (
            "unknown measurement",
            quote_of(&|q| q["measurement"] = "something else".into()),
            401,
            "InvalidQuote",
            "known enclave measurement",
        ),
        (
            "untrusted host data",
            quote_of(&|q| q["host_data"] = hex::encode([1u8; 32]).into()),
            401,
            "InvalidQuote",
            "host data",
        ),
        (
            "quote binds another key",
            quote_of(&|q| q["report_data"] = other_key_hash.clone().into()),
            401,
            "InvalidQuote",
            "public key hash",
        ),
        (
            "quote is not JSON",
            JoinRequest {
                quote_info: coco_codec::tables::QuoteInfo {
                    quote: b"\x00garbage".to_vec(),
                    ..good.quote_info.clone()
                },
                ..good.clone()
            },
            401,
            "InvalidQuote",
            "malformed virtual quote",
        ),
        (
            "CSR for another key",
            JoinRequest {
                certificate_signing_request: Some(other.csr_pem.clone()),
                ..good.clone()
            },
            400,
            "CSRPublicKeyInvalid",
            "does not match",
        ),
        (
            "node-to-node address taken by the primary",
            JoinRequest {
                node_info_network: network("127.0.0.1:9000"),
                ..good.clone()
            },
            400,
            "NodeAlreadyExists",
            "127.0.0.1:9000",
        ),
        (
            "encryption key is not RSA",
            JoinRequest {
                public_encryption_key: "not a key".into(),
                ..good.clone()
            },
            400,
            "InvalidInput",
            "public_encryption_key",
        ),
    ];
    for (name, body, status, code, message) in cases {
        let r = c.join_call(&p, &joiner, &body);
        let text = String::from_utf8_lossy(&r.body).into_owned();
        assert_eq!(r.status, status, "{name}: {text}");
        assert!(
            text.contains(code) && text.contains(message),
            "{name}: {text}"
        );
    }
    // Without a TLS client certificate, or with a body that is not a join request.
    let r = c.step_request(&p, request(Method::POST, "/node/join", "{}", None));
    assert_eq!(r.status, 401);
    let r = c.step_request(
        &p,
        request(
            Method::POST,
            "/node/join",
            "{\"quote_info\": 1}",
            Some(&peer(&joiner.self_signed_cert_pem)),
        ),
    );
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    // None of the refused requests recorded the node.
    let r = c.call(
        &p,
        Method::GET,
        &format!("/node/network/nodes/{}", joiner.node_id()),
        "",
    );
    assert_eq!(r.status, 404);
    // The good request still works.
    let r = c.join_call(&p, &joiner, &good);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

/// Client session `id` on the primary RPC interface.
fn session(id: u64) -> Session {
    Session {
        id,
        interface: "primary_rpc_interface".into(),
    }
}

fn write_in_session(c: &mut Cluster, node: &str, session_id: u64, id: u64) -> Response {
    let body = serde_json::json!({"id": id, "msg": "s"}).to_string();
    let req = request(
        Method::POST,
        "/app/log/private",
        &body,
        Some(&c.user.clone()),
    );
    c.step_request_in(node, req, session(session_id))
}

#[test]
fn a_forwarding_session_loses_consistency_when_the_primary_changes() {
    let mut c = Cluster::new(2);
    let p = c.primary();
    c.run(50);
    let backups: Vec<String> = c.nodes.keys().filter(|id| **id != p).cloned().collect();
    for (k, b) in backups.iter().enumerate() {
        let r = write_in_session(&mut c, b, 10 + k as u64, k as u64);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    c.cut_off.insert(p.clone());
    c.run(400);
    let new = c.primary();
    let still_backup = backups.iter().find(|b| **b != new).unwrap().clone();
    let session = 10 + backups.iter().position(|b| *b == still_backup).unwrap() as u64;
    let r = write_in_session(&mut c, &still_backup, session, 50);
    assert_eq!(r.status, 500, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("SessionConsistencyLost"));
    assert!(r.headers.contains(&("connection".into(), "close".into())));
    // A new session forwards to the new primary.
    let r = write_in_session(&mut c, &still_backup, 99, 51);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // Once the session closes its pinned view is forgotten.
    let mut out = Vec::new();
    c.nodes.get_mut(&still_backup).unwrap().step(
        now(c.now_ms),
        Input::SessionClosed { session },
        &mut out,
    );
    let r = write_in_session(&mut c, &still_backup, session, 52);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn a_forwarded_request_the_primary_never_answers_times_out() {
    let mut c = Cluster::new(2);
    let p = c.primary();
    c.run(50);
    let b = c.nodes.keys().find(|id| **id != p).unwrap().clone();
    c.cut_off.insert(p);
    let r = c.write(&b, 1, "lost");
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("RequestForwardingTimedOut"));
}

/// The JSON receipt of a committed write and of a signature transaction, from a backup as well
/// as the primary, verify offline against the service certificate; an uncommitted or unknown
/// transaction has none; a tampered receipt fails verification.
#[test]
fn receipts_of_committed_transactions_verify_offline() {
    let mut c = Cluster::new(2);
    let p = c.primary();
    c.run(50);
    let r = c.write(&p, 1, "proven");
    let txid: coco_types::TxId = r
        .headers
        .iter()
        .find(|(h, _)| h == coco_app_api::TX_ID_HEADER)
        .unwrap()
        .1
        .parse()
        .unwrap();
    // Not committed yet: no receipt.
    let r = c.call(
        &p,
        Method::GET,
        &format!("/node/receipt?transaction_id={txid}"),
        "",
    );
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("TransactionPendingOrUnknown"));
    for i in 2..40 {
        c.write(&p, i, "more");
    }
    c.run(200);
    let service_cert = c.nodes[&p].service_cert_pem().to_owned();
    let backup = c.nodes.keys().find(|id| **id != p).unwrap().clone();
    for node in [&p, &backup] {
        for prefix in ["/node", "/app"] {
            // The entries may need reading back from the ledger first: 202, then the receipt.
            let mut receipt = None;
            for _ in 0..20 {
                let r = c.call(
                    node,
                    Method::GET,
                    &format!("{prefix}/receipt?transaction_id={txid}"),
                    "",
                );
                if r.status == 202 {
                    assert!(
                        r.headers
                            .iter()
                            .any(|(h, v)| h == "retry-after" && v == "3")
                    );
                    c.run(5);
                    continue;
                }
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                receipt = Some(serde_json::from_slice::<serde_json::Value>(&r.body).unwrap());
                break;
            }
            let receipt = receipt.expect("a receipt");
            assert!(
                receipt["leaf_components"]["commit_evidence"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("ce:{txid}:"))
            );
            assert!(!receipt["proof"].as_array().unwrap().is_empty());
            coco_node::receipt::verify_json_receipt(&receipt, &service_cert).unwrap();
            // Tampering with any part breaks it.
            let mut bad = receipt.clone();
            bad["leaf_components"]["claims_digest"] = serde_json::json!("11".repeat(32));
            assert!(coco_node::receipt::verify_json_receipt(&bad, &service_cert).is_err());
            let mut bad = receipt.clone();
            bad["proof"][0] = serde_json::json!({"left": "00".repeat(32)});
            assert!(coco_node::receipt::verify_json_receipt(&bad, &service_cert).is_err());
        }
    }
    // A signature transaction's receipt: its own signature over the root it signed.
    let sig = c.nodes[&p].consensus().commit;
    let mut receipt = None;
    for _ in 0..20 {
        let r = c.call(
            &p,
            Method::GET,
            &format!("/node/receipt?transaction_id={sig}"),
            "",
        );
        if r.status == 202 {
            c.run(5);
            continue;
        }
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        receipt = Some(serde_json::from_slice::<serde_json::Value>(&r.body).unwrap());
        break;
    }
    let receipt = receipt.expect("a receipt");
    assert_eq!(receipt["proof"], serde_json::json!([]));
    assert!(receipt.get("leaf").is_some());
    coco_node::receipt::verify_json_receipt(&receipt, &service_cert).unwrap();
    // Unknown and malformed transaction ids.
    let r = c.call(&p, Method::GET, "/node/receipt?transaction_id=2.99999", "");
    assert_eq!(r.status, 404);
    let r = c.call(&p, Method::GET, "/node/receipt?transaction_id=banana", "");
    assert_eq!(r.status, 400);
    let r = c.call(&p, Method::GET, "/node/receipt", "");
    assert_eq!(r.status, 400);
}

/// Calls `path` on `node` until it stops answering 202 (entries being read back).
fn settled(c: &mut Cluster, node: &str, path: &str) -> Response {
    for _ in 0..50 {
        let r = c.call(node, Method::GET, path, "");
        if r.status != 202 {
            return r;
        }
        c.run(5);
    }
    panic!("{path} kept answering 202");
}

/// The logging app's historical range (public, via the seqnos-by-key index, paginated) and
/// sparse (private) queries, served by a backup from entries it reads back from its ledger.
#[test]
fn historical_range_and_sparse_queries() {
    let mut c = Cluster::new(2);
    let p = c.primary();
    c.run(50);
    let mut versions = Vec::new();
    let mut private_seqnos = Vec::new();
    for i in 0..2_100u64 {
        let (path, id) = match i % 500 {
            0 => ("/app/log/public", 1),
            250 => ("/app/log/private", 2),
            _ => ("/app/log/public", 100 + i),
        };
        let body = serde_json::json!({"id": id, "msg": format!("v{i}")}).to_string();
        let r = c.call(&p, Method::POST, path, &body);
        assert_eq!(r.status, 200);
        let seqno: u64 = r
            .headers
            .iter()
            .find(|(h, _)| h == coco_app_api::TX_ID_HEADER)
            .unwrap()
            .1
            .split_once('.')
            .unwrap()
            .1
            .parse()
            .unwrap();
        if id == 1 {
            versions.push((seqno, format!("v{i}")));
        } else if id == 2 {
            private_seqnos.push(seqno);
        }
        if i % 100 == 0 {
            c.run(5);
        }
    }
    c.run(300);
    let backup = c.nodes.keys().find(|id| **id != p).unwrap().clone();
    let commit = c.nodes[&backup].consensus().commit.seqno;
    assert!(
        commit > versions.last().unwrap().0 && commit > 2_000,
        "{commit}"
    );
    // The whole range: two pages.
    let mut seen = Vec::new();
    let mut next = Some("/app/log/public/historical/range?id=1".to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let r = settled(&mut c, &backup, &path);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        for e in body["entries"].as_array().unwrap() {
            assert_eq!(e["id"], 1);
            seen.push((
                e["seqno"].as_u64().unwrap(),
                e["msg"].as_str().unwrap().to_owned(),
            ));
        }
        next = body["@nextLink"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!(pages, 2, "a page covers 2,000 seqnos");
    assert_eq!(seen, versions);
    // A sub-range.
    let (a, b) = (versions[1].0, versions[2].0);
    let r = settled(
        &mut c,
        &backup,
        &format!("/app/log/public/historical/range?id=1&from_seqno={a}&to_seqno={b}"),
    );
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["entries"].as_array().unwrap().len(), 2);
    // Sparse private query: only the listed seqnos that wrote the record.
    let listed = format!(
        "{},{}-{}",
        private_seqnos[0],
        private_seqnos[1] - 1,
        private_seqnos[1] + 1
    );
    let r = settled(
        &mut c,
        &backup,
        &format!("/app/log/private/historical/sparse?id=2&seqnos={listed}"),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let got: Vec<u64> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seqno"].as_u64().unwrap())
        .collect();
    assert_eq!(got, private_seqnos[..2].to_vec());
    // Bad requests.
    for bad in [
        format!(
            "/app/log/public/historical/range?id=1&to_seqno={}",
            commit + 10
        ),
        "/app/log/public/historical/range?id=1&from_seqno=5&to_seqno=4".to_owned(),
        "/app/log/public/historical/range?id=1&from_seqno=x".to_owned(),
        "/app/log/private/historical/sparse?id=2&seqnos=9-3".to_owned(),
        "/app/log/private/historical/sparse?id=2".to_owned(),
        format!(
            "/app/log/private/historical/sparse?id=2&seqnos={}",
            commit + 10
        ),
    ] {
        let r = c.call(&backup, Method::GET, &bad, "");
        assert_eq!(r.status, 400, "{bad}: {}", String::from_utf8_lossy(&r.body));
    }
    let r = c.call(&backup, Method::GET, "/node/index/strategies", "");
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["strategies"].as_array().unwrap().len(), 2, "{body}");
}

#[test]
fn a_node_joins_from_a_committed_snapshot_and_catches_up() {
    // Primary, one backup, and a third trusted node that is not running: it will start from
    // the primary's snapshot.
    let (mut c, mut spares) = Cluster::with_spares(1, 1);
    let p = c.primary();
    c.run(50);
    for i in 0..40 {
        assert_eq!(c.write(&p, i, &format!("m{i}")).status, 200);
    }
    c.run(200);
    let (name, file) = c.snapshot_files[&p]
        .iter()
        .filter(|(n, _)| n.ends_with(".committed"))
        .max_by_key(|(n, _)| coco_codec::snapshot::SnapshotName::parse(n).unwrap().seqno)
        .map(|(n, f)| (n.clone(), f.clone()))
        .expect("a committed snapshot");
    let service_cert = c.nodes[&p].service_cert_pem().to_owned();
    let snapshot =
        coco_node::snapshot::load_snapshot(&file, &service_cert, &[9; 32].into()).unwrap();
    let s = snapshot.seqno;
    assert!(name.starts_with(&format!("snapshot_{s}_")), "{name}");
    assert!(
        coco_codec::snapshot::SnapshotName::parse(&name)
            .unwrap()
            .evidence_seqno
            > s
    );

    // Tampering is refused: a flipped byte in the entry, a receipt for another service, no receipt.
    let mut tampered = file.clone();
    tampered[200] ^= 1;
    assert!(coco_node::snapshot::load_snapshot(&tampered, &service_cert, &[9; 32].into()).is_err());
    let other = identity().service_cert_pem;
    assert!(coco_node::snapshot::load_snapshot(&file, &other, &[9; 32].into()).is_err());
    let (entry, _) = coco_codec::snapshot::split_snapshot_file(&file).unwrap();
    assert!(coco_node::snapshot::load_snapshot(entry, &service_cert, &[9; 32].into()).is_err());
    assert!(coco_node::snapshot::load_snapshot(&file, &service_cert, &[8; 32].into()).is_err());

    let spare = spares.remove(0);
    let id = spare.node_id.clone();
    let node = Node::join_from_snapshot(
        CoreConfig {
            seed: 99,
            ..config()
        },
        spare,
        [9; 32],
        plugins(),
        now(c.now_ms),
        snapshot,
    )
    .unwrap();
    assert_eq!(node.consensus().commit.seqno, s);
    c.nodes.insert(id.clone(), node);
    c.ledgers.insert(id.clone(), vec![Bytes::new(); s as usize]);
    c.persisted.insert(id.clone(), s);
    for i in 40..50 {
        assert_eq!(c.write(&p, i, &format!("m{i}")).status, 200);
    }
    c.run(300);
    let commit = c.nodes[&p].consensus().commit;
    assert_eq!(c.nodes[&id].consensus().commit, commit);
    assert_eq!(
        c.ledgers[&id][s as usize..commit.seqno as usize],
        c.ledgers[&p][s as usize..commit.seqno as usize],
        "entries after the snapshot are the primary's"
    );
    // Records from before the snapshot (in it) and after (replicated) read back on the new node.
    assert_eq!(c.read(&id, 3).as_deref(), Some("m3"));
    assert_eq!(c.read(&id, 45).as_deref(), Some("m45"));
    // Its historical index starts after the snapshot, and says so.
    let r = c.call(
        &id,
        Method::GET,
        "/app/log/public/historical/range?from_seqno=1&to_seqno=5&id=1",
        "",
    );
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    // With the primary cut off, the snapshot-started node and the backup elect a new primary
    // and go on committing.
    c.cut_off.insert(p.clone());
    c.run(1_000);
    let new_primary = c.primary();
    assert_ne!(new_primary, p);
    assert_eq!(c.write(&new_primary, 60, "after").status, 200);
    c.run(200);
    assert_eq!(c.read(&id, 60).as_deref(), Some("after"));
}

/// Admission with a commit latency target (`admission.rs`): while commits cannot advance, the
/// primary holds writes — its own clients' and those a backup forwards — and runs them, in
/// order, once they can.
#[test]
fn a_primary_holds_writes_while_commits_cannot_advance() {
    let cfg = CoreConfig {
        commit_latency_target_ms: Some(20),
        consensus: coco_consensus::Config {
            // No elections while storage is stalled.
            election_timeout_ms: 10_000,
            ..config().consensus
        },
        ..config()
    };
    let mut c = Cluster::configured(2, 0, cfg).0;
    let p = c.primary();
    c.run(50);
    assert_eq!(c.write(&p, 1, "a").status, 200);
    let backups: Vec<String> = c.nodes.keys().filter(|id| **id != p).cloned().collect();
    // One backup is unreachable and the other's disk stalls: no quorum of acknowledgements.
    c.cut_off.insert(backups[1].clone());
    c.stalled.insert(backups[0].clone());
    let admitted = c.write(&p, 2, "b");
    assert_eq!(admitted.status, 200);
    c.run(100);
    let user = c.user.clone();
    let held: Vec<u64> = [(p.clone(), 3), (backups[0].clone(), 4), (p.clone(), 5)]
        .into_iter()
        .map(|(node, id)| {
            let body = serde_json::json!({"id": id, "msg": format!("m{id}")}).to_string();
            let req = request(Method::POST, "/app/log/private", &body, Some(&user));
            let id = c.send(&node, req, Session::default());
            c.run(5); // the forwarded one reaches the primary before the next
            id
        })
        .collect();
    c.run(200);
    for id in &held {
        assert!(!c.responses.contains_key(id), "request {id} is held");
    }
    assert_eq!(c.read(&p, 3), None, "held writes have not executed");
    // The disk recovers: commits advance and the held writes run, in arrival order.
    c.stalled.clear();
    c.run(100);
    let txids: Vec<coco_types::TxId> = held
        .iter()
        .map(|id| {
            let r = c
                .responses
                .remove(id)
                .expect("answered once commits caught up");
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            r.header("x-ms-ccf-transaction-id")
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        txids.windows(2).all(|w| w[0].seqno < w[1].seqno),
        "{txids:?}"
    );
    c.run(100);
    assert!(c.nodes[&p].consensus().commit.seqno >= txids[2].seqno);
    assert_eq!(c.read(&backups[0], 4).as_deref(), Some("m4"));
}

/// Once a session on a backup forwarded a write, its later app requests — reads included — go to
/// the primary too, so it reads its own writes (CCF's `forwarding_required: sometimes`); node
/// endpoints and other sessions stay local, on the core and on the read path alike.
#[test]
fn a_session_that_forwarded_reads_through_the_primary() {
    let mut c = Cluster::new(2);
    let p = c.primary();
    c.run(50);
    let b = c.nodes.keys().find(|id| **id != p).unwrap().clone();
    let user = c.user.clone();
    let get = |path: &str| request(Method::GET, path, "", Some(&user));
    // Before the session forwards anything, its reads are the backup's own.
    assert!(
        c.nodes[&b]
            .read_view()
            .execute(&get("/app/log/private?id=0"), &session(7), 0)
            .is_some()
    );
    assert_eq!(write_in_session(&mut c, &b, 7, 0).status, 200);
    // Now the backup's read path leaves the session's app reads to the core...
    let view = c.nodes[&b].read_view();
    assert!(
        view.execute(&get("/app/log/private?id=0"), &session(7), 0)
            .is_none()
    );
    assert!(
        view.execute(&get("/app/log/private?id=0"), &session(8), 0)
            .is_some(),
        "other sessions read locally"
    );
    assert!(
        view.execute(&get("/node/commit"), &session(7), 0).is_some(),
        "node endpoints stay local"
    );
    // ...which forwards them: the answer is the primary's, with the write in it.
    let forwarded = |c: &Cluster| {
        c.messages
            .iter()
            .filter(|(from, _, m)| {
                *from == b
                    && matches!(m, coco_node::PeerMessage::Forward { request, .. }
                        if request.method == Method::GET)
            })
            .count()
    };
    let id = c.send(&b, get("/app/log/private?id=0"), session(7));
    assert_eq!(forwarded(&c), 1, "the read went to the primary");
    let r = (0..1_000)
        .find_map(|_| {
            c.run(1);
            c.responses.remove(&id)
        })
        .expect("answered");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["msg"], "s");
    // A node endpoint on the same session, and the same read on another session, stay local.
    c.send(&b, get("/node/commit"), session(7));
    c.send(&b, get("/app/log/private?id=0"), session(8));
    assert_eq!(forwarded(&c), 0);
    // The session closes: its state goes, and its id would read locally again.
    let mut out = Vec::new();
    c.nodes
        .get_mut(&b)
        .unwrap()
        .step(now(c.now_ms), Input::SessionClosed { session: 7 }, &mut out);
    assert!(
        c.nodes[&b]
            .read_view()
            .execute(&get("/app/log/private?id=0"), &session(7), 0)
            .is_some()
    );
}
