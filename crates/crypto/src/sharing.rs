//! CCF's recovery shares (ccf-reference §4.5; `src/crypto/sharing.{h,cpp}`,
//! `src/node/share_manager.h`), byte for byte, so that either implementation can recover the
//! other's ledger.
//!
//! A fresh *wrapping secret* of 10 limbs is drawn; each limb is the constant term of its own
//! random polynomial of degree `threshold − 1` over GF(p), p = 2^31 − 1 (Shamir). Share i
//! (x = i, from 1) holds every polynomial's value at x; the secret itself is the "share" at
//! x = 0 (CCF gives it whole to `Owner` members). On the wire a share is 44 bytes: x as u32 LE,
//! then the 10 limbs as u32 LE.
//!
//! The wrapping key is HKDF-SHA256 with the 40 limb bytes as both input key material and info,
//! and an empty salt (CCF declares the label "CCF Wrapping Key v1" but passes the limbs). The
//! latest ledger secret is wrapped with AES-256-GCM under that key with an all-zero IV (the key
//! wraps exactly once) and no AAD, serialised as CCF's `GcmCipher`: tag ‖ IV ‖ ciphertext.
//!
//! Arithmetic follows CCF's constant-time reduction; coefficients are drawn uniformly from
//! [0, p) by rejection.

use crate::CryptoError;
use crate::aead::{AesGcmKey, GCM_IV_SIZE_BYTES, GCM_TAG_SIZE_BYTES};

/// Limbs of a share.
pub const LIMBS: usize = 10;
/// A serialised share: x, then the limbs, all u32 LE.
pub const SHARE_SIZE_BYTES: usize = 4 + 4 * LIMBS;
/// The field's prime, 2^31 − 1.
pub const PRIME: u64 = (1 << 31) - 1;

/// A point of each of the 10 polynomials (x = 0: the secret itself).
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    pub x: u32,
    pub y: [u32; LIMBS],
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print share values.
        write!(f, "Share {{ x: {}, .. }}", self.x)
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.y = [0; LIMBS];
        std::hint::black_box(&self.y);
    }
}

/// CCF's `ct_reduce`: x mod p without data-dependent branches, for any u64.
fn reduce(mut x: u64) -> u64 {
    let mut d = x >> 31;
    x -= d * PRIME;
    d = x >> 31;
    x -= d * PRIME;
    d = (x + 1) >> 31;
    x - d * PRIME
}

fn mul(a: u64, b: u64) -> u64 {
    reduce(a * b)
}

fn add(a: u64, b: u64) -> u64 {
    reduce(a + b)
}

fn sub(a: u64, b: u64) -> u64 {
    reduce(PRIME + a - b)
}

fn inv(x: u64) -> u64 {
    // x^(p−2) by square-and-multiply (on public coefficients only).
    let (mut base, mut n, mut y) = (x, PRIME - 2, 1);
    while n > 0 {
        if n & 1 == 1 {
            y = mul(y, base);
        }
        base = mul(base, base);
        n >>= 1;
    }
    y
}

