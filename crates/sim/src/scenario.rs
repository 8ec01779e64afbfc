//! Scripted scenarios for whole clusters of the real core, in the spirit of CCF's
//! `tests/raft_scenarios`: a line-oriented script drives the simulated cluster deterministically
//! (no random faults, no random clients) and asserts on what the nodes report.
//!
//! ```text
//! # comment
//! nodes 3                  # n0 starts the service; n1, n2 are trusted at genesis
//! run 300                  # advance 300 simulated ms (messages delivered within 3 ms)
//! write n0 1 hello         # a user writes {"id": 1, "msg": "hello"} through n0
//! disconnect n0            # drop every message to and from n0
//! disconnect n1 -> n2      # drop messages from n1 to n2 only
//! reconnect                # heal every link
//! crash n1                 # n1 stops for good
//! expect primary n1|n2     # the node(s) that may be primary, among live ones
//! expect no-primary n0     # n0 does not consider itself primary
//! expect commit n1 >= 10   # n1's commit seqno
//! expect same-commit n1 n2 # equal commit, and byte-identical ledgers up to it
//! expect read n2 1 hello   # n2 serves the value (`-` for not found)
//! expect last-write committed n1   # the last acknowledged write's status on n1
//! expect last-write-status 200     # the HTTP status of the last write
//! ```
//!
//! The safety checker runs after every simulated millisecond, as in randomized runs.

use coco_app_api::TxStatus;

use crate::{Options, Sim};

/// Runs `script`; `Err` names the line that failed and why.
pub fn run_scenario(script: &str) -> Result<(), String> {
    let mut sim: Option<Sim> = None;
    let mut last_write: Option<(u64, coco_types::TxId)> = None;
    let mut last_status: Option<u16> = None;
    for (n, raw) in script.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let fail = |why: String| format!("line {}: `{line}`: {why}", n + 1);
        if words[0] == "nodes" {
            let count = words
                .get(1)
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| fail("expected a node count".into()))?;
            let mut s = Sim::new(Options {
                seed: 1,
                nodes: count,
                steps: 0,
                verbose: false,
            });
            s.faults = false;
            s.autopilot = false;
            sim = Some(s);
            continue;
        }
        let s = sim
            .as_mut()
            .ok_or_else(|| fail("start with `nodes N`".into()))?;
        s.scripted_line(&words, &mut last_write, &mut last_status)
            .map_err(fail)?;
    }
    Ok(())
}

/// The `i`th word of a line, or an error naming what is missing.
fn word<'a>(words: &[&'a str], i: usize) -> Result<&'a str, String> {
    words
        .get(i)
        .copied()
        .ok_or_else(|| format!("missing argument {i}"))
}

impl Sim {
    fn node_named(&self, name: &str) -> Result<String, String> {
        let k: usize = name
            .strip_prefix('n')
            .and_then(|k| k.parse().ok())
            .ok_or_else(|| format!("{name:?} is not a node name (n0, n1, …)"))?;
        self.pool_ids
            .get(&k)
            .cloned()
            .ok_or_else(|| format!("there is no node {name}"))
    }

    fn scripted_line(
        &mut self,
        words: &[&str],
        last_write: &mut Option<(u64, coco_types::TxId)>,
        last_status: &mut Option<u16>,
    ) -> Result<(), String> {
        let arg = |i: usize| word(words, i);
        match words[0] {
            "run" => {
                let ms: u64 = arg(1)?.parse().map_err(|_| "expected milliseconds")?;
                for _ in 0..ms {
                    self.tick(false)?;
                }
            }
            "write" => {
                let node = self.node_named(arg(1)?)?;
                let id: u64 = arg(2)?.parse().map_err(|_| "expected an id")?;
                let before = self.acked.len();
                let request_id = self.next_request;
                self.write(&node, id, arg(3)?)?;
                // Forwarded writes are answered later: run until the answer (or give up).
                for _ in 0..10_000 {
                    if !self.requests.contains_key(&(node.clone(), request_id)) {
                        break;
                    }
                    self.tick(false)?;
                }
                *last_status = self.last_response_status.take();
                *last_write =
                    (self.acked.len() > before).then(|| *self.acked.last().expect("grew"));
            }
            "disconnect" => {
                let a = self.node_named(arg(1)?)?;
                if words.get(2) == Some(&"->") {
                    let b = self.node_named(arg(3)?)?;
                    self.blocked.insert((a, b));
                } else {
                    for other in self.nodes.keys().cloned().collect::<Vec<_>>() {
                        if other != a {
                            self.blocked.insert((a.clone(), other.clone()));
                            self.blocked.insert((other, a.clone()));
                        }
                    }
                }
            }
            "reconnect" => self.blocked.clear(),
            "crash" => {
                let id = self.node_named(arg(1)?)?;
                let n = self.nodes.get_mut(&id).expect("named nodes exist");
                n.crashed = true;
                let durable = n.durable as usize;
                n.ledger.truncate(durable);
                n.is_signature.truncate(durable);
            }
            "expect" => self.expect(&words[1..], last_write, last_status)?,
            other => return Err(format!("unknown command {other:?}")),
        }
        Ok(())
    }

