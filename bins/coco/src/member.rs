//! `coco member`: what a consortium member does with their key, as CCF's member tooling does.
//! Requests are COSE Sign1 envelopes signed with the member's key (`ccf.gov.msg.*` headers),
//! byte-compatible with what CCF's `ccf_cose_sign1` produces.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use coco_client::{BlockingConnection, ClientConfig, Method};
use coco_crypto::EcKeyPair;

const API_VERSION: &str = "api-version=2024-07-01";

#[derive(clap::Args)]
pub struct Args {
    /// Member certificate (PEM).
    #[arg(long)]
    pub cert: PathBuf,
    /// Member private key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    #[command(subcommand)]
    pub command: MemberCommand,
}

#[derive(clap::Subcommand)]
pub enum MemberCommand {
    /// Produce a signed request (tagged COSE Sign1) on stdout, like CCF's `ccf_cose_sign1`.
    Sign {
        /// File holding the payload (e.g. a proposal JSON).
        #[arg(long)]
        content: PathBuf,
        /// ccf.gov.msg.type: proposal, ballot, withdrawal, ack, state_digest, recovery_share.
        #[arg(long)]
        msg_type: String,
        /// ccf.gov.msg.proposal_id, for ballots and withdrawals.
        #[arg(long)]
        proposal_id: Option<String>,
    },
    /// Acknowledge the current state digest: the member becomes Active.
    Ack {
        /// Node address, host:port.
        #[arg(long, default_value = "127.0.0.1:8000")]
        address: SocketAddr,
        /// Service certificate (trust root).
        #[arg(long)]
        cacert: PathBuf,
    },
}

/// A member's signing identity.
pub struct Member {
    key: EcKeyPair,
    id: String,
}

impl Member {
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Member> {
        let cert_pem =
            std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
        let der = coco_crypto::pem_to_der_certs(&cert_pem)?
            .into_iter()
            .next()
            .context("no certificate in the member certificate file")?;
        let key = EcKeyPair::from_pkcs8_pem(
            &std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?,
        )?;
        if coco_crypto::cert_public_key_spki_der(&der)? != key.public_key_spki_der() {
            bail!("the member key does not match the member certificate");
        }
        Ok(Member {
            key,
            id: coco_crypto::cert_der_fingerprint_hex(&der),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// A tagged COSE Sign1 over `payload` with CCF's governance headers.
    pub fn sign(
        &self,
        msg_type: &str,
        payload: &[u8],
        proposal_id: Option<&str>,
    ) -> anyhow::Result<Vec<u8>> {
        let created_at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
        let protected = coco_codec::cose::request_protected_header(
            self.key.cose_alg(),
            &self.id,
            coco_codec::cose::GOV_MSG_PREFIX,
            msg_type,
            created_at,
            proposal_id,
        );
        let signature = self
            .key
            .sign_cose(&coco_codec::cose::sig_structure(&protected, payload));
        Ok(coco_codec::cose::assemble_sign1(
            &protected,
            &Default::default(),
            Some(payload),
            &signature,
        )?)
    }

    /// `state-digests/{id}:update` then `:ack` with the returned digest.
    pub fn ack(&self, conn: &mut BlockingConnection) -> anyhow::Result<String> {
        let cose = [("content-type", "application/cose")];
        let r = conn.request(
            Method::POST,
            &format!(
                "/gov/members/state-digests/{}:update?{API_VERSION}",
                self.id
            ),
            &cose,
            Bytes::from(self.sign("state_digest", b"{}", None)?),
        )?;
        if !r.status.is_success() {
            bail!("state digest update failed: {} {}", r.status, r.text());
        }
        let digest = r.json()["stateDigest"]
            .as_str()
            .context("no stateDigest in the response")?
            .to_owned();
        let body = serde_json::json!({ "stateDigest": digest }).to_string();
        let r = conn.request(
            Method::POST,
            &format!("/gov/members/state-digests/{}:ack?{API_VERSION}", self.id),
            &cose,
            Bytes::from(self.sign("ack", body.as_bytes(), None)?),
        )?;
        if !r.status.is_success() {
            bail!("ack failed: {} {}", r.status, r.text());
        }
        Ok(digest)
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let member = Member::load(&args.cert, &args.key)?;
    match args.command {
        MemberCommand::Sign {
            content,
            msg_type,
            proposal_id,
        } => {
            let payload = std::fs::read(&content)
                .with_context(|| format!("reading {}", content.display()))?;
            let signed = member.sign(&msg_type, &payload, proposal_id.as_deref())?;
            use std::io::Write;
            std::io::stdout().write_all(&signed)?;
            Ok(())
        }
        MemberCommand::Ack { address, cacert } => {
            let ca = std::fs::read_to_string(&cacert)
                .with_context(|| format!("reading {}", cacert.display()))?;
            let mut conn =
                BlockingConnection::connect(&ClientConfig::new(&ca, None, false)?, address)?;
            let digest = member.ack(&mut conn)?;
            println!(
                "member {} acknowledged state digest {digest} and is active",
                member.id()
            );
            Ok(())
        }
    }
}
