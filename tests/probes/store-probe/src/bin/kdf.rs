//! How long strata's default passphrase KDF (argon2id, 64 MiB, 3 passes, 4 lanes) takes here.
fn main() {
    let params = argon2::Params::new(64 << 10, 3, 4, Some(32)).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let mut out = [0u8; 32];
        argon.hash_password_into(b"a passphrase", &[7; 16], &mut out).unwrap();
        println!("argon2id 64 MiB × 3: {:.3} s", t.elapsed().as_secs_f64());
    }
}
