use proptest::prelude::*;

use super::*;
use crate::hash::Drbg;

#[test]
fn reduce_is_mod_p() {
    for x in [
        0,
        1,
        PRIME - 1,
        PRIME,
        PRIME + 1,
        2 * PRIME,
        u64::MAX,
        u64::MAX - 1,
        1 << 62,
    ] {
        assert_eq!(reduce(x), x % PRIME, "{x}");
    }
}

#[test]
fn any_threshold_of_shares_recovers_the_secret_and_fewer_do_not() {
    let mut rng = Drbg::new([3; 32]);
    for (threshold, n) in [(1, 1), (1, 3), (2, 3), (3, 3), (3, 5), (5, 7)] {
        let (secret, shares) = split(threshold, n, &mut rng).unwrap();
        assert_eq!(shares.len(), n);
        assert!(shares.iter().enumerate().all(|(i, s)| s.x == i as u32 + 1));
        // Every window of `threshold` shares, in either order.
        for start in 0..=n - threshold {
            let mut subset: Vec<Share> = shares[start..start + threshold].to_vec();
            assert_eq!(combine(&subset, threshold).unwrap(), secret);
            subset.reverse();
            assert_eq!(combine(&subset, threshold).unwrap(), secret);
        }
        if threshold > 1 {
            // Interpolating through too few points gives some other value.
            let wrong = combine(&shares[..threshold - 1], threshold - 1).unwrap();
            assert_ne!(wrong, secret);
            assert!(combine(&shares[..threshold - 1], threshold).is_err());
        }
    }
}

#[test]
fn wrapping_round_trips_and_refuses_a_wrong_secret() {
    let mut rng = Drbg::new([4; 32]);
    let (secret, shares) = split(2, 3, &mut rng).unwrap();
    let ledger_secret = [0x5A; 32];
    let wrapped = wrap_ledger_secret(&secret, &ledger_secret).unwrap();
    assert_eq!(wrapped.len(), 16 + 12 + 32);
    assert_eq!(&wrapped[16..28], &[0; 12], "the IV is all zeros");
    let recovered = combine(&[shares[2].clone(), shares[0].clone()], 2).unwrap();
    assert_eq!(
        unwrap_ledger_secret(&recovered, &wrapped).unwrap(),
        ledger_secret
    );
    // One altered share: the GCM tag refuses the result.
    let mut bad = shares[1].clone();
    bad.y[3] ^= 1;
    let wrong = combine(&[shares[0].clone(), bad], 2).unwrap();
    assert_eq!(
        unwrap_ledger_secret(&wrong, &wrapped).unwrap_err(),
        CryptoError::AeadOpen
    );
    // Partial shares have no key; malformed input is refused.
    assert!(shares[0].wrapping_key().is_err());
    assert!(unwrap_ledger_secret(&secret, &wrapped[1..]).is_err());
    assert!(Share::from_bytes(&[0; 43]).is_err());
    assert!(combine(&[shares[0].clone(), shares[0].clone()], 2).is_err());
    assert!(split(4, 3, &mut rng).is_err());
    assert!(split(0, 3, &mut rng).is_err());
}

/// Fixed inputs whose outputs the independent Python implementation in
/// `tests/oracle/recovery_shares.py` reproduces (checked in CI by `bins/coco/tests/ccf_oracle.rs`).
pub fn golden() -> (Share, Vec<Share>, [u8; 32], Vec<u8>) {
    // Coefficients 1000 + 7k for the k-th draw: limb l of polynomial has coefficients
    // (1000 + 7(3l), 1000 + 7(3l + 1), 1000 + 7(3l + 2)) for threshold 3.
    let mut k = 0u32;
    let (secret, shares) = split_with(3, 5, || {
        let v = 1000 + 7 * k;
        k += 1;
        Ok(v)
    })
    .unwrap();
    let key = secret.wrapping_key().unwrap();
    let wrapped = wrap_ledger_secret(&secret, &[0x11; 32]).unwrap();
    (secret, shares, key, wrapped)
}

#[test]
fn golden_vector() {
    let (secret, shares, key, wrapped) = golden();
    expect_test::expect![[r#"
        secret 00000000e8030000fd03000012040000270400003c04000051040000660400007b04000090040000a5040000
        share3 030000005b3300006c3400007d3500008e3600009f370000b0380000c1390000d23a0000e33b0000f43c0000
        key 18bdba6bdd32f2ebf8ff68fa5f56cd15d2338283447248ebee19afb342acaed9
        wrapped d91ce7cd551e255642d01508a271a1c3000000000000000000000000ca87895503b7c0020ca6d0831a5e8d743fd57123dd5d8076d69616f93ed92fd0
    "#]]
    .assert_eq(&format!(
        "secret {}\nshare3 {}\nkey {}\nwrapped {}\n",
        hex::encode(secret.to_bytes()),
        hex::encode(shares[2].to_bytes()),
        hex::encode(key),
        hex::encode(wrapped)
    ));
}

proptest! {
    #[test]
    fn reduce_matches_modulo(x in any::<u64>()) {
        prop_assert_eq!(reduce(x), x % PRIME);
    }

    #[test]
    fn shares_round_trip_their_bytes(x in any::<u32>(), y in any::<[u32; LIMBS]>()) {
        let s = Share { x, y };
        prop_assert_eq!(Share::from_bytes(&s.to_bytes()).unwrap(), s);
    }
}
