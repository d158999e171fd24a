//! The process's TLS crypto provider.

/// Make ring the process-wide rustls crypto provider. Every binary calls this first thing in
/// `main`, before any TLS client or server (the kube client among them) is built.
///
/// Without it rustls picks a provider from its crate features, and only when exactly one is
/// enabled: a binary built on its own (`cargo build -p portico-lb-controller`, `cargo
/// install`, the container image) gets no provider feature from the rest of the workspace and
/// panicked at its first API call ("Could not automatically determine the process-level
/// CryptoProvider from Rustls crate features"). Idempotent: if a provider is installed
/// already, that one stays.
pub fn install_crypto_provider() {
    // An error only says that a provider is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #[test]
    fn after_install_there_is_a_process_default_and_a_second_call_is_harmless() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
