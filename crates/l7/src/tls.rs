//! TLS: certificates from `kubernetes.io/tls` Secrets, parsed once and cached by content; SNI
//! selection backed by the current route table (so a rotated Secret takes effect on the next
//! handshake, without a restart and without touching open connections); a default certificate for
//! every name Portico has no valid certificate for. TLS 1.2 and 1.3 only.
//!
//! A Secret that served a valid certificate and is then edited into a broken one (bad PEM, a key
//! that does not match) keeps serving its last good certificate, and the error is reported; a
//! Secret that was never valid leaves its hosts on the default certificate (never plaintext); a
//! deleted Secret's certificate is forgotten.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use portico_model::ObjectKey;
use portico_model::snapshot::TlsSecret;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::table::RouteTable;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("tls.crt holds no PEM certificate")]
    NoCertificate,
    #[error("tls.crt is not valid PEM")]
    BadCertificate(#[source] std::io::Error),
    #[error("tls.key holds no PEM private key")]
    NoKey,
    #[error("tls.key is not valid PEM")]
    BadKey(#[source] std::io::Error),
    #[error("tls.key is not a usable private key")]
    UnusableKey(#[source] rustls::Error),
    #[error("tls.key does not belong to the certificate in tls.crt")]
    Mismatch(#[source] rustls::Error),
    #[error("could not generate a self-signed certificate")]
    Generate(#[source] rcgen::Error),
}

/// Parse a PEM chain and key into a rustls certificate.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, CertError> {
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(CertError::BadCertificate)?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate);
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(CertError::BadKey)?
        .ok_or(CertError::NoKey)?;
    let signer = any_supported_type(&key).map_err(CertError::UnusableKey)?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match().map_err(CertError::Mismatch)?;
    Ok(Arc::new(ck))
}

/// A self-signed certificate for names Portico has no certificate for.
pub fn self_signed() -> Result<Arc<CertifiedKey>, CertError> {
    let names = vec!["portico.invalid".to_owned()];
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(names).map_err(CertError::Generate)?;
    certified_key(
        cert.pem().as_bytes(),
        signing_key.serialize_pem().as_bytes(),
    )
}

type Parsed = Result<Arc<CertifiedKey>, Arc<CertError>>;

/// A Secret whose current content is not a usable certificate.
#[derive(Clone, Debug)]
pub struct BrokenCert {
    pub error: Arc<CertError>,
    /// The certificate this Secret served before it broke, if it ever was valid while Portico
    /// watched it: its hosts keep it.
    pub last_good: Option<Arc<CertifiedKey>>,
}

struct Entry {
    secret: Arc<TlsSecret>,
    parsed: Parsed,
    last_good: Option<Arc<CertifiedKey>>,
}

impl Entry {
    fn result(&self) -> Result<Arc<CertifiedKey>, BrokenCert> {
        self.parsed.clone().map_err(|error| BrokenCert {
            error,
            last_good: self.last_good.clone(),
        })
    }
}

/// Parsed certificates by Secret, reused while the Secret's content is unchanged, with the last
/// valid certificate of every Secret still present.
#[derive(Default)]
pub struct CertCache {
    entries: Mutex<HashMap<ObjectKey, Entry>>,
}

impl CertCache {
    /// The certificate of `secret` (named `key`); when its content is broken, the error and the
    /// last good certificate of the same Secret.
    pub fn get(
        &self,
        key: &ObjectKey,
        secret: &Arc<TlsSecret>,
    ) -> Result<Arc<CertifiedKey>, BrokenCert> {
        let mut m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let last_good = match m.get(key) {
            Some(e) if Arc::ptr_eq(&e.secret, secret) || *e.secret == **secret => {
                return e.result();
            }
            Some(e) => e.last_good.clone(),
            None => None,
        };
        let parsed = certified_key(&secret.cert_pem, &secret.key_pem).map_err(Arc::new);
        let entry = Entry {
            secret: secret.clone(),
            last_good: parsed.as_ref().ok().cloned().or(last_good),
            parsed,
        };
        let result = entry.result();
        m.insert(key.clone(), entry);
        result
    }

    /// Drop the entries of Secrets that are gone.
    pub fn retain(&self, keep: impl Fn(&ObjectKey) -> bool) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| keep(k));
    }
}

/// Per-SNI certificate selection from the current table.
#[derive(Debug)]
pub struct SniResolver {
    pub table: Arc<ArcSwap<RouteTable>>,
    pub default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.table.load();
        let found = hello.server_name().and_then(|name| table.cert_for(name));
        Some(found.unwrap_or_else(|| self.default.clone()))
    }
}

