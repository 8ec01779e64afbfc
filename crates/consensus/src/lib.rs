//! coco's consensus core: Raft as CCF runs it (ccf-reference §5.1, `src/consensus/aft/raft.h`,
//! `tla/consensus/ccfraft.tla`), as a deterministic state machine.
//!
//! Shaped like raft-rs — `step(input)` and `propose(entry)` push [`Action`]s (messages to send,
//! entries to persist and apply, rollbacks, commit advances) — with time and randomness passed in,
//! but with CCF's semantics, which neither raft-rs nor openraft offers:
//!
//! - **Commit only at signature transactions** ([`Entry::committable`]), once replicated (durably)
//!   to a quorum of *every* active configuration, and only at an index of the leader's own term.
//! - **Unsigned suffixes are discarded**: a new leader rolls back to its last committable index
//!   before appending; followers roll back suffixes that conflict with the leader's log. Committed
//!   entries never roll back (asserted).
//! - **Votes compare the last committable index** and its term, not the last index.
//! - **Views are terms** and start at 2 (`coco_types::FIRST_VIEW`).
//! - **Several configurations may be active**: an entry may carry a new set of voting nodes
//!   ([`Entry::configuration`]); it takes effect when appended, and the configurations before it
//!   are dropped once it commits. Elections and commit need a quorum in every active configuration.
//!   A leader that is not part of the configurations left after a commit retires and asks the most
//!   up-to-date node of the new configuration to stand for election (CCF's `ProposeRequestVote`).
//! - **CheckQuorum**: a leader that has not heard from a quorum of every active configuration
//!   within an election timeout steps down (same term).
//! - **Nodes do not restart** (CCF replaces a failed node), so terms and votes are not persisted;
//!   entries are acknowledged only once the host reports them durable ([`Input::Persisted`]).
//!
//! Entries travel with their metadata (term, committable, configuration) beside the exact bytes
//! the primary wrote to its ledger, so every replica's ledger is byte-identical. The node layer
//! derives the same metadata when it applies an entry and can check it.
//!
//! Architecture invariant: pure — no I/O, no clock reads, no ambient randomness (the election
//! timer jitter comes from a generator seeded by the caller).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use coco_types::{FIRST_VIEW, SeqNo, View, limits};

#[cfg(test)]
mod tests;
pub mod wire;

pub use wire::DecodeError;

/// A node, by its id (CCF: hex SHA-256 of its public key).
pub type NodeId = String;

/// The voting nodes of a configuration.
pub type Configuration = Arc<BTreeSet<NodeId>>;

/// Timing and batching (CCF `consensus.message_timeout`, `consensus.election_timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Heartbeat interval of a leader.
    pub message_timeout_ms: u64,
    /// Followers start an election when they have not heard from a leader for a random time in
    /// (election_timeout/2, election_timeout]; a leader steps down when it has not heard from a
    /// quorum for an election timeout.
    pub election_timeout_ms: u64,
    /// Entries per AppendEntries message at most.
    pub append_entries_batch_max: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            message_timeout_ms: limits::CONSENSUS_MESSAGE_TIMEOUT_MS_DEFAULT,
            election_timeout_ms: limits::CONSENSUS_ELECTION_TIMEOUT_MS_DEFAULT,
            append_entries_batch_max: limits::APPEND_ENTRIES_BATCH_COUNT_MAX,
        }
    }
}

/// A replicated ledger entry with the metadata consensus needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The view (term) in which the primary created the entry.
    pub term: View,
    /// A signature transaction: commit can only stop here.
    pub committable: bool,
    /// The voting nodes from this entry on, if it changes them.
    pub configuration: Option<Configuration>,
    /// The exact serialised ledger entry.
    pub data: Bytes,
}

/// CCF's `ElectionType`: coco sends only regular votes but answers pre-votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionType {
    PreVote,
    Regular,
}

/// Node-to-node consensus messages (CCF `raft_types.h`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    AppendEntries {
        term: View,
        prev_idx: SeqNo,
        prev_term: View,
        leader_commit_idx: SeqNo,
        /// Consecutive entries from `prev_idx + 1`, all of one term (possibly none: a heartbeat).
        entries: Vec<Entry>,
    },
    AppendEntriesResponse {
        term: View,
        /// On success: the follower's log matches the leader's and is durable up to here. On
        /// failure: the latest index that may still match, so the leader can skip back at once.
        last_log_idx: SeqNo,
        success: bool,
    },
    RequestVote {
        term: View,
        last_committable_idx: SeqNo,
        term_of_last_committable_idx: View,
        election_type: ElectionType,
    },
    RequestVoteResponse {
        term: View,
        vote_granted: bool,
        election_type: ElectionType,
    },
    /// A retiring leader asks the receiver to start an election now.
    ProposeRequestVote { term: View },
}

impl Message {
    pub fn term(&self) -> View {
        match self {
            Message::AppendEntries { term, .. }
            | Message::AppendEntriesResponse { term, .. }
            | Message::RequestVote { term, .. }
            | Message::RequestVoteResponse { term, .. }
            | Message::ProposeRequestVote { term } => *term,
        }
    }
}

