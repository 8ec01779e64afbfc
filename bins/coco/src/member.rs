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
    /// Submit a proposal (a JSON file `{"actions": [...]}`); prints its id and state.
    Propose {
        #[arg(long, default_value = "127.0.0.1:8000")]
        address: SocketAddr,
        #[arg(long)]
        cacert: PathBuf,
        /// The proposal JSON file.
        #[arg(long)]
        proposal: PathBuf,
    },
    /// Vote on a proposal: in favour, or against with --reject.
    Vote {
        #[arg(long, default_value = "127.0.0.1:8000")]
        address: SocketAddr,
        #[arg(long)]
        cacert: PathBuf,
        #[arg(long)]
        proposal_id: String,
        #[arg(long)]
        reject: bool,
    },
    /// Withdraw one of your open proposals.
    Withdraw {
        #[arg(long, default_value = "127.0.0.1:8000")]
        address: SocketAddr,
        #[arg(long)]
        cacert: PathBuf,
        #[arg(long)]
        proposal_id: String,
    },
    /// Disaster recovery: fetch your encrypted recovery share, decrypt it with your
    /// encryption key and submit it (what CCF's `submit_recovery_share.sh` does).
    SubmitShare {
        #[arg(long, default_value = "127.0.0.1:8000")]
        address: SocketAddr,
        #[arg(long)]
        cacert: PathBuf,
        /// Your RSA encryption private key (PEM), e.g. member0_enc_privk.pem.
        #[arg(long)]
        enc_key: PathBuf,
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
        Ok(coco_node::gov::sign_request(
            &self.key,
            &self.id,
            msg_type,
            created_at,
            proposal_id,
            payload,
        ))
    }

    fn post(
        &self,
        conn: &mut BlockingConnection,
        path: &str,
        msg_type: &str,
        payload: &[u8],
        proposal_id: Option<&str>,
    ) -> anyhow::Result<serde_json::Value> {
        let r = conn.request(
            Method::POST,
            path,
            &[("content-type", "application/cose")],
            Bytes::from(self.sign(msg_type, payload, proposal_id)?),
        )?;
        if !r.status.is_success() {
            bail!("{path}: {} {}", r.status, r.text());
        }
        Ok(r.json())
    }

    /// Submits a proposal; returns (proposal id, state).
    pub fn propose(
        &self,
        conn: &mut BlockingConnection,
        proposal: &str,
    ) -> anyhow::Result<(String, String)> {
        let v = self.post(
            conn,
            &format!("/gov/members/proposals:create?{API_VERSION}"),
            "proposal",
            proposal.as_bytes(),
            None,
        )?;
        let id = v["proposalId"]
            .as_str()
            .context("no proposalId in the response")?
            .to_owned();
        Ok((
            id,
            v["proposalState"].as_str().unwrap_or_default().to_owned(),
        ))
    }

    /// Votes on a proposal with a constant ballot; returns the proposal's state.
    pub fn vote(
        &self,
        conn: &mut BlockingConnection,
        proposal_id: &str,
        accept: bool,
    ) -> anyhow::Result<String> {
        let ballot = serde_json::json!({ "ballot": format!("export function vote (proposal, proposerId) {{ return {accept}; }}") }).to_string();
        let path = format!(
            "/gov/members/proposals/{proposal_id}/ballots/{}:submit?{API_VERSION}",
            self.id
        );
        let v = self.post(conn, &path, "ballot", ballot.as_bytes(), Some(proposal_id))?;
        Ok(v["proposalState"].as_str().unwrap_or_default().to_owned())
    }

    /// Withdraws a proposal; returns its state.
    pub fn withdraw(
        &self,
        conn: &mut BlockingConnection,
        proposal_id: &str,
    ) -> anyhow::Result<String> {
        let path = format!("/gov/members/proposals/{proposal_id}:withdraw?{API_VERSION}");
        let v = self.post(conn, &path, "withdrawal", b"", Some(proposal_id))?;
        Ok(v["proposalState"].as_str().unwrap_or_default().to_owned())
    }

    /// Fetches this member's encrypted recovery share, decrypts it with `enc_key` and submits
    /// it; returns the service's answer (`submittedCount`, `recoveryThreshold`, …).
    pub fn submit_share(
        &self,
        conn: &mut BlockingConnection,
        enc_key: &coco_crypto::RsaKeyPair,
    ) -> anyhow::Result<serde_json::Value> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let path = format!("/gov/recovery/encrypted-shares/{}?{API_VERSION}", self.id);
        let r = conn.get(&path)?;
        if !r.status.is_success() {
            bail!("{path}: {} {}", r.status, r.text());
        }
        let encrypted = b64
            .decode(
                r.json()["encryptedShare"]
                    .as_str()
                    .context("no encryptedShare in the response")?,
            )
            .context("the encrypted share is not base64")?;
        let share = enc_key
            .rsa_oaep_sha256_decrypt(&encrypted)
            .context("decrypting the recovery share (is this your encryption key?)")?;
        let body = serde_json::json!({ "share": b64.encode(share) }).to_string();
        self.post(
            conn,
            &format!("/gov/recovery/members/{}:recover?{API_VERSION}", self.id),
            "recovery_share",
            body.as_bytes(),
            None,
        )
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
        MemberCommand::SubmitShare {
            address,
            cacert,
            enc_key,
        } => {
            let key = coco_crypto::RsaKeyPair::from_pkcs8_pem(
                &std::fs::read_to_string(&enc_key)
                    .with_context(|| format!("reading {}", enc_key.display()))?,
            )?;
            let answer = member.submit_share(&mut connect(&cacert, address)?, &key)?;
            println!("{answer}");
            Ok(())
        }
        MemberCommand::Ack { address, cacert } => {
            let mut conn = connect(&cacert, address)?;
            let digest = member.ack(&mut conn)?;
            println!(
                "member {} acknowledged state digest {digest} and is active",
                member.id()
            );
            Ok(())
        }
        MemberCommand::Propose {
            address,
            cacert,
            proposal,
        } => {
            let text = std::fs::read_to_string(&proposal)
                .with_context(|| format!("reading {}", proposal.display()))?;
            let (id, state) = member.propose(&mut connect(&cacert, address)?, &text)?;
            println!(
                "{}",
                serde_json::json!({ "proposalId": id, "proposalState": state })
            );
            Ok(())
        }
        MemberCommand::Vote {
            address,
            cacert,
            proposal_id,
            reject,
        } => {
            let state = member.vote(&mut connect(&cacert, address)?, &proposal_id, !reject)?;
            println!(
                "{}",
                serde_json::json!({ "proposalId": proposal_id, "proposalState": state })
            );
            Ok(())
        }
        MemberCommand::Withdraw {
            address,
            cacert,
            proposal_id,
        } => {
            let state = member.withdraw(&mut connect(&cacert, address)?, &proposal_id)?;
            println!(
                "{}",
                serde_json::json!({ "proposalId": proposal_id, "proposalState": state })
            );
            Ok(())
        }
    }
}

fn connect(cacert: &Path, address: SocketAddr) -> anyhow::Result<BlockingConnection> {
    let ca =
        std::fs::read_to_string(cacert).with_context(|| format!("reading {}", cacert.display()))?;
    Ok(BlockingConnection::connect(
        &ClientConfig::new(&ca, None, false)?,
        address,
    )?)
}
