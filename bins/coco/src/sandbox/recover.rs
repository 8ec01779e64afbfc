//! `coco sandbox --recover`: a disaster recovery of a sandbox whose nodes all died, done the way
//! an operator and the members do it for a real service (ccf-reference §4.6):
//!
//! 1. the dead nodes' directories move to `previous_<n>/` (with the old service certificate);
//! 2. node0 starts in `Recover` mode on a copy of the longest dead ledger and the latest
//!    committed snapshot beside it, under a new service identity;
//! 3. member0 proposes and votes `transition_service_to_open` naming both identities, then
//!    fetches, decrypts and submits its recovery share — the private ledger is replayed and the
//!    service opens;
//! 4. the other nodes join (from the snapshot the recovered service takes when it opens) and
//!    member0 trusts them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use coco_codec::chunk::ChunkName;

use super::{
    Args, MARKER, NodeCommand, START_TIMEOUT, SandboxNode, absolute, member0, print_banner,
    spawn_node, stop_all, wait_for_signal_or_exit, wait_ready,
};

/// How long node0 may take to replay the dead ledger's public state before it serves, and the
/// recovery to reach `Open` once the share is in (both grow with the ledger).
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(1800);

pub(super) fn run(args: &Args) -> anyhow::Result<()> {
    let ws = absolute(&args.workspace)?;
    let common = ws.join("sandbox_common");
    if !ws.join(MARKER).exists() || !common.join("member0_enc_privk.pem").exists() {
        bail!(
            "{} is not a sandbox workspace to recover (run `coco sandbox` first)",
            ws.display()
        );
    }
    let dead = dead_nodes(&ws)?;
    let (best, end) = dead
        .iter()
        .map(|d| (d, ledger_end(&d.join("ledger"))))
        .max_by_key(|(d, end)| (*end, std::cmp::Reverse((*d).clone())))
        .context("the workspace has no node directories")?;
    println!(
        "Recovering from {} (its ledger reaches seqno {end})",
        best.display()
    );

    // Keep the dead service's files aside: its nodes and its certificate.
    let previous = (1..)
        .map(|k| ws.join(format!("previous_{k}")))
        .find(|p| !p.exists())
        .expect("some name is free");
    std::fs::create_dir_all(&previous)?;
    for d in &dead {
        let to = previous.join(d.file_name().expect("node directories have names"));
        std::fs::rename(d, &to).with_context(|| format!("moving {}", d.display()))?;
    }
    let best = previous.join(best.file_name().expect("named"));
    let previous_cert = previous.join("service_cert.pem");
    std::fs::rename(common.join("service_cert.pem"), &previous_cert)
        .context("moving the dead service's certificate aside")?;

    // node0 recovers from a copy of the best ledger (the original stays as it was).
    let node0 = ws.join("node0");
    copy_dir(&best.join("ledger"), &node0.join("ledger"))?;
    let exe = std::env::current_exe().context("locating the coco executable")?;
    let started = Instant::now();
    let mut nodes = vec![spawn_node(
        &exe,
        &ws,
        &common,
        0,
        NodeCommand::Recover {
            previous_cert: &previous_cert,
            snapshots: &best.join("snapshots"),
        },
        args,
    )?];
    let result = (|| {
        wait_ready(&mut nodes, &common, RECOVERY_TIMEOUT)?;
        let public = started.elapsed();
        let (member, mut conn) = member0(&common, args.port)?;
        let proposal = serde_json::json!({ "actions": [{
            "name": "transition_service_to_open",
            "args": {
                "previous_service_identity": std::fs::read_to_string(&previous_cert)?,
                "next_service_identity": std::fs::read_to_string(common.join("service_cert.pem"))?,
            }
        }]});
        let (id, _) = member
            .propose(&mut conn, &proposal.to_string())
            .context("proposing to open the recovered service")?;
        let state = member.vote(&mut conn, &id, true)?;
        anyhow::ensure!(
            state == "Accepted",
            "the opening proposal is {state}, not Accepted"
        );
        let enc_key = coco_crypto::RsaKeyPair::from_pkcs8_pem(&std::fs::read_to_string(
            common.join("member0_enc_privk.pem"),
        )?)?;
        let answer = member
            .submit_share(&mut conn, &enc_key)
            .context("submitting member0's recovery share")?;
        println!(
            "member0: {}",
            answer["message"].as_str().unwrap_or_default()
        );
        wait_open(&mut conn)?;
        println!(
            "The service is open again after {:.1} s ({:.1} s replaying the public ledger, \
             then member0's share and the private ledger).",
            started.elapsed().as_secs_f64(),
            public.as_secs_f64()
        );
        for i in 1..args.nodes {
            nodes.push(spawn_node(&exe, &ws, &common, i, NodeCommand::Join, args)?);
            wait_trusted(
                nodes.last_mut().expect("pushed"),
                i,
                &common,
                &member,
                &mut conn,
            )?;
        }
        println!(
            "The dead service's nodes and certificate are in {}.",
            previous.display()
        );
        print_banner(&ws, &common, &nodes);
        wait_for_signal_or_exit(&mut nodes)
    })();
    stop_all(&mut nodes);
    result
}