/// What a node currently is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    Candidate,
    Leader,
    /// No longer part of any active configuration: takes no further part.
    Retired,
}

/// What the host must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Send {
        to: NodeId,
        message: Message,
    },
    /// Discard every entry after `to_idx`: ledger, KV, Merkle tree, secrets.
    Rollback {
        to_idx: SeqNo,
    },
    /// Persist and apply these entries received from the leader, starting at `first_idx`.
    Append {
        first_idx: SeqNo,
        entries: Vec<Entry>,
    },
    /// Everything up to `idx` (a committable entry) is committed.
    Commit {
        idx: SeqNo,
    },
    /// This node became leader of `term`. It must now append a signature transaction, so that
    /// the new term has a committable entry (CCF emits one at once).
    BecameLeader {
        term: View,
    },
    /// This node follows (or waits for) a leader in `term`.
    BecameFollower {
        term: View,
        leader: Option<NodeId>,
    },
    /// This node stood for election in `term`.
    BecameCandidate {
        term: View,
    },
    /// This node left every active configuration.
    Retired,
    /// A leader needs the bytes of entries `from_idx..=to_idx`, no longer in memory, for
    /// `peer`: read them from the ledger and hand them back with [`Input::Fetched`].
    FetchEntries {
        peer: NodeId,
        from_idx: SeqNo,
        to_idx: SeqNo,
    },
}

/// The ledger a recovered service starts from, as consensus sees it.
#[derive(Clone, Copy, Debug)]
pub struct RecoveredLog<'a> {
    /// Its last entry, a signature (committable).
    pub seqno: SeqNo,
    /// `(view, first seqno)` of each of its views.
    pub view_history: &'a [(View, SeqNo)],
    /// Its signature transactions, sent with their flag to nodes that join.
    pub signatures: &'a [SeqNo],
}

/// Inputs besides proposals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Time passes (monotonic milliseconds).
    Tick {
        now_ms: u64,
    },
    Receive {
        from: NodeId,
        message: Message,
    },
    /// The host made every entry up to `idx` durable.
    Persisted {
        idx: SeqNo,
    },
    /// The bytes of consecutive entries from `from_idx`, read from the ledger after
    /// [`Action::FetchEntries`].
    Fetched {
        peer: NodeId,
        from_idx: SeqNo,
        data: Vec<Bytes>,
    },
}

/// Why a proposal was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposeError {
    NotLeader { leader: Option<NodeId> },
}

#[derive(Clone, Debug)]
struct Peer {
    /// Next index to send.
    next_idx: SeqNo,
    /// Highest index known replicated (durably) on the peer.
    match_idx: SeqNo,
    /// When the peer last answered an AppendEntries (for CheckQuorum).
    last_ack_ms: Option<u64>,
    /// Looking for the point where the peer's log matches: one AppendEntries at a time, and
    /// only failures that move `next_idx` back are acted on (duplicated or stale failures must
    /// not multiply messages). Otherwise entries are pipelined.
    probing: bool,
    /// Entries from this index were asked of the host ([`Action::FetchEntries`]).
    fetching: Option<SeqNo>,
}

/// The consensus state of one node.
#[derive(Clone, Debug)]
pub struct Raft {
    id: NodeId,
    config: Config,
    rng: u64,
    role: Role,
    term: View,
    voted_for: Option<NodeId>,
    leader: Option<NodeId>,
    /// The log's metadata, kept compactly for every index: runs of terms (first index, term),
    /// the committable indices, and every configuration entry ever appended.
    terms: Vec<(SeqNo, View)>,
    config_history: Vec<(SeqNo, Configuration)>,
    last_idx: SeqNo,
    /// Entry bytes from `data_offset + 1` to `last_idx`. Committed entries are dropped from the
    /// front; a leader asks the host for them from the ledger ([`Action::FetchEntries`]).
    data: VecDeque<Bytes>,
    data_offset: SeqNo,
    /// Committable indices, ascending (all of them: signatures are sparse).
    committable: BTreeSet<SeqNo>,
    /// The snapshot (or recovered ledger) this node started from ends here; the log's metadata
    /// covers only what follows. 0 for a node holding the whole log.
    started_after: SeqNo,
    commit_idx: SeqNo,
    persisted_idx: SeqNo,
    /// Configurations by the index that introduced them, ascending; the first is the latest
    /// committed one (or none yet), the rest are active but uncommitted.
    configurations: Vec<(SeqNo, Configuration)>,
    peers: BTreeMap<NodeId, Peer>,
    votes: BTreeSet<NodeId>,
    /// This node has been part of an active configuration (a joiner is not until the entry
    /// adding it arrives); leaving them all after that means retirement.
    was_voter: bool,
    /// A follower owes its leader an acknowledgement up to this index once it is durable.
    ack_owed: Option<(NodeId, SeqNo)>,
    now_ms: u64,
    election_deadline_ms: u64,
    last_heartbeat_ms: u64,
    last_check_quorum_ms: u64,
}

