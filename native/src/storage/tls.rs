//! The TLS crypto provider of every HTTPS client strata-native builds (S3, Azure, GCS, WebDAV).
//!
//! rustls needs a process-wide [`CryptoProvider`](rustls::crypto::CryptoProvider) before a client
//! is built. strata builds rustls with ring only (not aws-lc-rs, whose C build is slow), so it
//! installs ring's provider here, once. A provider the program installed itself is kept: a
//! program that wants aws-lc-rs (FIPS, say) installs it before opening any storage.

use std::sync::Once;

/// Installs ring's provider as rustls' process default, unless one is installed already.
///
/// [`NativeOpener`](crate::NativeOpener) calls it before building any client. A program that
/// builds its own `object_store` client (for [`ObjectStorage::new`](crate::ObjectStorage::new))
/// calls it first: with strata's build of rustls, reqwest panics when it builds an HTTPS client
/// and no provider is installed.
pub fn install_tls_provider() {
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
        install_tls_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        // reqwest panics while building a client when no provider is installed.
        reqwest::Client::builder().build().expect("an HTTPS client builds");
    }
}