    fn expect(
        &mut self,
        words: &[&str],
        last_write: &Option<(u64, coco_types::TxId)>,
        last_status: &Option<u16>,
    ) -> Result<(), String> {
        let arg = |i: usize| word(words, i);
        match arg(0)? {
            "primary" => {
                let allowed: Vec<String> = arg(1)?
                    .split('|')
                    .map(|n| self.node_named(n))
                    .collect::<Result<_, _>>()?;
                let primaries = self.live_primaries();
                if primaries.len() != 1 || !allowed.contains(&primaries[0]) {
                    return Err(format!(
                        "primaries are {:?}",
                        primaries
                            .iter()
                            .map(|p| self.name_of(p))
                            .collect::<Vec<_>>()
                    ));
                }
            }
            "no-primary" => {
                let id = self.node_named(arg(1)?)?;
                if self.live_primaries().contains(&id) {
                    return Err(format!("{} is primary", arg(1)?));
                }
            }
            "commit" => {
                let id = self.node_named(arg(1)?)?;
                let want: u64 = arg(3)?.parse().map_err(|_| "expected a seqno")?;
                let got = self.nodes[&id].commit;
                let ok = match arg(2)? {
                    ">=" => got >= want,
                    "==" => got == want,
                    "<=" => got <= want,
                    op => return Err(format!("unknown comparison {op}")),
                };
                if !ok {
                    return Err(format!("commit is {got}"));
                }
            }
            "same-commit" => {
                let ids: Vec<String> = words[1..]
                    .iter()
                    .map(|n| self.node_named(n))
                    .collect::<Result<_, _>>()?;
                let first = &self.nodes[&ids[0]];
                for id in &ids[1..] {
                    let n = &self.nodes[id];
                    if n.commit != first.commit {
                        return Err(format!("commits {} and {}", first.commit, n.commit));
                    }
                    let upto = n.commit as usize;
                    if n.ledger[..upto] != first.ledger[..upto] {
                        return Err("committed ledgers differ".into());
                    }
                }
            }
            "read" => {
                let id = self.node_named(arg(1)?)?;
                let key: u64 = arg(2)?.parse().map_err(|_| "expected an id")?;
                let want = arg(3)?;
                let got = self.read_on(&id, key);
                let expected = (want != "-").then(|| want.to_owned());
                if got != expected {
                    return Err(format!("read {got:?}"));
                }
            }
            "last-write" => {
                let (_, txid) = last_write.ok_or("no write was acknowledged")?;
                let want = arg(1)?;
                let id = self.node_named(arg(2)?)?;
                let status = self.nodes[&id].node.consensus().tx_status(txid);
                let name = match status {
                    TxStatus::Committed => "committed",
                    TxStatus::Invalid => "invalid",
                    TxStatus::Pending => "pending",
                    TxStatus::Unknown => "unknown",
                };
                if name != want {
                    return Err(format!("{txid} is {name}"));
                }
            }
            "last-write-status" => {
                let want: u16 = arg(1)?.parse().map_err(|_| "expected a status")?;
                if *last_status != Some(want) {
                    return Err(format!("the last write answered {last_status:?}"));
                }
            }
            other => return Err(format!("unknown expectation {other:?}")),
        }
        Ok(())
    }

    fn live_primaries(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(id, n)| {
                !n.crashed && n.node.consensus().primary_id.as_deref() == Some(id.as_str())
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn name_of(&self, id: &str) -> String {
        self.pool_ids
            .iter()
            .find(|(_, v)| *v == id)
            .map(|(k, _)| format!("n{k}"))
            .unwrap_or_else(|| id.to_owned())
    }
}