impl Raft {
    /// The first node of a new service: leader of the first view with an empty log. Its first
    /// proposal should carry the initial configuration (itself).
    pub fn new_service(id: NodeId, config: Config, seed: u64, now_ms: u64) -> Raft {
        let mut r = Raft::blank(id, config, seed, now_ms);
        r.role = Role::Leader;
        r.term = FIRST_VIEW;
        r.leader = Some(r.id.clone());
        r
    }

    /// A node joining an existing service: a follower with an empty log, waiting for the leader.
    pub fn new_joiner(id: NodeId, config: Config, seed: u64, now_ms: u64) -> Raft {
        Raft::blank(id, config, seed, now_ms)
    }

    /// A node starting from a committed snapshot at `seqno` (a signature transaction): a
    /// follower whose log is known up to `seqno` — its terms from the snapshot's view history,
    /// everything committed, no entry bytes (the ledger before the snapshot is not this node's
    /// to serve). `configuration` is the voting nodes as of the snapshot.
    pub fn new_from_snapshot(
        id: NodeId,
        config: Config,
        seed: u64,
        now_ms: u64,
        seqno: SeqNo,
        view_history: &[(View, SeqNo)],
        configuration: Configuration,
    ) -> Raft {
        assert!(
            seqno > 0,
            "a snapshot is of at least the genesis transaction"
        );
        assert!(
            view_history.first().is_some_and(|(_, first)| *first == 1)
                && view_history
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1)
                && view_history
                    .last()
                    .is_some_and(|(_, first)| *first <= seqno),
            "view history must start at seqno 1 and ascend up to the snapshot"
        );
        let mut r = Raft::blank(id, config, seed, now_ms);
        r.terms = view_history.iter().map(|(v, first)| (*first, *v)).collect();
        r.last_idx = seqno;
        r.data_offset = seqno;
        r.committable.insert(seqno);
        r.started_after = seqno;
        r.commit_idx = seqno;
        r.persisted_idx = seqno;
        r.was_voter = configuration.contains(&r.id);
        r.configurations.push((seqno, configuration.clone()));
        r.config_history.push((seqno, configuration));
        r
    }

    /// The first node of a service recovered from a ledger (`log`): leader of `view` (after
    /// every view of that ledger), its log committed up to the ledger's end, alone in its
    /// configuration until others join.
    pub fn new_recovered(
        id: NodeId,
        config: Config,
        seed: u64,
        now_ms: u64,
        log: RecoveredLog<'_>,
        view: View,
    ) -> Raft {
        let RecoveredLog {
            seqno,
            view_history,
            signatures,
        } = log;
        assert!(
            view_history.last().is_some_and(|(v, _)| *v < view),
            "the recovered service's view follows the ledger's"
        );
        assert!(
            signatures.iter().all(|s| *s <= seqno),
            "the recovered ledger's signatures are within it"
        );
        let me: Configuration = Arc::new(BTreeSet::from([id.clone()]));
        let mut r = Raft::new_from_snapshot(id, config, seed, now_ms, seqno, view_history, me);
        // Entries of the ledger are sent from it to nodes that join: with their flags.
        r.committable.extend(signatures.iter().copied());
        r.term = view;
        // The node layer acts on leadership itself (as for a new service).
        r.become_leader(&mut Vec::new());
        r
    }

    fn blank(id: NodeId, config: Config, seed: u64, now_ms: u64) -> Raft {
        assert!(
            config.message_timeout_ms > 0 && config.election_timeout_ms > config.message_timeout_ms,
            "election timeout must exceed the heartbeat interval"
        );
        assert!(config.append_entries_batch_max > 0);
        let mut r = Raft {
            id,
            config,
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            role: Role::Follower,
            term: 0,
            voted_for: None,
            leader: None,
            terms: Vec::new(),
            config_history: Vec::new(),
            last_idx: 0,
            data: VecDeque::new(),
            data_offset: 0,
            committable: BTreeSet::new(),
            started_after: 0,
            commit_idx: 0,
            persisted_idx: 0,
            configurations: Vec::new(),
            peers: BTreeMap::new(),
            votes: BTreeSet::new(),
            was_voter: false,
            ack_owed: None,
            now_ms,
            election_deadline_ms: 0,
            last_heartbeat_ms: now_ms,
            last_check_quorum_ms: now_ms,
        };
        r.reset_election_deadline();
        r
    }

    // ------------------------------------------------------------------ accessors

    pub fn id(&self) -> &NodeId {
        &self.id
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn term(&self) -> View {
        self.term
    }
    pub fn leader(&self) -> Option<&NodeId> {
        self.leader.as_ref()
    }
    pub fn commit_idx(&self) -> SeqNo {
        self.commit_idx
    }
    pub fn last_idx(&self) -> SeqNo {
        self.last_idx
    }
    /// Where the snapshot or recovered ledger this node started from ends (0 if none): which
    /// signature covers an entry up to here is only known from the ledger itself.
    pub fn started_after(&self) -> SeqNo {
        self.started_after
    }
    /// Entry bytes up to here were dropped from memory (committed).
    pub fn compacted_to(&self) -> SeqNo {
        self.data_offset
    }
    pub fn persisted_idx(&self) -> SeqNo {
        self.persisted_idx
    }
    /// The term of the entry at `idx` (0 for index 0), if the log reaches it.
    pub fn term_at(&self, idx: SeqNo) -> Option<View> {
        if idx == 0 {
            return Some(0);
        }
        if idx > self.last_idx {
            return None;
        }
        let run = self.terms.partition_point(|(start, _)| *start <= idx);
        Some(self.terms[run - 1].1)
    }
    /// The entry at `idx`, if its bytes are still in memory.
    pub fn entry(&self, idx: SeqNo) -> Option<Entry> {
        let data = idx
            .checked_sub(self.data_offset + 1)
            .and_then(|i| self.data.get(i as usize))?;
        Some(self.entry_with(idx, data.clone()))
    }
    /// The entry at `idx` with the given bytes and the metadata this log holds for it.
    fn entry_with(&self, idx: SeqNo, data: Bytes) -> Entry {
        let configuration = self
            .config_history
            .binary_search_by_key(&idx, |(i, _)| *i)
            .ok()
            .map(|k| self.config_history[k].1.clone());
        Entry {
            term: self
                .term_at(idx)
                .expect("entry_with is asked for indices in the log"),
            committable: self.committable.contains(&idx),
            configuration,
            data,
        }
    }

    /// The first committable index at or after `idx` (the signature that proves `idx`).
    pub fn next_committable_from(&self, idx: SeqNo) -> Option<SeqNo> {
        self.committable.range(idx..).next().copied()
    }

    /// The last committable index and its term ((0, 0) if none).
    pub fn last_committable(&self) -> (SeqNo, View) {
        match self.committable.last() {
            Some(&i) => (
                i,
                self.term_at(i).expect("committable indices are in the log"),
            ),
            None => (0, 0),
        }
    }

    /// The configurations a quorum is needed in: the last committed one and any after it.
    pub fn active_configurations(&self) -> impl Iterator<Item = &Configuration> {
        self.configurations.iter().map(|(_, c)| c)
    }

    fn voters(&self) -> BTreeSet<NodeId> {
        self.configurations
            .iter()
            .flat_map(|(_, c)| c.iter().cloned())
            .collect()
    }

    fn is_voter(&self) -> bool {
        self.configurations
            .iter()
            .any(|(_, c)| c.contains(&self.id))
    }

    /// Whether `pred` holds for a strict majority of every active configuration.
    fn quorum_in_all(&self, pred: impl Fn(&NodeId) -> bool) -> bool {
        !self.configurations.is_empty()
            && self
                .configurations
                .iter()
                .all(|(_, c)| c.iter().filter(|n| pred(n)).count() * 2 > c.len())
    }

    // ------------------------------------------------------------------ randomness and timers

    fn next_random(&mut self) -> u64 {
        // SplitMix64: deterministic for a given seed.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn reset_election_deadline(&mut self) {
        let half = (self.config.election_timeout_ms / 2).max(1);
        let jitter = self.next_random() % half;
        self.election_deadline_ms = self.now_ms + self.config.election_timeout_ms - jitter;
    }

    // ------------------------------------------------------------------ proposals

    /// Appends an entry created by this leader (its bytes are already in the leader's ledger
    /// pipeline, so no `Append` action is emitted). Messages go out on the next [`Raft::replicate`]
    /// or tick, so a burst of proposals travels in few messages.
    pub fn propose(
        &mut self,
        committable: bool,
        configuration: Option<Configuration>,
        data: Bytes,
    ) -> Result<SeqNo, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader.clone(),
            });
        }
        let idx = self.last_idx() + 1;
        let reconfigures = configuration.is_some();
        self.push_entry(Entry {
            term: self.term,
            committable,
            configuration,
            data,
        });
        // Peers change only with the configurations; most proposals leave them alone.
        if reconfigures {
            self.refresh_peers();
        }
        Ok(idx)
    }

    fn push_entry(&mut self, entry: Entry) {
        let idx = self.last_idx() + 1;
        if entry.committable {
            self.committable.insert(idx);
        }
        if let Some(c) = &entry.configuration {
            self.was_voter |= c.contains(&self.id);
            self.configurations.push((idx, c.clone()));
            self.config_history.push((idx, c.clone()));
        }
        if self.terms.last().is_none_or(|(_, t)| *t != entry.term) {
            self.terms.push((idx, entry.term));
        }
        self.data.push_back(entry.data);
        self.last_idx = idx;
    }

    /// A leader sends what its peers are missing.
    pub fn replicate(&mut self, out: &mut Vec<Action>) {
        if self.role != Role::Leader {
            return;
        }
        let peers: Vec<NodeId> = self.peers.keys().cloned().collect();
        for p in peers {
            if self.peers[&p].next_idx <= self.last_idx() {
                self.send_append_entries(&p, out);
            }
        }
    }

    // ------------------------------------------------------------------ inputs

    pub fn step(&mut self, input: Input, out: &mut Vec<Action>) {
        match input {
            Input::Tick { now_ms } => self.tick(now_ms, out),
            Input::Receive { from, message } => self.receive(from, message, out),
            Input::Persisted { idx } => self.persisted(idx, out),
            Input::Fetched {
                peer,
                from_idx,
                data,
            } => self.fetched(peer, from_idx, data, out),
        }
    }

    fn tick(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        self.now_ms = self.now_ms.max(now_ms);
        match self.role {
            Role::Leader => {
                if self.now_ms >= self.last_check_quorum_ms + self.config.election_timeout_ms {
                    self.last_check_quorum_ms = self.now_ms;
                    let since = self.now_ms - self.config.election_timeout_ms;
                    let heard = |n: &NodeId| {
                        *n == self.id
                            || self
                                .peers
                                .get(n)
                                .and_then(|p| p.last_ack_ms)
                                .is_some_and(|t| t >= since)
                    };
                    if !self.quorum_in_all(heard) {
                        self.become_follower(self.term, None, out);
                        return;
                    }
                }
                if self.now_ms >= self.last_heartbeat_ms + self.config.message_timeout_ms {
                    self.last_heartbeat_ms = self.now_ms;
                    let peers: Vec<NodeId> = self.peers.keys().cloned().collect();
                    for p in peers {
                        self.send_append_entries(&p, out);
                    }
                }
            }
            Role::Follower | Role::Candidate => {
                if self.now_ms >= self.election_deadline_ms && self.is_voter() {
                    self.start_election(out);
                }
            }
            Role::Retired => {}
        }
    }

    fn persisted(&mut self, idx: SeqNo, out: &mut Vec<Action>) {
        assert!(
            idx <= self.last_idx(),
            "persisted index {idx} beyond the log ({})",
            self.last_idx()
        );
        self.persisted_idx = self.persisted_idx.max(idx);
        match self.role {
            Role::Leader => self.advance_leader_commit(out),
            _ => {
                if let Some((leader, upto)) = self.ack_owed.clone()
                    && self.persisted_idx >= upto
                {
                    self.ack_owed = None;
                    out.push(Action::Send {
                        to: leader,
                        message: Message::AppendEntriesResponse {
                            term: self.term,
                            last_log_idx: upto,
                            success: true,
                        },
                    });
                }
            }
        }
    }

    fn receive(&mut self, from: NodeId, message: Message, out: &mut Vec<Action>) {
        if from == self.id {
            return;
        }
        if self.role == Role::Retired && !matches!(message, Message::AppendEntries { .. }) {
            self.receive_retired(from, message, out);
            return;
        }
        // Pre-votes are answered without adopting their (hypothetical) term.
        if let Message::RequestVote {
            election_type: ElectionType::PreVote,
            last_committable_idx,
            term_of_last_committable_idx,
            term,
        } = message
        {
            let granted = term >= self.term
                && (term_of_last_committable_idx, last_committable_idx)
                    >= self.last_committable_swapped();
            out.push(Action::Send {
                to: from,
                message: Message::RequestVoteResponse {
                    term: self.term,
                    vote_granted: granted,
                    election_type: ElectionType::PreVote,
                },
            });
            return;
        }
        if message.term() > self.term {
            let leader = matches!(message, Message::AppendEntries { .. }).then(|| from.clone());
            self.become_follower(message.term(), leader, out);
        }
        match message {
            Message::AppendEntries {
                term,
                prev_idx,
                prev_term,
                leader_commit_idx,
                entries,
            } => self.on_append_entries(
                from,
                term,
                prev_idx,
                prev_term,
                leader_commit_idx,
                entries,
                out,
            ),
            Message::AppendEntriesResponse {
                term,
                last_log_idx,
                success,
            } => self.on_append_entries_response(from, term, last_log_idx, success, out),
            Message::RequestVote {
                term,
                last_committable_idx,
                term_of_last_committable_idx,
                ..
            } => self.on_request_vote(
                from,
                term,
                (term_of_last_committable_idx, last_committable_idx),
                out,
            ),
            Message::RequestVoteResponse {
                term,
                vote_granted,
                election_type,
            } => {
                if self.role == Role::Candidate
                    && term == self.term
                    && vote_granted
                    && election_type == ElectionType::Regular
                {
                    self.votes.insert(from);
                    if self.quorum_in_all(|n| self.votes.contains(n)) {
                        self.become_leader(out);
                    }
                }
            }
            Message::ProposeRequestVote { term } => {
                if term == self.term && self.role == Role::Follower && self.is_voter() {
                    self.start_election(out);
                }
            }
        }
    }

    /// A retired node still takes part as the older configuration needs it (CCF's retirement
    /// phases): until the configuration without it commits everywhere, the others may need its
    /// vote, or its acknowledgements, for a quorum of the older configuration. It answers vote
    /// requests by the usual rule, and an AppendEntries makes it a follower that never stands
    /// (it is in no configuration it could lead).
    fn receive_retired(&mut self, from: NodeId, message: Message, out: &mut Vec<Action>) {
        let Message::RequestVote {
            term,
            last_committable_idx,
            term_of_last_committable_idx,
            election_type,
        } = message
        else {
            return;
        };
        let pre_vote = election_type == ElectionType::PreVote;
        if !pre_vote && term > self.term {
            self.term = term;
            self.voted_for = None;
        }
        let up_to_date =
            (term_of_last_committable_idx, last_committable_idx) >= self.last_committable_swapped();
        let granted = if pre_vote {
            term >= self.term && up_to_date
        } else {
            term == self.term && self.voted_for.as_ref().is_none_or(|v| *v == from) && up_to_date
        };
        if granted && !pre_vote {
            self.voted_for = Some(from.clone());
        }
        out.push(Action::Send {
            to: from,
            message: Message::RequestVoteResponse {
                term: self.term,
                vote_granted: granted,
                election_type,
            },
        });
    }

    /// (term, index) of the last committable entry, for lexicographic comparison.
    fn last_committable_swapped(&self) -> (View, SeqNo) {
        let (i, t) = self.last_committable();
        (t, i)
    }

    // ------------------------------------------------------------------ roles

    fn become_follower(&mut self, term: View, leader: Option<NodeId>, out: &mut Vec<Action>) {
        if term > self.term {
            self.voted_for = None;
        }
        self.term = term;
        self.role = Role::Follower;
        self.leader = leader.clone();
        self.votes.clear();
        self.peers.clear();
        self.reset_election_deadline();
        out.push(Action::BecameFollower { term, leader });
    }

    fn start_election(&mut self, out: &mut Vec<Action>) {
        self.term += 1;
        self.role = Role::Candidate;
        self.leader = None;
        self.voted_for = Some(self.id.clone());
        self.votes = BTreeSet::from([self.id.clone()]);
        self.reset_election_deadline();
        out.push(Action::BecameCandidate { term: self.term });
        if self.quorum_in_all(|n| self.votes.contains(n)) {
            self.become_leader(out);
            return;
        }
        let (lc, lc_term) = self.last_committable();
        for n in self.voters() {
            if n != self.id {
                out.push(Action::Send {
                    to: n,
                    message: Message::RequestVote {
                        term: self.term,
                        last_committable_idx: lc,
                        term_of_last_committable_idx: lc_term,
                        election_type: ElectionType::Regular,
                    },
                });
            }
        }
    }

    fn become_leader(&mut self, out: &mut Vec<Action>) {
        self.role = Role::Leader;
        self.leader = Some(self.id.clone());
        self.votes.clear();
        // CCF: the unsigned suffix is discarded before the new leader appends.
        let (lc, _) = self.last_committable();
        if lc < self.last_idx() {
            self.truncate(lc, out);
        }
        self.peers.clear();
        self.refresh_peers();
        self.last_heartbeat_ms = self.now_ms;
        self.last_check_quorum_ms = self.now_ms;
        out.push(Action::BecameLeader { term: self.term });
        let peers: Vec<NodeId> = self.peers.keys().cloned().collect();
        for p in peers {
            self.send_append_entries(&p, out);
        }
    }

    /// A leader replicates to every node of every active configuration.
    fn refresh_peers(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let next = self.last_idx() + 1;
        let voters = self.voters();
        self.peers.retain(|n, _| voters.contains(n));
        for n in voters {
            if n != self.id {
                // A peer counts as heard from when it joins the leader's view (elected by
                // it, or just added by a reconfiguration): CheckQuorum gives a new node one
                // election timeout to start answering before the leader steps down.
                self.peers.entry(n).or_insert(Peer {
                    next_idx: next,
                    match_idx: 0,
                    last_ack_ms: Some(self.now_ms),
                    probing: true,
                    fetching: None,
                });
            }
        }
    }

    /// Drops every entry after `to_idx`. Committed entries never go.
    fn truncate(&mut self, to_idx: SeqNo, out: &mut Vec<Action>) {
        assert!(
            to_idx >= self.commit_idx,
            "rollback to {to_idx} would discard committed entries (commit {})",
            self.commit_idx
        );
        self.data.truncate((to_idx - self.data_offset) as usize);
        self.last_idx = to_idx;
        self.terms.retain(|(start, _)| *start <= to_idx);
        self.committable.retain(|&i| i <= to_idx);
        self.config_history.retain(|(i, _)| *i <= to_idx);
        self.configurations.retain(|(i, _)| *i <= to_idx);
        self.persisted_idx = self.persisted_idx.min(to_idx);
        if let Some((_, upto)) = &mut self.ack_owed {
            *upto = (*upto).min(to_idx);
        }
        out.push(Action::Rollback { to_idx });
    }

    // ------------------------------------------------------------------ replication

    fn send_append_entries(&mut self, peer: &NodeId, out: &mut Vec<Action>) {
        let last = self.last_idx;
        let Some((next_idx, fetching)) = self.peers.get(peer).map(|p| (p.next_idx, p.fetching))
        else {
            return;
        };
        let next = next_idx.clamp(1, last + 1);
        if next <= self.data_offset {
            // The peer needs entries whose bytes are only in the ledger on disk: ask the host,
            // and meanwhile keep the peer answering (CheckQuorum) with an empty AppendEntries.
            if fetching != Some(next) {
                if let Some(p) = self.peers.get_mut(peer) {
                    p.fetching = Some(next);
                }
                let to_idx = self
                    .data_offset
                    .min(next + self.config.append_entries_batch_max as SeqNo - 1);
                out.push(Action::FetchEntries {
                    peer: peer.clone(),
                    from_idx: next,
                    to_idx,
                });
            }
            self.send_entries(peer, next, Vec::new(), out);
            return;
        }
        let mut entries: Vec<Entry> = Vec::new();
        let mut idx = next;
        while idx <= last && entries.len() < self.config.append_entries_batch_max {
            let e = self
                .entry(idx)
                .expect("bytes above the compaction point are in memory");
            // One term per message, as CCF.
            if entries.first().is_some_and(|f| f.term != e.term) {
                break;
            }
            entries.push(e);
            idx += 1;
        }
        self.send_entries(peer, next, entries, out);
    }

    /// Sends `entries` (consecutive from `first_idx`, one term) to `peer`.
    fn send_entries(
        &mut self,
        peer: &NodeId,
        first_idx: SeqNo,
        entries: Vec<Entry>,
        out: &mut Vec<Action>,
    ) {
        let prev_idx = first_idx - 1;
        let after = first_idx + entries.len() as SeqNo;
        // Pipelining: assume success and keep sending from here; a failure resets it.
        if let Some(p) = self.peers.get_mut(peer)
            && !p.probing
        {
            p.next_idx = p.next_idx.max(after);
        }
        out.push(Action::Send {
            to: peer.clone(),
            message: Message::AppendEntries {
                term: self.term,
                prev_idx,
                prev_term: self.term_at(prev_idx).expect("prev index is in the log"),
                leader_commit_idx: self.commit_idx,
                entries,
            },
        });
    }

    /// The host read entries from the ledger for a lagging peer.
    fn fetched(&mut self, peer: NodeId, from_idx: SeqNo, data: Vec<Bytes>, out: &mut Vec<Action>) {
        if self.role != Role::Leader
            || self
                .peers
                .get(&peer)
                .is_none_or(|p| p.fetching != Some(from_idx))
        {
            return;
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.fetching = None;
        }
        let mut entries: Vec<Entry> = Vec::new();
        for (k, bytes) in data.into_iter().enumerate() {
            let idx = from_idx + k as SeqNo;
            if idx > self.last_idx || entries.len() >= self.config.append_entries_batch_max {
                break;
            }
            let e = self.entry_with(idx, bytes);
            if entries.first().is_some_and(|f| f.term != e.term) {
                break;
            }
            entries.push(e);
        }
        if !entries.is_empty() {
            self.send_entries(&peer, from_idx, entries, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append_entries(
        &mut self,
        from: NodeId,
        term: View,
        prev_idx: SeqNo,
        prev_term: View,
        leader_commit_idx: SeqNo,
        entries: Vec<Entry>,
        out: &mut Vec<Action>,
    ) {
        let reply = |out: &mut Vec<Action>, term: View, last_log_idx: SeqNo, success: bool| {
            out.push(Action::Send {
                to: from.clone(),
                message: Message::AppendEntriesResponse {
                    term,
                    last_log_idx,
                    success,
                },
            });
        };
        if term < self.term {
            reply(out, self.term, self.last_idx(), false);
            return;
        }
        // Same term: there is one leader per term, and it is the sender.
        assert!(
            self.role != Role::Leader,
            "two leaders in term {term}: {} and {from}",
            self.id
        );
        if self.role != Role::Follower || self.leader.as_ref() != Some(&from) {
            self.become_follower(term, Some(from.clone()), out);
        }
        self.reset_election_deadline();
        if prev_idx > self.last_idx() {
            reply(out, self.term, self.last_idx(), false);
            return;
        }
        if self.term_at(prev_idx) != Some(prev_term) {
            // Answer the latest index that may still match: at or below the commit index
            // everything matches.
            // Skip the whole run of the conflicting term, and anything newer than prev_term.
            let conflicting = self.term_at(prev_idx);
            let mut hint = prev_idx - 1;
            while hint > self.commit_idx
                && self
                    .term_at(hint)
                    .is_some_and(|t| Some(t) == conflicting || t > prev_term)
            {
                hint -= 1;
            }
            reply(out, self.term, hint, false);
            return;
        }
        let mut first_new = None;
        for (k, e) in entries.iter().enumerate() {
            let idx = prev_idx + 1 + k as SeqNo;
            match self.term_at(idx) {
                Some(t) if idx <= self.last_idx() && t == e.term => continue,
                _ => {
                    if idx <= self.last_idx() {
                        self.truncate(idx - 1, out);
                    }
                    first_new = Some(k);
                    break;
                }
            }
        }
        if let Some(k) = first_new {
            let first_idx = prev_idx + 1 + k as SeqNo;
            let appended: Vec<Entry> = entries[k..].to_vec();
            for e in &appended {
                self.push_entry(e.clone());
            }
            out.push(Action::Append {
                first_idx,
                entries: appended,
            });
        }
        let matched = prev_idx + entries.len() as SeqNo;
        // Commit what the leader committed, as far as this message proves the logs agree.
        let bound = leader_commit_idx.min(matched);
        if let Some(&c) = self.committable.range(..=bound).next_back()
            && c > self.commit_idx
        {
            self.commit(c, out);
        }
        if self.persisted_idx >= matched {
            reply(out, self.term, matched, true);
        } else {
            self.ack_owed = Some((from, matched));
        }
    }

    fn on_append_entries_response(
        &mut self,
        from: NodeId,
        term: View,
        last_log_idx: SeqNo,
        success: bool,
        out: &mut Vec<Action>,
    ) {
        if self.role != Role::Leader || term != self.term {
            return;
        }
        let now = self.now_ms;
        let last = self.last_idx();
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        p.last_ack_ms = Some(now);
        if success {
            let acked = last_log_idx.min(last);
            p.match_idx = p.match_idx.max(acked);
            p.next_idx = p.next_idx.max(acked + 1);
            if p.probing {
                p.probing = false;
                if p.next_idx <= last {
                    self.send_append_entries(&from, out);
                }
            }
            self.advance_leader_commit(out);
        } else {
            let next = (last_log_idx + 1).max(p.match_idx + 1).min(last + 1);
            if !p.probing || next < p.next_idx {
                p.probing = true;
                p.next_idx = next;
                self.send_append_entries(&from, out);
            }
        }
    }

    fn advance_leader_commit(&mut self, out: &mut Vec<Action>) {
        if self.role != Role::Leader {
            return;
        }
        let replicated = |r: &Raft, idx: SeqNo| {
            r.quorum_in_all(|n| {
                if *n == r.id {
                    r.persisted_idx >= idx
                } else {
                    r.peers.get(n).is_some_and(|p| p.match_idx >= idx)
                }
            })
        };
        let candidates: Vec<SeqNo> = self
            .committable
            .range(self.commit_idx + 1..)
            .rev()
            .copied()
            .collect();
        for c in candidates {
            // Only entries of the leader's own term commit by counting replicas (Raft §5.4.2).
            if self.term_at(c) == Some(self.term) && replicated(self, c) {
                self.commit(c, out);
                break;
            }
        }
    }

    fn commit(&mut self, idx: SeqNo, out: &mut Vec<Action>) {
        assert!(idx > self.commit_idx && self.committable.contains(&idx));
        self.commit_idx = idx;
        out.push(Action::Commit { idx });
        // Configurations before the last committed one are no longer active.
        if let Some(pos) = self.configurations.iter().rposition(|(i, _)| *i <= idx) {
            self.configurations.drain(..pos);
        }
        if self.role == Role::Leader {
            self.refresh_peers();
        }
        self.compact();
        if self.was_voter && !self.is_voter() {
            self.retire(out);
        }
    }

    /// Drops the bytes of committed, durable entries; the ledger on disk still has them. A
    /// leader keeps what its live peers still lack, so only peers that fell behind (or were
    /// away) cost ledger reads.
    fn compact(&mut self) {
        let mut to = self.commit_idx.min(self.persisted_idx);
        if self.role == Role::Leader {
            let since = self.now_ms.saturating_sub(self.config.election_timeout_ms);
            for p in self.peers.values() {
                if p.last_ack_ms.is_some_and(|t| t >= since) {
                    to = to.min(p.match_idx);
                }
            }
        }
        if to > self.data_offset {
            self.data.drain(..(to - self.data_offset) as usize);
            self.data_offset = to;
        }
    }

    /// Leaves the service: a leader first asks the most up-to-date remaining node to stand.
    fn retire(&mut self, out: &mut Vec<Action>) {
        if self.role == Role::Leader {
            // Bring everyone up to date with the commit first.
            let peers: Vec<NodeId> = self.peers.keys().cloned().collect();
            for p in &peers {
                self.send_append_entries(p, out);
            }
            if let Some((successor, _)) = self
                .peers
                .iter()
                .max_by_key(|(n, p)| (p.match_idx, std::cmp::Reverse((*n).clone())))
            {
                out.push(Action::Send {
                    to: successor.clone(),
                    message: Message::ProposeRequestVote { term: self.term },
                });
            }
        }
        // What this node holds beyond the commit is not its to keep: the remaining nodes decide
        // it. Dropping it also keeps this node's vote from blocking a successor that lacks it.
        if self.last_idx > self.commit_idx {
            self.truncate(self.commit_idx, out);
        }
        self.role = Role::Retired;
        self.was_voter = false;
        self.leader = None;
        self.peers.clear();
        out.push(Action::Retired);
    }

    fn on_request_vote(
        &mut self,
        from: NodeId,
        term: View,
        candidate_last_committable: (View, SeqNo),
        out: &mut Vec<Action>,
    ) {
        let granted = term == self.term
            && self.role == Role::Follower
            && self.voted_for.as_ref().is_none_or(|v| *v == from)
            && candidate_last_committable >= self.last_committable_swapped();
        if granted {
            self.voted_for = Some(from.clone());
            self.reset_election_deadline();
        }
        out.push(Action::Send {
            to: from,
            message: Message::RequestVoteResponse {
                term: self.term,
                vote_granted: granted,
                election_type: ElectionType::Regular,
            },
        });
    }
}
