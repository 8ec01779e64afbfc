//! A seeded simulation of whole clusters of the consensus core: simulated network (delay,
//! reordering, loss, duplication, partitions), simulated disks (persistence lags appends), and
//! crashes (CCF nodes do not restart). Safety is checked after every event; after the faults heal,
//! commit must advance again within a bound.
//!
//! `COCO_SIM_SEEDS=N` runs N seeds instead of the default (the CI budget); a failing seed prints
//! itself and replays with `COCO_SIM_SEED=<seed>`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use coco_consensus::{Action, Config, Input, Message, NodeId, Raft, Role};

/// Deterministic generator for the simulation's own choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

struct SimNode {
    raft: Raft,
    /// The node's ledger (entry data), as the host would hold it.
    ledger: Vec<Bytes>,
    /// Appended but not yet durable: persistence completes at the given time.
    pending_persist: VecDeque<(u64, u64)>,
    crashed: bool,
    commit: u64,
}

struct Envelope {
    deliver_at: u64,
    from: NodeId,
    to: NodeId,
    message: Message,
}

struct Faults {
    drop_percent: u64,
    duplicate_percent: u64,
    max_delay_ms: u64,
    /// Nodes cut off from everyone else (both directions) or only outgoing.
    isolated: BTreeSet<NodeId>,
    mute: BTreeSet<NodeId>,
}

impl Faults {
    fn none() -> Faults {
        Faults {
            drop_percent: 0,
            duplicate_percent: 0,
            max_delay_ms: 5,
            isolated: BTreeSet::new(),
            mute: BTreeSet::new(),
        }
    }
}

struct Sim {
    seed: u64,
    rng: Rng,
    now: u64,
    nodes: BTreeMap<NodeId, SimNode>,
    network: Vec<Envelope>,
    /// Ledger reads the hosts are doing for their consensus cores: (due time, node, input).
    reads: Vec<(u64, NodeId, Input)>,
    /// Ledger reads asked for (entries no longer in a leader's memory).
    fetches: u64,
    faults: Faults,
    /// The committed log as first observed (idx → data): every node must agree with it.
    committed: Vec<Bytes>,
    leaders_by_term: BTreeMap<u64, NodeId>,
    next_payload: u64,
    config: Config,
}

fn id(i: usize) -> NodeId {
    format!("n{i}")
}

impl Sim {
    fn new(seed: u64, n: usize) -> Sim {
        let config = Config {
            message_timeout_ms: 20,
            election_timeout_ms: 200,
            append_entries_batch_max: 16,
        };
        let mut nodes = BTreeMap::new();
        for i in 0..n {
            let raft = if i == 0 {
                Raft::new_service(id(i), config, seed.wrapping_add(i as u64), 0)
            } else {
                Raft::new_joiner(id(i), config, seed.wrapping_add(i as u64), 0)
            };
            nodes.insert(
                id(i),
                SimNode {
                    raft,
                    ledger: Vec::new(),
                    pending_persist: VecDeque::new(),
                    crashed: false,
                    commit: 0,
                },
            );
        }
        let mut sim = Sim {
            seed,
            rng: Rng(seed),
            now: 0,
            nodes,
            network: Vec::new(),
            reads: Vec::new(),
            fetches: 0,
            faults: Faults::none(),
            committed: Vec::new(),
            leaders_by_term: BTreeMap::new(),
            next_payload: 0,
            config,
        };
        // Genesis: the initial configuration (every node, as when nodes join while the service
        // is opening), then a signature.
        let all: BTreeSet<NodeId> = (0..n).map(id).collect();
        sim.propose(&id(0), false, Some(Arc::new(all)));
        sim.propose(&id(0), true, None);
        sim
    }

    fn fail(&self, what: String) -> ! {
        panic!("seed {}: at {} ms: {what}", self.seed, self.now)
    }

