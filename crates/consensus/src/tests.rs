//! Scenario tests of single decisions; whole-cluster behaviour is in `tests/sim.rs`.

use super::*;

fn cfg() -> Config {
    Config {
        message_timeout_ms: 10,
        election_timeout_ms: 100,
        append_entries_batch_max: 4,
    }
}

fn conf(ids: &[&str]) -> Option<Configuration> {
    Some(Arc::new(ids.iter().map(|s| s.to_string()).collect()))
}

fn data(s: &str) -> Bytes {
    Bytes::from(s.to_owned())
}

fn sends(out: &[Action]) -> Vec<(NodeId, Message)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Send { to, message } => Some((to.clone(), message.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn single_node_commits_at_signatures_only_once_durable() {
    let mut r = Raft::new_service("a".into(), cfg(), 1, 0);
    let mut out = Vec::new();
    assert_eq!(r.propose(false, conf(&["a"]), data("genesis")), Ok(1));
    assert_eq!(r.propose(false, None, data("tx")), Ok(2));
    r.step(Input::Persisted { idx: 2 }, &mut out);
    assert_eq!(r.commit_idx(), 0, "no signature yet");
    assert_eq!(r.propose(true, None, data("sig")), Ok(3));
    r.step(Input::Persisted { idx: 2 }, &mut out);
    assert_eq!(r.commit_idx(), 0, "signature not durable");
    r.step(Input::Persisted { idx: 3 }, &mut out);
    assert_eq!(r.commit_idx(), 3);
    assert!(out.contains(&Action::Commit { idx: 3 }));
}

#[test]
fn follower_rolls_back_a_conflicting_suffix_and_acks_once_durable() {
    let mut f = Raft::new_joiner("b".into(), cfg(), 2, 0);
    let mut out = Vec::new();
    let e = |term, committable, d: &str| Entry {
        term,
        committable,
        configuration: None,
        data: data(d),
    };
    let mut first = e(2, false, "g");
    first.configuration = conf(&["a", "b"]);
    f.step(
        Input::Receive {
            from: "a".into(),
            message: Message::AppendEntries {
                term: 2,
                prev_idx: 0,
                prev_term: 0,
                leader_commit_idx: 0,
                entries: vec![first, e(2, true, "s"), e(2, false, "x")],
            },
        },
        &mut out,
    );
    assert_eq!(f.last_idx(), 3);
    assert!(
        sends(&out).is_empty(),
        "no ack before the entries are durable"
    );
    out.clear();
    f.step(Input::Persisted { idx: 3 }, &mut out);
    assert_eq!(
        sends(&out),
        vec![(
            "a".to_owned(),
            Message::AppendEntriesResponse {
                term: 2,
                last_log_idx: 3,
                success: true
            }
        )]
    );
    // A new leader in term 3 replaces entry 3 (unsigned, term 2) and commits 2.
    out.clear();
    f.step(
        Input::Receive {
            from: "c".into(),
            message: Message::AppendEntries {
                term: 3,
                prev_idx: 2,
                prev_term: 2,
                leader_commit_idx: 2,
                entries: vec![e(3, true, "s3")],
            },
        },
        &mut out,
    );
    assert!(out.contains(&Action::Rollback { to_idx: 2 }), "{out:?}");
    assert!(out.contains(&Action::Append {
        first_idx: 3,
        entries: vec![e(3, true, "s3")]
    }));
    assert!(out.contains(&Action::Commit { idx: 2 }));
    assert_eq!(f.persisted_idx(), 2, "rollback lowers what is durable");
    assert_eq!(f.leader(), Some(&"c".to_owned()));
    assert_eq!(f.term(), 3);
}

#[test]
fn votes_compare_the_last_committable_entry() {
    let mut r = Raft::new_service("a".into(), cfg(), 3, 0);
    let mut out = Vec::new();
    r.propose(false, conf(&["a", "b", "c"]), data("g")).unwrap();
    r.propose(true, None, data("s")).unwrap();
    r.propose(false, None, data("unsigned")).unwrap();
    // A candidate whose last committable entry is older loses, even with a longer log.
    let vote = |r: &mut Raft, term, lc, lc_term, out: &mut Vec<Action>| {
        out.clear();
        r.step(
            Input::Receive {
                from: "b".into(),
                message: Message::RequestVote {
                    term,
                    last_committable_idx: lc,
                    term_of_last_committable_idx: lc_term,
                    election_type: ElectionType::Regular,
                },
            },
            out,
        );
        sends(out).into_iter().find_map(|(_, m)| match m {
            Message::RequestVoteResponse { vote_granted, .. } => Some(vote_granted),
            _ => None,
        })
    };
    assert_eq!(vote(&mut r, 3, 1, 2, &mut out), Some(false));
    assert_eq!(r.role(), Role::Follower, "a higher term deposes the leader");
    // Same last committable entry (2 in term 2): granted, even though 3 is unsigned here.
    assert_eq!(vote(&mut r, 4, 2, 2, &mut out), Some(true));
    // One vote per term.
    out.clear();
    r.step(
        Input::Receive {
            from: "c".into(),
            message: Message::RequestVote {
                term: 4,
                last_committable_idx: 9,
                term_of_last_committable_idx: 3,
                election_type: ElectionType::Regular,
            },
        },
        &mut out,
    );
    assert!(matches!(
        sends(&out)[0].1,
        Message::RequestVoteResponse {
            vote_granted: false,
            ..
        }
    ));
}

#[test]
fn a_new_leader_discards_its_unsigned_suffix() {
    let mut r = Raft::new_joiner("b".into(), cfg(), 4, 0);
    let mut out = Vec::new();
    let mut g = Entry {
        term: 2,
        committable: false,
        configuration: conf(&["a", "b", "c"]),
        data: data("g"),
    };
    let s = Entry {
        term: 2,
        committable: true,
        configuration: None,
        data: data("s"),
    };
    let u = Entry {
        term: 2,
        committable: false,
        configuration: None,
        data: data("u"),
    };
    g.term = 2;
    r.step(
        Input::Receive {
            from: "a".into(),
            message: Message::AppendEntries {
                term: 2,
                prev_idx: 0,
                prev_term: 0,
                leader_commit_idx: 0,
                entries: vec![g, s, u],
            },
        },
        &mut out,
    );
    r.step(Input::Persisted { idx: 3 }, &mut out);
    // The leader goes quiet; b stands and wins c's vote.
    out.clear();
    r.step(Input::Tick { now_ms: 1_000 }, &mut out);
    assert_eq!(r.role(), Role::Candidate);
    assert_eq!(r.term(), 3);
    let votes = sends(&out);
    assert_eq!(votes.len(), 2, "asks a and c: {votes:?}");
    assert!(matches!(
        votes[0].1,
        Message::RequestVote {
            last_committable_idx: 2,
            term_of_last_committable_idx: 2,
            ..
        }
    ));
    out.clear();
    r.step(
        Input::Receive {
            from: "c".into(),
            message: Message::RequestVoteResponse {
                term: 3,
                vote_granted: true,
                election_type: ElectionType::Regular,
            },
        },
        &mut out,
    );
    assert_eq!(r.role(), Role::Leader);
    assert_eq!(out[0], Action::Rollback { to_idx: 2 });
    assert!(out.contains(&Action::BecameLeader { term: 3 }));
    assert_eq!(r.last_idx(), 2);
}

#[test]
fn check_quorum_deposes_an_isolated_leader() {
    let mut r = Raft::new_service("a".into(), cfg(), 5, 0);
    let mut out = Vec::new();
    r.propose(false, conf(&["a", "b", "c"]), data("g")).unwrap();
    r.propose(true, None, data("s")).unwrap();
    r.step(Input::Tick { now_ms: 50 }, &mut out);
    assert_eq!(r.role(), Role::Leader);
    r.step(Input::Tick { now_ms: 101 }, &mut out);
    assert_eq!(r.role(), Role::Follower);
    assert_eq!(r.term(), FIRST_VIEW, "steps down in the same term");
}

#[test]
fn check_quorum_gives_a_node_added_by_reconfiguration_one_election_timeout() {
    let mut r = Raft::new_service("a".into(), cfg(), 5, 0);
    let mut out = Vec::new();
    r.propose(false, conf(&["a"]), data("g")).unwrap();
    r.propose(true, None, data("s")).unwrap();
    r.step(Input::Persisted { idx: 2 }, &mut out);
    r.step(Input::Tick { now_ms: 90 }, &mut out);
    // At 90 ms, b is added (it still has to start and catch up). The check at 150 ms counts it
    // as heard (since 90 ms); the next one, at 251 ms, does not: b never answered.
    r.propose(false, conf(&["a", "b"]), data("trust b"))
        .unwrap();
    r.step(Input::Tick { now_ms: 150 }, &mut out);
    assert_eq!(r.role(), Role::Leader);
    r.step(Input::Tick { now_ms: 240 }, &mut out);
    assert_eq!(r.role(), Role::Leader);
    r.step(Input::Tick { now_ms: 251 }, &mut out);
    assert_eq!(r.role(), Role::Follower, "b never answered");
}

#[test]
fn a_removed_leader_retires_after_the_new_configuration_commits() {
    let mut r = Raft::new_service("a".into(), cfg(), 6, 0);
    let mut out = Vec::new();
    r.propose(false, conf(&["a", "b"]), data("g")).unwrap();
    r.propose(true, None, data("s")).unwrap();
    r.step(Input::Persisted { idx: 2 }, &mut out);
    let ack = |r: &mut Raft, idx, out: &mut Vec<Action>| {
        r.step(
            Input::Receive {
                from: "b".into(),
                message: Message::AppendEntriesResponse {
                    term: 2,
                    last_log_idx: idx,
                    success: true,
                },
            },
            out,
        )
    };
    ack(&mut r, 2, &mut out);
    assert_eq!(r.commit_idx(), 2);
    // Reconfigure to {b}: both configurations must agree until it commits.
    r.propose(false, conf(&["b"]), data("remove a")).unwrap();
    r.propose(true, None, data("s2")).unwrap();
    r.step(Input::Persisted { idx: 4 }, &mut out);
    assert_eq!(
        r.commit_idx(),
        2,
        "b has not acknowledged: no quorum in {{b}}"
    );
    out.clear();
    ack(&mut r, 4, &mut out);
    assert_eq!(r.commit_idx(), 4);
    assert_eq!(r.role(), Role::Retired);
    assert!(
        sends(&out)
            .iter()
            .any(|(to, m)| to == "b" && matches!(m, Message::ProposeRequestVote { term: 2 })),
        "{out:?}"
    );
}
