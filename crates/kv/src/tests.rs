use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// One step of a scenario.
#[derive(Clone, Debug)]
enum Op {
    /// Begin transaction number i.
    Begin(usize),
    Put(usize, &'static str, &'static str, &'static str),
    Remove(usize, &'static str, &'static str),
    Get(usize, &'static str, &'static str, Option<&'static str>),
    Size(usize, &'static str, usize),
    Clear(usize, &'static str),
    /// Commit tx i; expect Ok(Some(seqno)) = committed at seqno, Ok(None) = read-only, Err = conflict.
    Commit(usize, Result<Option<u64>, ()>),
    Rollback(u64),
    Compact(u64),
    /// Expect the store's content (map -> key -> value).
    State(&'static [(&'static str, &'static str, &'static str)]),
}

fn run(name: &str, ops: &[Op]) {
    let mut store = Store::new();
    let mut txs: BTreeMap<usize, Tx> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        let ctx = format!("scenario {name:?}, step {i} {op:?}");
        match op {
            Op::Begin(t) => {
                txs.insert(*t, store.begin());
            }
            Op::Put(t, m, k, v) => txs.get_mut(t).unwrap().put(m, b(k), b(v)),
            Op::Remove(t, m, k) => {
                txs.get_mut(t).unwrap().remove(m, k.as_bytes());
            }
            Op::Get(t, m, k, want) => assert_eq!(
                txs.get_mut(t).unwrap().get(m, k.as_bytes()),
                want.map(b),
                "{ctx}"
            ),
            Op::Size(t, m, want) => assert_eq!(txs.get_mut(t).unwrap().size(m), *want, "{ctx}"),
            Op::Clear(t, m) => txs.get_mut(t).unwrap().clear(m),
            Op::Commit(t, want) => {
                let tx = txs.remove(t).unwrap();
                let next = store.current_version() + 1;
                let got = match store.commit(tx, next) {
                    Ok(CommitResult::ReadOnly) => Ok(None),
                    Ok(CommitResult::Committed { .. }) => Ok(Some(store.current_version())),
                    Err(_) => Err(()),
                };
                assert_eq!(got, *want, "{ctx}");
            }
            Op::Rollback(v) => store.rollback(*v).unwrap(),
            Op::Compact(v) => store.compact(*v),
            Op::State(want) => {
                let snap = store.snapshot();
                let got: Vec<(String, String, String)> = snap
                    .iter()
                    .map(|(m, k, _, v)| {
                        (
                            m.to_owned(),
                            String::from_utf8_lossy(k).into(),
                            String::from_utf8_lossy(v).into(),
                        )
                    })
                    .collect();
                let want: Vec<(String, String, String)> = want
                    .iter()
                    .map(|(m, k, v)| (m.to_string(), k.to_string(), v.to_string()))
                    .collect();
                assert_eq!(got, want, "{ctx}");
            }
        }
    }
}

#[test]
fn scenarios() {
    use Op::*;
    let cases: &[(&str, &[Op])] = &[
        (
            "put then read back",
            &[
                Begin(0),
                Put(0, "m", "k", "v"),
                Get(0, "m", "k", Some("v")),
                Commit(0, Ok(Some(1))),
                State(&[("m", "k", "v")]),
            ],
        ),
        (
            "read-only consumes no seqno",
            &[
                Begin(0),
                Get(0, "m", "k", None),
                Commit(0, Ok(None)),
                Begin(1),
                Put(1, "m", "k", "v"),
                Commit(1, Ok(Some(1))),
            ],
        ),
        (
            "remove of absent key is no write",
            &[Begin(0), Remove(0, "m", "nope"), Commit(0, Ok(None))],
        ),
        (
            "put then remove in one tx of a new key is no write",
            &[
                Begin(0),
                Put(0, "m", "k", "v"),
                Remove(0, "m", "k"),
                Commit(0, Ok(None)),
            ],
        ),
        (
            "remove after commit",
            &[
                Begin(0),
                Put(0, "m", "k", "v"),
                Commit(0, Ok(Some(1))),
                Begin(1),
                Remove(1, "m", "k"),
                Get(1, "m", "k", None),
                Commit(1, Ok(Some(2))),
                State(&[]),
            ],
        ),
        (
            "re-put after remove",
            &[
                Begin(0),
                Put(0, "m", "k", "1"),
                Commit(0, Ok(Some(1))),
                Begin(1),
                Remove(1, "m", "k"),
                Put(1, "m", "k", "2"),
                Commit(1, Ok(Some(2))),
                State(&[("m", "k", "2")]),
            ],
        ),
        (
            "point read conflict",
            &[
                Begin(0),
                Begin(1),
                Get(0, "m", "k", None),
                Put(0, "m", "x", "1"),
                Put(1, "m", "k", "v"),
                Commit(1, Ok(Some(1))),
                Commit(0, Err(())),
            ],
        ),
        (
            "blind writes do not conflict",
            &[
                Begin(0),
                Begin(1),
                Put(0, "m", "a", "1"),
                Put(1, "m", "a", "2"),
                Commit(1, Ok(Some(1))),
                Commit(0, Ok(Some(2))),
                State(&[("m", "a", "1")]),
            ],
        ),
        (
            "read of another key does not conflict",
            &[
                Begin(0),
                Begin(1),
                Get(0, "m", "a", None),
                Put(0, "m", "x", "1"),
                Put(1, "m", "b", "2"),
                Commit(1, Ok(Some(1))),
                Commit(0, Ok(Some(2))),
            ],
        ),
        (
            "phantom: size then insert elsewhere",
            &[
                Begin(0),
                Begin(1),
                Size(0, "m", 0),
                Put(0, "n", "x", "1"),
                Put(1, "m", "b", "2"),
                Commit(1, Ok(Some(1))),
                Commit(0, Err(())),
            ],
        ),
        (
            "iteration of other map does not conflict",
            &[
                Begin(0),
                Begin(1),
                Size(0, "m", 0),
                Put(0, "n", "x", "1"),
                Put(1, "o", "b", "2"),
                Commit(1, Ok(Some(1))),
                Commit(0, Ok(Some(2))),
            ],
        ),
        (
            "size sees own writes",
            &[
                Begin(0),
                Put(0, "m", "a", "1"),
                Commit(0, Ok(Some(1))),
                Begin(1),
                Put(1, "m", "b", "2"),
                Remove(1, "m", "a"),
                Size(1, "m", 1),
            ],
        ),
        (
            "clear",
            &[
                Begin(0),
                Put(0, "m", "a", "1"),
                Put(0, "m", "b", "2"),
                Put(0, "n", "c", "3"),
                Commit(0, Ok(Some(1))),
                Begin(1),
                Clear(1, "m"),
                Size(1, "m", 0),
                Commit(1, Ok(Some(2))),
                State(&[("n", "c", "3")]),
            ],
        ),
        (
            "rollback then recommit",
            &[
                Begin(0),
                Put(0, "m", "a", "1"),
                Commit(0, Ok(Some(1))),
                Begin(1),
                Put(1, "m", "a", "2"),
                Commit(1, Ok(Some(2))),
                Rollback(1),
                State(&[("m", "a", "1")]),
                Begin(2),
                Put(2, "m", "b", "3"),
                Commit(2, Ok(Some(2))),
                State(&[("m", "a", "1"), ("m", "b", "3")]),
            ],
        ),
        (
            "rollback to zero",
            &[
                Begin(0),
                Put(0, "m", "a", "1"),
                Commit(0, Ok(Some(1))),
                Rollback(0),
                State(&[]),
            ],
        ),
        (
            "compact keeps current state",
            &[
                Begin(0),
                Put(0, "m", "a", "1"),
                Commit(0, Ok(Some(1))),
                Begin(1),
                Put(1, "m", "a", "2"),
                Commit(1, Ok(Some(2))),
                Compact(2),
                State(&[("m", "a", "2")]),
                Rollback(2),
            ],
        ),
    ];
    for (name, ops) in cases {
        run(name, ops);
    }
}

#[test]
fn rollback_errors() {
    let mut s = Store::new();
    for i in 1..=3u64 {
        let mut tx = s.begin();
        tx.put("m", b("k"), Bytes::from(i.to_string()));
        s.commit(tx, i).unwrap();
    }
    assert_eq!(
        s.rollback(4),
        Err(KvError::RollbackAhead { to: 4, current: 3 })
    );
    s.compact(2);
    assert_eq!(s.compacted_version(), 2);
    assert_eq!(
        s.rollback(1),
        Err(KvError::RollbackBelowCompaction {
            to: 1,
            compacted: 2
        })
    );
    s.rollback(2).unwrap();
    assert_eq!(s.current_version(), 2);
}

#[test]
fn apply_requires_next_seqno() {
    let mut s = Store::new();
    let mut ws = WriteSet::default();
    ws.put("public:m", b("k"), b("v"));
    assert_eq!(
        s.apply(&ws, 2),
        Err(KvError::NotNext { current: 0, got: 2 })
    );
    s.apply(&ws, 1).unwrap();
    assert_eq!(s.begin().get("public:m", b"k"), Some(b("v")));
}

#[test]
fn write_set_is_canonical() {
    let mut s = Store::new();
    let mut tx = s.begin();
    tx.put("m", b("old"), b("x"));
    s.commit(tx, 1).unwrap();
    let mut tx = s.begin();
    tx.put("z", b("b"), b("1"));
    tx.put("a", b("b"), b("first"));
    tx.put("a", b("b"), b("final"));
    tx.put("a", b("a"), b("2"));
    tx.remove("m", b"old");
    tx.remove("m", b"never");
    let ws = tx.write_set();
    let flat: Vec<(String, String, Option<String>)> = ws
        .maps
        .iter()
        .flat_map(|(m, c)| {
            c.writes.iter().map(move |(k, v)| {
                (
                    m.clone(),
                    String::from_utf8_lossy(k).into(),
                    v.as_ref().map(|v| String::from_utf8_lossy(v).into()),
                )
            })
        })
        .collect();
    assert_eq!(
        flat,
        vec![
            ("a".into(), "a".into(), Some("2".into())),
            ("a".into(), "b".into(), Some("final".into())),
            ("m".into(), "old".into(), None),
            ("z".into(), "b".into(), Some("1".into())),
        ]
    );
}

#[test]
fn snapshot_round_trip_and_bad_input() {
    let mut s = Store::new();
    for i in 1..=5u64 {
        let mut tx = s.begin();
        tx.put(
            if i % 2 == 0 { "public:a" } else { "b" },
            Bytes::from(format!("k{i}")),
            Bytes::from(vec![i as u8; i as usize]),
        );
        s.commit(tx, i).unwrap();
    }
    let snap = s.snapshot();
    assert_eq!(snap.len(), 5);
    // Load it back through the builder, keys in reverse order (a CCF file orders them by hash).
    let mut b = SnapshotBuilder::new(snap.version());
    for (name, last_change, entries) in snap.maps() {
        let mut entries: Vec<_> = entries
            .map(|(k, v, val)| (k.clone(), v, val.clone()))
            .collect();
        entries.reverse();
        b.map(name, last_change, entries).unwrap();
    }
    let back = b.finish();
    assert_eq!(
        back.iter()
            .map(|(m, k, v, val)| (m.to_owned(), k.clone(), v, val.clone()))
            .collect::<Vec<_>>(),
        snap.iter()
            .map(|(m, k, v, val)| (m.to_owned(), k.clone(), v, val.clone()))
            .collect::<Vec<_>>(),
    );
    let restored = Store::from_snapshot(&back);
    assert_eq!(restored.current_version(), 5);
    assert_eq!(
        restored.begin().get("b", b"k3"),
        Some(Bytes::from(vec![3u8; 3]))
    );
    // Versions carry over: a transaction reading k3 conflicts with a later write of it.
    assert_eq!(
        restored.begin().get_version_of_previous_write("b", b"k3"),
        Some(3)
    );

    let mut b = SnapshotBuilder::new(5);
    b.map("m", 1, []).unwrap();
    assert_eq!(
        b.map("m", 1, []).unwrap_err(),
        SnapshotError::DuplicateMap("m".into())
    );
    let dup = (Bytes::from_static(b"k"), 1, Bytes::new());
    assert!(matches!(
        b.map("n", 1, [dup.clone(), dup]).unwrap_err(),
        SnapshotError::DuplicateKey { .. }
    ));
    assert!(matches!(
        b.map("o", 6, []).unwrap_err(),
        SnapshotError::VersionAhead { version: 6, .. }
    ));
    assert!(matches!(
        b.map("p", 1, [(Bytes::new(), 9, Bytes::new())])
            .unwrap_err(),
        SnapshotError::VersionAhead { version: 9, .. }
    ));
}

// ---- model-based property test ----

type Model = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Clone, Debug)]
enum POp {
    Write(Vec<(u8, u8, Option<u8>)>),
    Rollback(u8),
    Compact(u8),
    Apply(Vec<(u8, u8, Option<u8>)>),
}

