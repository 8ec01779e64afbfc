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