impl Share {
    pub fn to_bytes(&self) -> [u8; SHARE_SIZE_BYTES] {
        let mut out = [0u8; SHARE_SIZE_BYTES];
        out[..4].copy_from_slice(&self.x.to_le_bytes());
        for (i, limb) in self.y.iter().enumerate() {
            out[4 + 4 * i..8 + 4 * i].copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Share, CryptoError> {
        if bytes.len() != SHARE_SIZE_BYTES {
            return Err(CryptoError::BadShare(format!(
                "a share is {SHARE_SIZE_BYTES} bytes, not {}",
                bytes.len()
            )));
        }
        let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let mut y = [0u32; LIMBS];
        for (i, limb) in y.iter_mut().enumerate() {
            *limb = word(4 + 4 * i);
        }
        Ok(Share { x: word(0), y })
    }

    /// The 40 limb bytes (what the wrapping key is derived from).
    fn limb_bytes(&self) -> [u8; 4 * LIMBS] {
        let mut out = [0u8; 4 * LIMBS];
        out.copy_from_slice(&self.to_bytes()[4..]);
        out
    }

    /// The ledger-secret wrapping key; only the secret (x = 0) has one.
    pub fn wrapping_key(&self) -> Result<[u8; 32], CryptoError> {
        if self.x != 0 {
            return Err(CryptoError::BadShare(
                "a key is derived from the whole secret (x = 0), not a partial share".into(),
            ));
        }
        let limbs = self.limb_bytes();
        Ok(crate::hash::hkdf_sha256(&limbs, &[], &limbs))
    }
}

/// Draws a wrapping secret and splits it into `shares` shares (x = 1..=shares), any
/// `threshold` of which recover it. `sample` draws one field element uniformly from [0, p).
pub fn split_with(
    threshold: usize,
    shares: usize,
    mut sample: impl FnMut() -> Result<u32, CryptoError>,
) -> Result<(Share, Vec<Share>), CryptoError> {
    if shares == 0 || threshold == 0 || threshold > shares || shares >= PRIME as usize {
        return Err(CryptoError::BadShare(format!(
            "cannot split into {shares} shares with threshold {threshold}"
        )));
    }
    let mut secret = Share {
        x: 0,
        y: [0; LIMBS],
    };
    let mut out: Vec<Share> = (1..=shares)
        .map(|x| Share {
            x: x as u32,
            y: [0; LIMBS],
        })
        .collect();
    let mut poly = vec![0u64; threshold];
    for limb in 0..LIMBS {
        for c in poly.iter_mut() {
            let v = u64::from(sample()?);
            assert!(v < PRIME, "samples are field elements");
            *c = v;
        }
        secret.y[limb] = poly[0] as u32;
        for share in out.iter_mut() {
            let x = u64::from(share.x);
            let (mut y, mut x_i) = (0u64, 1u64);
            for c in &poly {
                y = add(y, mul(*c, x_i));
                x_i = mul(x, x_i);
            }
            share.y[limb] = y as u32;
        }
    }
    poly.fill(0);
    std::hint::black_box(&poly);
    Ok((secret, out))
}

/// [`split_with`] drawing from `rng` as CCF samples (64 random bits masked to 31, retrying on p
/// itself).
pub fn split(
    threshold: usize,
    shares: usize,
    rng: &mut crate::hash::Drbg,
) -> Result<(Share, Vec<Share>), CryptoError> {
    split_with(threshold, shares, || {
        loop {
            let mut b = [0u8; 8];
            rng.fill(&mut b);
            let v = u64::from_le_bytes(b) & PRIME;
            if v != PRIME {
                return Ok(v as u32);
            }
        }
    })
}

/// Recovers the secret from the first `threshold` of `shares` (Lagrange interpolation at 0).
/// Shares are not authenticated: a wrong share yields a wrong secret, which the wrapped ledger
/// secret's GCM tag then refuses ([`unwrap_ledger_secret`]).
pub fn combine(shares: &[Share], threshold: usize) -> Result<Share, CryptoError> {
    if threshold == 0 || shares.len() < threshold {
        return Err(CryptoError::BadShare(format!(
            "{} shares given, {threshold} needed",
            shares.len()
        )));
    }
    let used = &shares[..threshold];
    let mut lagrange = vec![0u64; threshold];
    for (i, l) in lagrange.iter_mut().enumerate() {
        let (mut num, mut den) = (1u64, 1u64);
        for (j, other) in used.iter().enumerate() {
            if i != j {
                let xj = reduce(u64::from(other.x));
                num = mul(num, xj);
                den = mul(den, sub(xj, reduce(u64::from(used[i].x))));
            }
        }
        if den == 0 {
            return Err(CryptoError::BadShare(
                "two shares have the same x coordinate".into(),
            ));
        }
        *l = mul(num, inv(den));
    }
    let mut secret = Share {
        x: 0,
        y: [0; LIMBS],
    };
    for limb in 0..LIMBS {
        let mut y = 0;
        for (l, share) in lagrange.iter().zip(used) {
            y = add(y, mul(*l, reduce(u64::from(share.y[limb]))));
        }
        secret.y[limb] = y as u32;
    }
    Ok(secret)
}

/// CCF's `wrapped_latest_ledger_secret`: `ledger_secret` sealed under the secret's wrapping key
/// with a zero IV, as tag ‖ IV ‖ ciphertext.
pub fn wrap_ledger_secret(
    secret: &Share,
    ledger_secret: &[u8; 32],
) -> Result<Vec<u8>, CryptoError> {
    let key = AesGcmKey::new(&secret.wrapping_key()?);
    let iv = [0u8; GCM_IV_SIZE_BYTES];
    let mut ct = *ledger_secret;
    let tag = key.seal_in_place_detached(&iv, &[], &mut ct);
    let mut out = Vec::with_capacity(GCM_TAG_SIZE_BYTES + GCM_IV_SIZE_BYTES + ct.len());
    out.extend_from_slice(&tag);
    out.extend_from_slice(&iv);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// The ledger secret from [`wrap_ledger_secret`]'s output; fails if the secret (so the shares it
/// was combined from) is wrong.
pub fn unwrap_ledger_secret(secret: &Share, wrapped: &[u8]) -> Result<[u8; 32], CryptoError> {
    let header = GCM_TAG_SIZE_BYTES + GCM_IV_SIZE_BYTES;
    if wrapped.len() != header + 32 {
        return Err(CryptoError::BadShare(format!(
            "a wrapped ledger secret is {} bytes, not {}",
            header + 32,
            wrapped.len()
        )));
    }
    let tag: [u8; GCM_TAG_SIZE_BYTES] = wrapped[..GCM_TAG_SIZE_BYTES].try_into().expect("16");
    let iv: [u8; GCM_IV_SIZE_BYTES] = wrapped[GCM_TAG_SIZE_BYTES..header].try_into().expect("12");
    let mut out: [u8; 32] = wrapped[header..].try_into().expect("32");
    AesGcmKey::new(&secret.wrapping_key()?).open_in_place_detached(&iv, &[], &mut out, &tag)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