fn pop() -> impl Strategy<Value = POp> {
    let change = (0u8..3, 0u8..6, proptest::option::of(0u8..4));
    prop_oneof![
        4 => proptest::collection::vec(change.clone(), 0..5).prop_map(POp::Write),
        1 => (0u8..10).prop_map(POp::Rollback),
        1 => (0u8..10).prop_map(POp::Compact),
        1 => proptest::collection::vec(change, 1..4).prop_map(POp::Apply),
    ]
}

type Listing = Vec<(String, Version, Vec<(Vec<u8>, Version, Vec<u8>)>)>;

fn list(store: &Store) -> Listing {
    list_snapshot(&store.snapshot())
}

fn list_snapshot(snapshot: &StoreSnapshot) -> Listing {
    snapshot
        .maps()
        .map(|(name, last_change, entries)| {
            (
                name.to_owned(),
                last_change,
                entries
                    .map(|(k, v, val)| (k.to_vec(), v, val.to_vec()))
                    .collect(),
            )
        })
        .collect()
}

fn map_name(m: u8) -> String {
    if m == 0 {
        "public:p".into()
    } else {
        format!("priv{m}")
    }
}

proptest! {
    #[test]
    fn store_matches_model(ops in proptest::collection::vec(pop(), 1..40)) {
        let mut store = Store::new();
        // history[v] = model state at version v
        let mut history: Vec<Model> = vec![Model::new()];
        let mut compacted = 0u64;
        // listing[v] = everything the store held at version v, map versions included: a
        // rollback must restore it exactly (snapshots of it are hashed).
        let mut listing: Vec<Listing> = vec![list(&store)];
        // Snapshots taken along the way: later writes and rollbacks must not change them.
        let mut held: Vec<(StoreSnapshot, Listing)> = Vec::new();
        for op in ops {
            match op {
                POp::Write(changes) | POp::Apply(changes) if changes.is_empty() => {
                    let tx = store.begin();
                    prop_assert_eq!(store.commit(tx, store.current_version() + 1).unwrap(), CommitResult::ReadOnly);
                }
                POp::Write(changes) => {
                    let mut tx = store.begin();
                    let mut model = history.last().unwrap().clone();
                    for (m, k, v) in &changes {
                        let (name, key) = (map_name(*m), vec![*k]);
                        match v {
                            Some(v) => { tx.put(&name, Bytes::from(key.clone()), Bytes::from(vec![*v])); model.entry(name).or_default().insert(key, vec![*v]); }
                            None => { tx.remove(&name, &key); if let Some(mm) = model.get_mut(&name) { mm.remove(&key); } }
                        }
                    }
                    model.retain(|_, m| !m.is_empty());
                    let next = store.current_version() + 1;
                    match store.commit(tx, next).unwrap() {
                        CommitResult::ReadOnly => prop_assert_eq!(&model, history.last().unwrap()),
                        CommitResult::Committed { .. } => history.push(model),
                    }
                }
                POp::Apply(changes) => {
                    let mut ws = WriteSet::default();
                    let mut model = history.last().unwrap().clone();
                    for (m, k, v) in &changes {
                        let (name, key) = (map_name(*m), vec![*k]);
                        match v {
                            Some(v) => { ws.put(&name, Bytes::from(key.clone()), Bytes::from(vec![*v])); model.entry(name).or_default().insert(key, vec![*v]); }
                            None => { ws.remove(&name, Bytes::from(key.clone())); if let Some(mm) = model.get_mut(&name) { mm.remove(&key); } }
                        }
                    }
                    model.retain(|_, m| !m.is_empty());
                    store.apply(&ws, store.current_version() + 1).unwrap();
                    history.push(model);
                }
                POp::Rollback(to) => {
                    let to = u64::from(to);
                    let current = store.current_version();
                    let r = store.rollback(to);
                    if to > current || to < compacted {
                        prop_assert!(r.is_err());
                    } else {
                        prop_assert!(r.is_ok());
                        history.truncate(to as usize + 1);
                    }
                }
                POp::Compact(up_to) => {
                    let up_to = u64::from(up_to).min(store.current_version());
                    store.compact(up_to);
                    compacted = compacted.max(up_to);
                    prop_assert_eq!(store.compacted_version(), compacted);
                }
            }
            prop_assert_eq!(store.current_version() as usize, history.len() - 1);
            listing.truncate(history.len());
            if listing.len() < history.len() {
                listing.push(list(&store));
            }
            prop_assert_eq!(&list(&store), listing.last().unwrap());
            held.push((store.snapshot(), list(&store)));
            let mut got = Model::new();
            for (m, k, _, v) in store.snapshot().iter() {
                got.entry(m.to_owned()).or_default().insert(k.to_vec(), v.to_vec());
            }
            prop_assert_eq!(&got, history.last().unwrap());
        }
        for (snapshot, listed) in &held {
            prop_assert_eq!(&list_snapshot(snapshot), listed);
        }
    }
}

