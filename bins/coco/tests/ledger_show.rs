//! `coco ledger show`: every entry of a real node's ledger, public writes readable, private
//! writes only as encrypted sizes; a damaged ledger is reported with file and offset, not a crash.

mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::{Options, TestNode, txid_of};

#[test]
fn show_lists_every_entry_and_reports_damage() {
    let mut node = TestNode::start(Options::default());
    let mut user = node.user();
    user.post_json("/app/log/public", &json!({"id": 1, "msg": "in the open"}))
        .unwrap();
    let r = user
        .post_json("/app/log/private", &json!({"id": 2, "msg": "top secret"}))
        .unwrap();
    let last = txid_of(&r);
    node.wait_committed(&mut user, &last);
    node.stop();
    let dir = node.ledger_dir();
    let out = support::run_coco(
        &["ledger", "show", "--json", dir.to_str().unwrap()],
        node.dir.path(),
    );
    let entries: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last_seqno: usize = last.split_once('.').unwrap().1.parse().unwrap();
    assert!(entries.len() > last_seqno, "{} entries", entries.len());
    for (k, e) in entries.iter().enumerate() {
        assert!(
            e["txid"]
                .as_str()
                .unwrap()
                .ends_with(&format!(".{}", k + 1)),
            "entries in seqno order: {e}"
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("in the open"), "public values are shown");
    assert!(!text.contains("top secret"), "private values never are");
    let private = entries
        .iter()
        .find(|e| e["txid"] == json!(last))
        .expect("the private write");
    assert!(private["private_bytes"].as_u64().unwrap() > 0);
    // Human-readable form.
    let out = support::run_coco(&["ledger", "show", dir.to_str().unwrap()], node.dir.path());
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(
        human.contains("public:records[1] = \"in the open\""),
        "{human}"
    );

    // Damage: cut the open chunk in the middle of its last entry.
    let open = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            !n.contains('-') && !n.ends_with(".committed")
        })
        .expect("an open chunk");
    let len = std::fs::metadata(&open).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&open).unwrap();
    f.set_len(len - 10).unwrap();
    let out = Command::new(support::COCO)
        .args(["ledger", "show", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("torn final entry") && stderr.contains("at offset"),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).is_empty(),
        "entries before it are shown"
    );
}
