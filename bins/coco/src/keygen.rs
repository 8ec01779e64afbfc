//! `coco keygen`: member and user identities, as CCF's `keygenerator.sh` makes them:
//! `<name>_privk.pem` and `<name>_cert.pem` (self-signed, CN=<name>), and with `--gen-enc-key`
//! an RSA-2048 encryption key pair `<name>_enc_privk.pem` / `<name>_enc_pubk.pem` for recovery.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use coco_crypto::{Curve, EcKeyPair, RsaKeyPair};

#[derive(clap::Args)]
pub struct Args {
    /// Identity name, e.g. member0 or user1.
    #[arg(long)]
    pub name: String,
    /// Also generate an RSA encryption key pair (recovery members need one).
    #[arg(long)]
    pub gen_enc_key: bool,
    /// Curve of the identity key.
    #[arg(long, default_value = "secp384r1", value_parser = ["secp384r1", "secp256r1"])]
    pub curve: String,
    /// Certificate validity in days.
    #[arg(long, default_value_t = 365)]
    pub validity_days: u32,
    /// Directory to write into.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

/// Paths written by [`generate`].
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub enc_pub: Option<PathBuf>,
    pub enc_priv: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let curve = if args.curve == "secp256r1" {
        Curve::P256
    } else {
        Curve::P384
    };
    let id = generate(
        &args.out,
        &args.name,
        curve,
        args.gen_enc_key,
        args.validity_days,
    )?;
    println!("Identity private key: {}", id.key.display());
    println!("Identity certificate: {}", id.cert.display());
    if let (Some(p), Some(s)) = (&id.enc_pub, &id.enc_priv) {
        println!("Encryption public key: {}", p.display());
        println!("Encryption private key: {}", s.display());
    }
    Ok(())
}

pub fn generate(
    dir: &Path,
    name: &str,
    curve: Curve,
    enc: bool,
    validity_days: u32,
) -> anyhow::Result<Identity> {
    anyhow::ensure!(
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "invalid identity name {name:?}: use letters, digits, '-' and '_'"
    );
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let key = EcKeyPair::generate(curve)?;
    let validity = coco_crypto::Validity {
        not_before_unix_s: now - 60,
        not_after_unix_s: now + i64::from(validity_days) * 86_400,
    };
    let cert = coco_crypto::self_signed_cert(&key, name, validity)?;
    let key_path = dir.join(format!("{name}_privk.pem"));
    let cert_path = dir.join(format!("{name}_cert.pem"));
    write_private(&key_path, key.to_pkcs8_pem().as_bytes())?;
    std::fs::write(&cert_path, cert).with_context(|| format!("writing {}", cert_path.display()))?;
    let (mut enc_pub, mut enc_priv) = (None, None);
    if enc {
        let rsa = RsaKeyPair::generate(2048)?;
        let p = dir.join(format!("{name}_enc_pubk.pem"));
        let s = dir.join(format!("{name}_enc_privk.pem"));
        std::fs::write(&p, rsa.public_key_pem())
            .with_context(|| format!("writing {}", p.display()))?;
        write_private(&s, rsa.to_pkcs8_pem().as_bytes())?;
        enc_pub = Some(p);
        enc_priv = Some(s);
    }
    Ok(Identity {
        cert: cert_path,
        key: key_path,
        enc_pub,
        enc_priv,
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}