    fn propose(
        &mut self,
        node: &NodeId,
        committable: bool,
        configuration: Option<Arc<BTreeSet<NodeId>>>,
    ) {
        self.next_payload += 1;
        let data = Bytes::from(format!("{node}:{}", self.next_payload));
        let n = self.nodes.get_mut(node).unwrap();
        if let Ok(idx) = n.raft.propose(committable, configuration, data.clone()) {
            assert_eq!(idx as usize, n.ledger.len() + 1);
            n.ledger.push(data);
            let delay = self.rng.below(10);
            n.pending_persist.push_back((self.now + delay, idx));
            let mut out = Vec::new();
            n.raft.replicate(&mut out);
            self.handle(node.clone(), out);
        }
    }

    fn handle(&mut self, node: NodeId, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { to, message } => {
                    if self.faults.mute.contains(&node)
                        || self.faults.isolated.contains(&node)
                        || self.faults.isolated.contains(&to)
                        || self.rng.chance(self.faults.drop_percent)
                    {
                        continue;
                    }
                    // Every message crosses the wire encoding, as between real nodes.
                    let message = Message::decode(&message.encode())
                        .unwrap_or_else(|e| self.fail(format!("wire round trip: {e}")));
                    let copies = if self.rng.chance(self.faults.duplicate_percent) {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        let delay = 1 + self.rng.below(self.faults.max_delay_ms);
                        self.network.push(Envelope {
                            deliver_at: self.now + delay,
                            from: node.clone(),
                            to: to.clone(),
                            message: message.clone(),
                        });
                    }
                }
                Action::Rollback { to_idx } => {
                    let commit = self.nodes[&node].commit;
                    if to_idx < commit {
                        self.fail(format!(
                            "{node} rolls back to {to_idx} below its commit {commit}"
                        ));
                    }
                    let n = self.nodes.get_mut(&node).unwrap();
                    n.ledger.truncate(to_idx as usize);
                    n.pending_persist.retain(|(_, i)| *i <= to_idx);
                }
                Action::Append { first_idx, entries } => {
                    let delay = self.rng.below(10);
                    let n = self.nodes.get_mut(&node).unwrap();
                    if first_idx as usize != n.ledger.len() + 1 {
                        let len = n.ledger.len();
                        self.fail(format!(
                            "{node} appends at {first_idx} to a ledger of {len}"
                        ));
                    }
                    for e in entries {
                        n.ledger.push(e.data);
                    }
                    let last = n.ledger.len() as u64;
                    n.pending_persist.push_back((self.now + delay, last));
                }
                Action::Commit { idx } => self.on_commit(&node, idx),
                Action::BecameLeader { term } => {
                    if let Some(prev) = self.leaders_by_term.insert(term, node.clone())
                        && prev != node
                    {
                        self.fail(format!("two leaders in term {term}: {prev} and {node}"));
                    }
                    // A new leader signs at once, so its term has a committable entry.
                    self.propose(&node, true, None);
                }
                Action::FetchEntries {
                    peer,
                    from_idx,
                    to_idx,
                } => {
                    let n = &self.nodes[&node];
                    if to_idx as usize > n.ledger.len() || from_idx == 0 {
                        self.fail(format!(
                            "{node} fetches {from_idx}..={to_idx} beyond its ledger"
                        ));
                    }
                    let data = n.ledger[from_idx as usize - 1..to_idx as usize].to_vec();
                    let at = self.now + 1 + self.rng.below(5);
                    self.fetches += 1;
                    self.reads.push((
                        at,
                        node.clone(),
                        Input::Fetched {
                            peer,
                            from_idx,
                            data,
                        },
                    ));
                }
                Action::BecameFollower { .. }
                | Action::BecameCandidate { .. }
                | Action::Retired => {}
            }
        }
    }

    fn on_commit(&mut self, node: &NodeId, idx: u64) {
        let commit = self.nodes[node].commit;
        if idx < commit {
            self.fail(format!("{node} commit goes back from {commit} to {idx}"));
        }
        let n = self.nodes.get_mut(node).unwrap();
        n.commit = idx;
        let prefix: Vec<Bytes> = n.ledger[..idx as usize].to_vec();
        for (i, data) in prefix.iter().enumerate() {
            match self.committed.get(i) {
                Some(seen) if seen != data => self.fail(format!(
                    "{node} committed {data:?} at {}, others {seen:?}",
                    i + 1
                )),
                Some(_) => {}
                None => self.committed.push(data.clone()),
            }
        }
    }

    /// Advances time to the next event and processes it.
    fn step(&mut self) {
        self.now += 1;
        let now = self.now;
        // Deliveries due now, in a random order (reordering).
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.network.len() {
            if self.network[i].deliver_at <= now {
                due.push(self.network.swap_remove(i));
            } else {
                i += 1;
            }
        }
        while !due.is_empty() {
            let e = due.swap_remove(self.rng.below(due.len() as u64) as usize);
            if self.nodes[&e.to].crashed {
                continue;
            }
            let mut out = Vec::new();
            self.nodes.get_mut(&e.to).unwrap().raft.step(
                Input::Receive {
                    from: e.from,
                    message: e.message,
                },
                &mut out,
            );
            self.handle(e.to.clone(), out);
        }
        let mut i = 0;
        while i < self.reads.len() {
            if self.reads[i].0 <= now {
                let (_, nid, input) = self.reads.swap_remove(i);
                if !self.nodes[&nid].crashed {
                    let mut out = Vec::new();
                    self.nodes.get_mut(&nid).unwrap().raft.step(input, &mut out);
                    self.handle(nid, out);
                }
            } else {
                i += 1;
            }
        }
        let ids: Vec<NodeId> = self.nodes.keys().cloned().collect();
        for nid in ids {
            if self.nodes[&nid].crashed {
                continue;
            }
            let mut out = Vec::new();
            let n = self.nodes.get_mut(&nid).unwrap();
            while let Some(&(at, idx)) = n.pending_persist.front() {
                if at > now {
                    break;
                }
                n.pending_persist.pop_front();
                n.raft.step(Input::Persisted { idx }, &mut out);
            }
            n.raft.step(Input::Tick { now_ms: now }, &mut out);
            self.handle(nid.clone(), out);
        }
        self.check_invariants();
    }

    fn check_invariants(&self) {
        // A message storm is a bug (amplification), not load.
        if self.network.len() > 100 * self.nodes.len() * self.nodes.len() {
            let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
            for e in &self.network {
                let k = format!(
                    "{}->{} {:?}",
                    e.from,
                    e.to,
                    std::mem::discriminant(&e.message)
                );
                *kinds.entry(k).or_default() += 1;
            }
            let sample: Vec<String> = self
                .network
                .iter()
                .rev()
                .take(6)
                .map(|e| format!("{}->{} {:?}", e.from, e.to, e.message))
                .collect();
            self.fail(format!(
                "{} messages in flight: {kinds:?} {sample:#?}",
                self.network.len()
            ));
        }
        for (nid, n) in &self.nodes {
            let r = &n.raft;
            if r.last_idx() as usize != n.ledger.len() {
                self.fail(format!(
                    "{nid}: consensus log {} vs ledger {}",
                    r.last_idx(),
                    n.ledger.len()
                ));
            }
            if r.commit_idx() > r.last_idx() {
                self.fail(format!("{nid}: commit beyond the log"));
            }
            if r.commit_idx() > r.compacted_to() && !r.entry(r.commit_idx()).unwrap().committable {
                self.fail(format!("{nid}: commit at a non-signature"));
            }
        }
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| !n.crashed && n.raft.role() == Role::Leader)
            .max_by_key(|(_, n)| n.raft.term())
            .map(|(id, _)| id.clone())
    }

    /// Client load: the current leader proposes now and then, signing every fourth entry.
    fn load(&mut self) {
        if self.rng.chance(30)
            && let Some(l) = self.leader()
        {
            let sign = self.rng.chance(25);
            self.propose(&l, sign, None);
        }
    }

    fn max_commit(&self) -> u64 {
        self.nodes
            .values()
            .filter(|n| !n.crashed)
            .map(|n| n.commit)
            .max()
            .unwrap_or(0)
    }
}

