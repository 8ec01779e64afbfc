//! `coco ledger verify DIR` and `coco ledger repair DIR`.

use std::path::{Path, PathBuf};

use anyhow::Context;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Verify a ledger directory: chunk layout, entries, Merkle roots, node and COSE signatures,
    /// service status. Exits non-zero and names the first bad entry (seqno, file, offset).
    Verify {
        dir: PathBuf,
        /// Only `.committed` chunks, like CCF's read_ledger.py by default.
        #[arg(long)]
        committed_only: bool,
        /// Also read `.recovery` chunks.
        #[arg(long)]
        recovery: bool,
    },
    /// Truncate a torn final entry (left by a crash mid-append) from the open chunk. Complete
    /// and committed chunks are never modified.
    Repair { dir: PathBuf },
    /// Print every entry: transaction id, flags, the public maps it writes (keys and values),
    /// the size of its encrypted private domain. Stops at the first unreadable place, naming
    /// file and offset.
    Show {
        dir: PathBuf,
        /// One JSON object per entry (and one `{"error": …}` line if something is unreadable).
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Verify {
            dir,
            committed_only,
            recovery,
        } => {
            let files = read_dir(&dir)?;
            let report = coco_ledger::verify(
                files,
                &coco_ledger::VerifyOptions {
                    committed_only,
                    include_recovery: recovery,
                },
            );
            println!("{} chunks", report.chunks);
            if let Some(t) = &report.torn_tail {
                println!(
                    "warning: torn tail (run `coco ledger repair {}`): {t}",
                    dir.display()
                );
            }
            println!("{}", report.summary());
            anyhow::ensure!(report.is_ok(), "ledger verification failed");
            Ok(())
        }
        Command::Show { dir, json } => {
            let (entries, error) = coco_ledger::show::show(read_dir(&dir)?);
            for e in &entries {
                if json {
                    println!("{}", serde_json::to_string(e).expect("json"));
                } else {
                    println!(
                        "{:<12} {} @{} flags {:#04x} {} bytes, private {} bytes",
                        e.txid, e.file, e.offset, e.flags, e.size, e.private_bytes
                    );
                    for (map, writes) in &e.public {
                        for (k, v) in writes {
                            match v {
                                Some(v) => println!("    {map}[{k}] = {v}"),
                                None => println!("    {map}[{k}] removed"),
                            }
                        }
                    }
                }
            }
            if let Some(err) = error {
                if json {
                    println!("{}", serde_json::json!({ "error": err }));
                }
                anyhow::bail!(
                    "{} at offset {}: {} ({} entries shown before it)",
                    err.file,
                    err.offset,
                    err.message,
                    entries.len()
                );
            }
            Ok(())
        }
        Command::Repair { dir } => {
            match coco_host::storage::repair_torn_tail(&dir)
                .with_context(|| format!("repairing {}", dir.display()))?
            {
                coco_host::storage::TailRepair::Clean => {
                    println!("no torn tail: nothing to repair")
                }
                coco_host::storage::TailRepair::Truncated {
                    file,
                    valid_len_bytes,
                    removed_bytes,
                    reason,
                } => println!(
                    "truncated {} to {valid_len_bytes} bytes (removed {removed_bytes} bytes: {reason})",
                    file.display()
                ),
            }
            Ok(())
        }
    }
}

fn read_dir(dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("ledger_") && e.file_type()?.is_file() {
            files.push((
                name,
                std::fs::read(e.path())
                    .with_context(|| format!("reading {}", e.path().display()))?,
            ));
        }
    }
    Ok(files)
}
