//! `coco receipt verify --service-cert service_cert.pem receipt.json`: checks a CCF JSON receipt
//! offline, natively (the same steps as CCF's `ccf.receipt`).

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Verify a JSON receipt (as served by `/node/receipt`, or the `receipt` member of a
    /// historical receipt): leaf, inclusion proof, the node's signature over the root, and the
    /// node certificate's endorsement by the service certificate. Prints the root.
    Verify {
        /// The service certificate the receipt must chain to.
        #[arg(long)]
        service_cert: PathBuf,
        /// The receipt file (JSON; `-` for standard input).
        receipt: PathBuf,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Verify {
            service_cert,
            receipt,
        } => {
            let service_cert = std::fs::read_to_string(&service_cert)
                .with_context(|| format!("reading {}", service_cert.display()))?;
            let text = if receipt.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(&receipt)
                    .with_context(|| format!("reading {}", receipt.display()))?
            };
            let mut value: serde_json::Value =
                serde_json::from_str(&text).context("the receipt is not JSON")?;
            // A historical receipt answer wraps the receipt: {"msg": …, "receipt": {…}}.
            if let Some(inner) = value.get("receipt") {
                value = inner.clone();
            }
            let root = coco_node::receipt::verify_json_receipt(&value, &service_cert)
                .map_err(|e| anyhow::anyhow!("the receipt does not verify: {e}"))?;
            println!("receipt verifies; root {}", hex::encode(root));
            Ok(())
        }
    }
}
