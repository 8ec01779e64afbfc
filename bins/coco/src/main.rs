//! `coco`: the command-line entry point. Thin glue over the library crates.

mod bench;
mod keygen;
mod ledger;
mod member;
mod receipt;
mod sandbox;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "coco",
    version,
    about = "coco: a CCF-compatible confidential consortium ledger node"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node from a JSON configuration (modelled on CCF's cchost configuration).
    Node {
        #[arg(long)]
        config: PathBuf,
    },
    /// Start a local network with generated identities and print how to use it.
    Sandbox(sandbox::Args),
    /// Generate a member or user identity (private key and self-signed certificate), like CCF's
    /// keygenerator.sh.
    Keygen(keygen::Args),
    /// Inspect ledger directories.
    #[command(subcommand)]
    Ledger(ledger::Command),
    /// Member actions signed with the member's key (COSE Sign1, as CCF's tools).
    Member(member::Args),
    /// Drive load at a node and report throughput and latency percentiles as JSON.
    Bench(bench::Args),
    /// Check receipts offline.
    #[command(subcommand)]
    Receipt(receipt::Command),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COCO_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Node { config } => run_node(config),
        Command::Sandbox(args) => sandbox::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Ledger(c) => ledger::run(c),
        Command::Member(args) => member::run(args),
        Command::Receipt(c) => receipt::run(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_node(config: PathBuf) -> anyhow::Result<()> {
    let cfg = coco_host::config::NodeConfigFile::load(&config)?;
    let node = coco_host::start(
        &cfg,
        coco_node::Plugins {
            app: coco_app_logging::registry(),
            constitution: Some(Box::new(coco_js::JsConstitutionLoader::default())),
        },
    )?;
    node.wait_for_signal();
    Ok(())
}
