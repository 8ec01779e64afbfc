//! Snapshots across real `coco node` processes: the primary writes CCF-format snapshot files that
//! CCF's own reader verifies (`read_ledger.py --snapshot` checks the appended receipt), serves
//! them at `/node/snapshot` with CCF's redirect and ranges, and a node joining a 2-node service
//! starts from the latest one: its ledger starts after the snapshot, verifies with
//! `read_ledger.py` at MERKLE level (the others' at FULL), its committed chunks are the others',
//! byte for byte, and it serves receipts from before its snapshot out of
//! `ledger.read_only_directories`.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Options, TestNode, trust_pending, txid_of};

fn committed_snapshots(node: &TestNode) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(node.path("snapshots"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".committed"))
                .collect()
        })
        .unwrap_or_default();
    names.sort_by_key(|n| coco_codec::snapshot::SnapshotName::parse(n).unwrap().seqno);
    names
}

fn read_ledger(args: &[&std::ffi::OsStr]) -> String {
    let script = support::ccf_python()
        .parent()
        .unwrap()
        .join("read_ledger.py");
    let out = Command::new(&script).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "read_ledger.py {args:?} failed:\n{text}"
    );
    text
}

#[test]
fn a_joiner_starts_from_the_primarys_snapshot_which_ccf_verifies() {
    let opts = Options {
        sig_tx_count: 10,
        chunk_size: "16KB".into(),
        snapshot_tx_count: Some(50),
        election_timeout_ms: 3000,
        ..Options::default()
    };
    let nodes = TestNode::cluster(2, opts.clone());
    let (primary, backup) = (&nodes[0], &nodes[1]);
    let mut conn = primary.user();
    let mut first_txid = String::new();
    for i in 0..150u64 {
        let r = conn
            .post_json(
                "/app/log/private",
                &json!({"id": i, "msg": format!("m{i}")}),
            )
            .unwrap();
        assert_eq!(r.status, 200);
        if i == 0 {
            first_txid = txid_of(&r);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while committed_snapshots(primary).len() < 2 {
        assert!(Instant::now() < deadline, "no snapshots: {}", primary.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Snapshots still in flight commit too: wait until the set settles.
    let mut seen = committed_snapshots(primary);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now_seen = committed_snapshots(primary);
        if now_seen == seen {
            break;
        }
        seen = now_seen;
    }
    let latest = seen.pop().unwrap();
    let path = primary.path("snapshots").join(&latest);
    let file = std::fs::read(&path).unwrap();

    // CCF's reader parses the snapshot and verifies its receipt (claims digest = snapshot hash,
    // path to the signed root, the node's signature).
    let out = read_ledger(&["--snapshot".as_ref(), path.as_os_str()]);
    assert!(out.contains("(committed)"), "{out}");

    // /node/snapshot: 308 to the latest committed one; HEAD gives its size; ranges as CCF's.
    let mut anon = primary.anonymous();
    let r = anon.get("/node/snapshot").unwrap();
    assert_eq!(r.status, 308, "{}", r.text());
    let location = r.header("location").unwrap().to_owned();
    assert_eq!(location, format!("/node/snapshot/{latest}"));
    let r = anon
        .request(coco_client::Method::HEAD, &location, &[], Vec::<u8>::new())
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length").unwrap(), file.len().to_string());
    let r = anon
        .request(
            coco_client::Method::GET,
            &location,
            &[("range", "bytes=10-100")],
            Vec::<u8>::new(),
        )
        .unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(&r.body[..], &file[10..100]);
    assert_eq!(
        r.header("content-range").unwrap(),
        format!("bytes 10-100/{}", file.len())
    );
    let since = coco_codec::snapshot::SnapshotName::parse(&latest)
        .unwrap()
        .seqno;
    let r = anon.get(&format!("/node/snapshot?since={since}")).unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "ResourceNotFound");
    for bad in [
        "/node/snapshot/../ledger",
        "/node/snapshot/snapshot_1_2.committed",
    ] {
        assert_eq!(anon.get(bad).unwrap().status, 404, "{bad}");
    }
    let r = anon
        .request(
            coco_client::Method::GET,
            &location,
            &[("range", "lines=1-2")],
            Vec::<u8>::new(),
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "InvalidHeaderValue");

    // A node joins the open service; once members trust it, it starts from the snapshot.
    // The joiner gets the primary's ledger as history it may read (ledger.read_only_directories).
    let mut joiner = primary.spawn_joiner(&Options {
        read_only_ledger_dirs: vec![primary.ledger_dir()],
        ..opts.clone()
    });
    trust_pending(primary);
    joiner.wait_started();
    assert!(
        joiner.log().contains("starting from a snapshot"),
        "{}",
        joiner.log()
    );
    let r = conn
        .post_json("/app/log/private", &json!({"id": 1000, "msg": "after"}))
        .unwrap();
    let txid = txid_of(&r);
    joiner.wait_committed_here(&txid);
    // The joiner (a backup, without snapshots of its own) points at the primary, as CCF does.
    let mut janon = joiner.anonymous();
    let r = janon.get("/node/snapshot?since=5").unwrap();
    assert_eq!(r.status, 308, "{}", r.text());
    assert_eq!(
        r.header("location").unwrap(),
        format!("https://{}/node/snapshot?since=5", primary.addr)
    );
    let r = janon
        .request(
            coco_client::Method::HEAD,
            "/node/primary",
            &[],
            Vec::<u8>::new(),
        )
        .unwrap();
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location").unwrap(),
        format!("https://{}/node/primary", primary.addr)
    );
    let mut jconn = joiner.user();
    for (id, msg) in [(3u64, "m3"), (1000, "after")] {
        let r = jconn.get(&format!("/app/log/private?id={id}")).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["msg"], msg);
    }

    // A receipt for a transaction before its snapshot: read back from the read-only history.
    let path = format!("/app/receipt?transaction_id={first_txid}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let receipt = loop {
        let r = jconn.get(&path).unwrap();
        if r.status == 200 {
            break r.json();
        }
        assert_eq!(r.status, 202, "{}", r.text());
        assert!(Instant::now() < deadline, "the receipt never loaded");
        std::thread::sleep(Duration::from_millis(50));
    };
    coco_node::receipt::verify_json_receipt(&receipt, &primary.ca_pem).unwrap();

    // Its ledger starts after a snapshot seqno, and what it committed is the primary's.
    std::thread::sleep(Duration::from_millis(500));
    let mine = support::committed_chunks(&joiner.ledger_dir());
    assert!(!mine.is_empty(), "the joiner committed chunks");
    let first = coco_codec::chunk::ChunkName::parse(&mine[0].0)
        .unwrap()
        .start;
    assert!(first > 1, "{}", mine[0].0);
    for other in [primary, backup] {
        let theirs = support::committed_chunks(&other.ledger_dir());
        for (name, bytes) in &mine {
            if let Some((_, theirs)) = theirs.iter().find(|(n, _)| n == name) {
                assert_eq!(bytes, theirs, "{name} is byte-identical on every node");
            }
        }
    }
    // CCF's reader verifies the joiner's ledger from its first signature on (MERKLE), and the
    // primary's whole ledger (FULL).
    let out = read_ledger(&[
        "--verification-level".as_ref(),
        "MERKLE".as_ref(),
        joiner.ledger_dir().as_os_str(),
    ]);
    assert!(out.contains("Verified MERKLE"), "{out}");
    for node in [primary, backup] {
        let out = read_ledger(&[node.ledger_dir().as_os_str()]);
        assert!(out.contains("Verified FULL"), "{out}");
    }

    // A node may instead start from a committed snapshot already on its machine
    // (snapshots.read_only_directory), without fetching one.
    let mut local = primary.spawn_joiner(&Options {
        fetch_recent_snapshot: false,
        read_only_snapshot_dir: Some(primary.path("snapshots")),
        ..opts.clone()
    });
    trust_pending(primary);
    local.wait_started();
    assert!(
        local.log().contains("starting from a snapshot"),
        "{}",
        local.log()
    );
    let r = conn
        .post_json("/app/log/private", &json!({"id": 2000, "msg": "later"}))
        .unwrap();
    local.wait_committed_here(&txid_of(&r));
}
