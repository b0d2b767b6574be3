//! The TLS crypto provider of every HTTPS client strata-native builds (S3, Azure, GCS, WebDAV).
//!
//! rustls needs a process-wide [`CryptoProvider`](rustls::crypto::CryptoProvider) before a client
//! is built. strata builds rustls with ring only (not aws-lc-rs, whose C build is slow), so it
//! installs ring's provider here, once. A provider the program installed itself is kept: a
//! program that wants aws-lc-rs (FIPS, say) installs it before opening any storage.

use std::sync::Once;

/// Installs ring's provider as the process default, unless one is installed already.
pub(crate) fn install_default_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err: another provider was installed first (by the program); it stays the default.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_is_installed_and_https_clients_build() {
        install_default_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        // reqwest panics while building a client when no provider is installed.
        reqwest::Client::builder().build().expect("an HTTPS client builds");
    }
}