/// `node<i>` directories of the workspace, in order; refuses if one of their nodes still runs.
fn dead_nodes(ws: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs: Vec<(usize, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(ws)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(i) = name.strip_prefix("node").and_then(|i| i.parse().ok()) {
            dirs.push((i, e.path()));
        }
    }
    dirs.sort();
    for (_, d) in &dirs {
        let pid = std::fs::read_to_string(d.join("coco.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<libc::pid_t>().ok());
        if let Some(pid) = pid
            && running(pid)
        {
            bail!(
                "the node in {} (pid {pid}) is still running: stop the sandbox first",
                d.display()
            );
        }
    }
    Ok(dirs.into_iter().map(|(_, d)| d).collect())
}

/// Whether process `pid` exists and is not a zombie (a killed node whose parent is gone may
/// linger as one).
fn running(pid: libc::pid_t) -> bool {
    // Signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    // `/proc/<pid>/stat`: "pid (comm) state ...", the state after the last ')'.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(true)
}

/// The last seqno in a ledger directory (0 if none): the best node to recover from has the
/// longest ledger.
fn ledger_end(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut end = 0;
    for e in entries.flatten() {
        let Some(name) = ChunkName::parse(&e.file_name().to_string_lossy()) else {
            continue;
        };
        if name.ignored || name.recovery {
            continue;
        }
        let last = name.end.unwrap_or_else(|| {
            std::fs::read(e.path())
                .ok()
                .and_then(|b| coco_codec::chunk::scan_chunk(&b).ok())
                .and_then(|s| s.last_seqno())
                .unwrap_or(name.start.saturating_sub(1))
        });
        end = end.max(last);
    }
    end
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))
                .with_context(|| format!("copying {}", e.path().display()))?;
        }
    }
    Ok(())
}

fn wait_open(conn: &mut coco_client::BlockingConnection) -> anyhow::Result<()> {
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    loop {
        let r = conn.get("/node/network")?;
        if r.json()["service_status"] == "Open" {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the service did not open within {RECOVERY_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for node `i` to join: member0 trusts it once it is Pending (a recovered service is
/// open, so joiners wait for the members).
fn wait_trusted(
    node: &mut SandboxNode,
    i: usize,
    common: &Path,
    member: &crate::member::Member,
    conn: &mut coco_client::BlockingConnection,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if node.ready(i, common)? {
            return Ok(());
        }
        let nodes = conn.get("/node/network/nodes")?.json();
        for pending in nodes["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["status"] == "Pending")
        {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64;
            let proposal = serde_json::json!({ "actions": [{
                "name": "transition_node_to_trusted",
                "args": {
                    "node_id": pending["node_id"],
                    "valid_from": coco_crypto::format_ccf_time(now - 60)?,
                }
            }]});
            let (id, _) = member.propose(conn, &proposal.to_string())?;
            member.vote(conn, &id, true)?;
        }
        if Instant::now() > deadline {
            bail!(
                "node {i} did not join within {START_TIMEOUT:?}; see {}",
                node.dir.join("out.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
