//! `coco sandbox --recover`: a disaster recovery of a sandbox whose nodes all died, done the way
//! an operator and the members do it for a real service (ccf-reference §4.6):
//!
//! 1. the dead nodes' directories move to `previous_<n>/` (with the old service certificate);
//! 2. node0 starts in `Recover` mode on a copy of the dead ledger whose last signature is the
//!    most recent, with the latest committed snapshot beside it, under a new service identity;
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
    // The ledger whose last signature is the most recent holds everything committed (a
    // longer ledger may only have a longer unsigned tail).
    let (best, last) = dead
        .iter()
        .filter_map(|d| Some((d, last_signature(&d.join("ledger"))?)))
        .max_by_key(|(d, last)| (*last, std::cmp::Reverse((*d).clone())))
        .context("no node directory of the workspace holds a signed ledger")?;
    println!(
        "Recovering from {} (its last signature is {}.{})",
        best.display(),
        last.0,
        last.1
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
    let exe = std::env::current_exe().context("locating the coco executable")?;
    let started = Instant::now();
    let mut nodes = Vec::new();
    let opened = (|| {
        copy_dir(&best.join("ledger"), &ws.join("node0").join("ledger"))?;
        nodes.push(spawn_node(
            &exe,
            &ws,
            &common,
            0,
            NodeCommand::Recover {
                previous_cert: &previous_cert,
                snapshots: &best.join("snapshots"),
            },
            args,
        )?);
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
        Ok((member, conn, public))
    })();
    let (member, mut conn, public) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            // Put the dead service back as it was, so that the recovery can be run again.
            stop_all(&mut nodes);
            if let Err(undo) = restore(&ws, &common, &previous, &dead) {
                eprintln!("could not put the dead service back: {undo:#}");
            }
            return Err(e);
        }
    };
    println!(
        "The service is open again after {:.1} s ({:.1} s replaying the public ledger, \
         then member0's share and the private ledger).",
        started.elapsed().as_secs_f64(),
        public.as_secs_f64()
    );
    let result = (|| {
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

/// Undoes the moves of a recovery that failed before the service opened: the new node0 and
/// service certificate go, the dead nodes and certificate come back from `previous`.
fn restore(ws: &Path, common: &Path, previous: &Path, dead: &[PathBuf]) -> anyhow::Result<()> {
    let node0 = ws.join("node0");
    if node0.exists() {
        std::fs::remove_dir_all(&node0)?;
    }
    std::fs::rename(
        previous.join("service_cert.pem"),
        common.join("service_cert.pem"),
    )?;
    for d in dead {
        std::fs::rename(previous.join(d.file_name().expect("named")), d)?;
    }
    std::fs::remove_dir(previous)?;
    Ok(())
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

/// The (view, seqno) of the last signature transaction in a ledger directory, if any.
fn last_signature(dir: &Path) -> Option<(u64, u64)> {
    let mut chunks: Vec<(ChunkName, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = ChunkName::parse(&e.file_name().to_string_lossy())?;
            (!name.ignored && !name.recovery).then(|| (name, e.path()))
        })
        .collect();
    chunks.sort_by_key(|(name, _)| std::cmp::Reverse(name.start));
    for (_, path) in chunks {
        let bytes = bytes::Bytes::from(std::fs::read(&path).ok()?);
        // An open chunk's torn tail (a crash mid-write) is left out of the scan.
        let Ok(scan) = coco_codec::chunk::scan_chunk(&bytes) else {
            continue;
        };
        let entries: Vec<bytes::Bytes> = scan
            .entries
            .iter()
            .map(|e| bytes.slice(e.range()))
            .collect();
        if let Some(n) = coco_node::disaster::through_last_signature(&entries) {
            let view = coco_codec::entry::parse_entry(&entries[n - 1]).ok()?;
            return Some((view.view, view.seqno));
        }
    }
    None
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