#[test]
fn replacing_private_maps_keeps_public_ones_and_survives_rollback() {
    let ws = |pairs: &[(&str, &str, &str)]| {
        let mut tx = Store::new().begin();
        for (m, k, v) in pairs {
            tx.put(m, b(k), b(v));
        }
        tx.write_set()
    };
    let mut store = Store::new();
    store
        .apply(&ws(&[("public:p", "a", "1"), ("priv", "x", "new")]), 1)
        .unwrap();
    store.apply(&ws(&[("public:p", "b", "2")]), 2).unwrap();
    let mut recovered = Store::new();
    recovered.apply(&ws(&[("priv", "y", "old")]), 1).unwrap();
    recovered.apply(&ws(&[("other", "z", "old")]), 2).unwrap();
    store.replace_private_maps(&recovered);
    let check = |store: &Store, public: &[&str], z: Option<Bytes>| {
        let mut tx = store.begin();
        assert_eq!(tx.get("priv", b"x"), None);
        assert_eq!(tx.get("priv", b"y"), Some(b("old")));
        assert_eq!(tx.get("other", b"z"), z);
        for k in public {
            assert!(tx.get("public:p", k.as_bytes()).is_some(), "{k}");
        }
    };
    check(&store, &["a", "b"], Some(b("old")));
    assert_eq!(
        store.begin().get_version_of_previous_write("other", b"z"),
        Some(2)
    );
    // Each retained version takes the replayed maps as of that version: rolling back drops
    // the private write of version 2 with the public one.
    store.rollback(1).unwrap();
    check(&store, &["a"], None);
    assert_eq!(store.current_version(), 1);
}