/// One run: a calm start, a fault phase (loss, duplication, delay, partitions, crashes of a
/// minority), then healing, after which commit must advance within a bound.
fn run(seed: u64, n: usize, fault_steps: u64) {
    let mut sim = Sim::new(seed, n);
    for _ in 0..500 {
        sim.load();
        sim.step();
    }
    if sim.max_commit() < 2 {
        sim.fail("no commit in a calm start".into());
    }
    let max_crashes = (n - 1) / 2;
    let mut crashed = 0;
    let mut t = 0;
    while t < fault_steps {
        sim.faults.drop_percent = sim.rng.below(20);
        sim.faults.duplicate_percent = sim.rng.below(10);
        sim.faults.max_delay_ms = 1 + sim.rng.below(60);
        sim.faults.isolated.clear();
        sim.faults.mute.clear();
        let ids: Vec<NodeId> = sim.nodes.keys().cloned().collect();
        match sim.rng.below(5) {
            0 | 1 => {
                // Cut off (both ways, or only its outgoing messages) the leader or anyone.
                let victim = match sim.leader() {
                    Some(l) if sim.rng.chance(60) => l,
                    _ => ids[sim.rng.below(n as u64) as usize].clone(),
                };
                if sim.rng.chance(50) {
                    sim.faults.isolated.insert(victim);
                } else {
                    sim.faults.mute.insert(victim);
                }
            }
            2 if crashed < max_crashes => {
                // Crash the leader, if any, else a random node; CCF nodes do not come back.
                let victim = sim
                    .leader()
                    .unwrap_or_else(|| ids[sim.rng.below(n as u64) as usize].clone());
                if !sim.nodes[&victim].crashed {
                    sim.nodes.get_mut(&victim).unwrap().crashed = true;
                    crashed += 1;
                }
            }
            _ => {}
        }
        let span = 100 + sim.rng.below(600);
        for _ in 0..span {
            sim.load();
            sim.step();
        }
        t += span;
    }
    // Heal: a correct, connected majority must commit new entries within a bound.
    sim.faults = Faults::none();
    let before = sim.max_commit();
    let bound = 20 * sim.config.election_timeout_ms;
    let start = sim.now;
    while sim.max_commit() <= before {
        if sim.now - start > bound {
            sim.fail(format!(
                "no progress within {bound} ms after healing (commit {before})"
            ));
        }
        sim.load();
        sim.step();
    }
    if std::env::var_os("COCO_SIM_VERBOSE").is_some() {
        eprintln!(
            "seed {seed}: {n} nodes, {} terms with a leader, {} committed entries, {crashed} crashed, {} ledger reads, {} ms",
            sim.leaders_by_term.len(),
            sim.committed.len(),
            sim.fetches,
            sim.now
        );
    }
    // Every live node catches up with the commit eventually.
    let target = sim.max_commit();
    let start = sim.now;
    while sim
        .nodes
        .values()
        .any(|n| !n.crashed && n.raft.role() != Role::Retired && n.commit < target)
    {
        if sim.now - start > bound {
            sim.fail(format!("live nodes did not reach commit {target}"));
        }
        sim.step();
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("COCO_SIM_SEED") {
        return vec![s.parse().expect("COCO_SIM_SEED is a number")];
    }
    let count = std::env::var("COCO_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    (1..=count).collect()
}

#[test]
fn three_nodes_survive_faults() {
    for seed in seeds() {
        run(seed, 3, 4_000);
    }
}

#[test]
fn five_nodes_survive_faults() {
    for seed in seeds() {
        run(seed.wrapping_mul(7919), 5, 4_000);
    }
}