/// The server configuration: TLS 1.2 and 1.3, ALPN h2 and http/1.1.
pub fn server_config(
    resolver: Arc<SniResolver>,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Upstream TLS (`backend-protocol: HTTPS` / `GRPCS`). As ingress-nginx does by default
/// (`proxy-ssl-verify: off`), the endpoint's certificate is not checked against a CA: endpoints
/// are addressed by Pod IP, which no certificate names. Handshake signatures are still verified.
pub fn upstream_client_config() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyServerCert(provider.clone()));
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        // The ring provider supports both versions: this cannot fail.
        .expect("ring supports TLS 1.2 and 1.3");
    builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth()
}

#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_parses_and_garbage_does_not() {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["a.example.com".into()]).expect("generate");
        let ok = certified_key(
            cert.pem().as_bytes(),
            signing_key.serialize_pem().as_bytes(),
        );
        assert!(ok.is_ok());
        assert!(matches!(
            certified_key(b"nonsense", b"nonsense"),
            Err(CertError::NoCertificate)
        ));
        let other =
            rcgen::generate_simple_self_signed(vec!["b.example.com".into()]).expect("generate");
        let mismatch = certified_key(
            cert.pem().as_bytes(),
            other.signing_key.serialize_pem().as_bytes(),
        );
        assert!(
            matches!(mismatch, Err(CertError::Mismatch(_))),
            "{mismatch:?}"
        );
    }

    #[test]
    fn the_cache_parses_unchanged_secrets_once() {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["a.example.com".into()]).expect("generate");
        let s = Arc::new(TlsSecret {
            cert_pem: cert.pem().into_bytes(),
            key_pem: signing_key.serialize_pem().into_bytes(),
        });
        let cache = CertCache::default();
        let key = ObjectKey::new("default", "tls");
        let a = cache.get(&key, &s).expect("valid");
        let copy = Arc::new((*s).clone());
        let b = cache.get(&key, &copy).expect("valid");
        assert!(Arc::ptr_eq(&a, &b), "same content, same parsed certificate");
    }

    fn secret(names: &[&str]) -> (Arc<TlsSecret>, Vec<u8>) {
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(names).expect("generate");
        let s = TlsSecret {
            cert_pem: cert.pem().into_bytes(),
            key_pem: signing_key.serialize_pem().into_bytes(),
        };
        (Arc::new(s), cert.der().to_vec())
    }

    #[test]
    fn a_secret_edited_into_a_broken_one_keeps_its_last_good_certificate() {
        let cache = CertCache::default();
        let key = ObjectKey::new("default", "tls");
        let (good, der) = secret(&["a.example.com"]);
        assert!(cache.get(&key, &good).is_ok());

        // The key of another certificate: a mismatch.
        let (other, _) = secret(&["b.example.com"]);
        let mismatched = Arc::new(TlsSecret {
            cert_pem: good.cert_pem.clone(),
            key_pem: other.key_pem.clone(),
        });
        let broken = cache.get(&key, &mismatched).expect_err("mismatch");
        assert!(matches!(*broken.error, CertError::Mismatch(_)));
        let kept = broken.last_good.expect("the last good certificate");
        assert_eq!(kept.cert[0].as_ref(), &der[..]);

        // Asked again with the same broken content (the next rebuild): still the last good one.
        let again = cache.get(&key, &mismatched).expect_err("still broken");
        assert!(again.last_good.is_some());

        // Garbage PEM after that: the last good certificate is still the first one.
        let garbage = Arc::new(TlsSecret {
            cert_pem: b"-----BEGIN CERTIFICATE-----\nnot base64\n".to_vec(),
            key_pem: good.key_pem.clone(),
        });
        let broken = cache.get(&key, &garbage).expect_err("bad PEM");
        assert_eq!(broken.last_good.expect("kept").cert[0].as_ref(), &der[..]);

        // Fixed with a new certificate: that one serves and becomes the last good one.
        let (fixed, fixed_der) = secret(&["a.example.com"]);
        assert_eq!(
            cache.get(&key, &fixed).expect("valid").cert[0].as_ref(),
            &fixed_der[..]
        );
        let broken = cache.get(&key, &mismatched).expect_err("broken again");
        assert_eq!(
            broken.last_good.expect("kept").cert[0].as_ref(),
            &fixed_der[..]
        );
    }

    #[test]
    fn a_secret_never_valid_or_deleted_has_no_last_good_certificate() {
        let cache = CertCache::default();
        let key = ObjectKey::new("default", "tls");
        let (good, _) = secret(&["a.example.com"]);
        let (other, _) = secret(&["b.example.com"]);
        let mismatched = Arc::new(TlsSecret {
            cert_pem: good.cert_pem.clone(),
            key_pem: other.key_pem.clone(),
        });
        assert!(
            cache
                .get(&key, &mismatched)
                .expect_err("broken")
                .last_good
                .is_none()
        );

        assert!(cache.get(&key, &good).is_ok());
        // Deleted, then created again broken: nothing to fall back to.
        cache.retain(|_| false);
        assert!(
            cache
                .get(&key, &mismatched)
                .expect_err("broken")
                .last_good
                .is_none()
        );
    }
}
