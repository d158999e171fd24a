//! Test certificates: a throwaway CA that issues ECDSA P-256 server certificates, PEM files in a
//! temporary directory, and `kubernetes.io/tls` Secret manifests.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::{Value, json};

/// A CA for tests. Every call to [`TestCa::new`] makes a new key.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    pub fn new() -> Self {
        Self::named("Portico Test CA")
    }

    pub fn named(common_name: &str) -> Self {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("generating a P-256 key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-signing the test CA");
        Self { issuer }
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server (and client) certificate for `names` (DNS names, wildcards or IP addresses),
    /// signed by this CA: `(certificate PEM, private key PEM)`. The first name is the subject's
    /// common name.
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        self.issue_with(names, |_| {})
    }

    /// As [`TestCa::issue`], with the parameters adjusted first (validity, say).
    pub fn issue_with(
        &self,
        names: &[&str],
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> (String, String) {
        let sans: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans).expect("valid subject alternative names");
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("portico-test"),
        );
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        adjust(&mut params);
        let key = KeyPair::generate().expect("generating a P-256 key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("signing with the test CA");
        (cert.pem(), key.serialize_pem())
    }

    /// Write the CA certificate to `dir/ca.crt`.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.crt");
        std::fs::write(&path, self.cert_pem()).expect("writing the CA certificate");
        path
    }
}

/// Write `tls.crt` and `tls.key` into `dir`; returns their paths.
pub fn write_pair(dir: &Path, cert_pem: &str, key_pem: &str) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&c, cert_pem).expect("writing tls.crt");
    std::fs::write(&k, key_pem).expect("writing tls.key");
    (c, k)
}

/// A new temporary directory holding `files` (`(relative path, contents)`), removed on drop.
pub fn tempdir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    for (name, contents) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("creating a directory");
        }
        std::fs::write(&path, contents).expect("writing a file");
    }
    dir
}

/// A `kubernetes.io/tls` Secret as a JSON value (for `FakeApiServer::apply`).
pub fn tls_secret(namespace: &str, name: &str, cert_pem: &str, key_pem: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"tls.crt": STANDARD.encode(cert_pem), "tls.key": STANDARD.encode(key_pem)},
    })
}

/// A `kubernetes.io/tls` Secret manifest (YAML, base64 data).
pub fn tls_secret_yaml(namespace: &str, name: &str, cert_pem: &str, key_pem: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\ntype: kubernetes.io/tls\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        STANDARD.encode(cert_pem),
        STANDARD.encode(key_pem)
    )
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

    use super::*;

    /// A TLS handshake in memory: does a client trusting `ca` accept `cert` for `sni`?
    fn handshake(ca: &str, cert: &str, key: &str, sni: &str) -> Result<(), rustls::Error> {
        crate::install_crypto_provider();
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots.add(c.expect("CA PEM")).expect("a CA certificate");
        }
        let client = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
            .map(|c| c.expect("cert PEM"))
            .collect();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key PEM");
        let server = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a usable pair");
        let name = ServerName::try_from(sni.to_owned()).expect("a server name");
        let mut c = ClientConnection::new(Arc::new(client), name).expect("client");
        let mut s = ServerConnection::new(Arc::new(server)).expect("server");
        for _ in 0..10 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).expect("client writes");
            s.read_tls(&mut buf.as_slice()).expect("server reads");
            s.process_new_packets()?;
            let mut buf = Vec::new();
            s.write_tls(&mut buf).expect("server writes");
            c.read_tls(&mut buf.as_slice()).expect("client reads");
            c.process_new_packets()?;
            if !c.is_handshaking() && !s.is_handshaking() {
                c.writer().write_all(b"ping").expect("write");
                let mut buf = Vec::new();
                c.write_tls(&mut buf).expect("client writes");
                s.read_tls(&mut buf.as_slice()).expect("server reads");
                s.process_new_packets()?;
                let mut got = [0u8; 4];
                s.reader().read_exact(&mut got).expect("read");
                assert_eq!(&got, b"ping");
                return Ok(());
            }
        }
        panic!("the handshake did not finish");
    }

    #[test]
    fn issued_certificates_verify_for_their_names_only() {
        let ca = TestCa::new();
        let (cert, key) = ca.issue(&["a.example.com", "*.b.example.com", "127.0.0.1"]);
        handshake(&ca.cert_pem(), &cert, &key, "a.example.com").expect("exact name");
        handshake(&ca.cert_pem(), &cert, &key, "x.b.example.com").expect("wildcard");
        handshake(&ca.cert_pem(), &cert, &key, "127.0.0.1").expect("IP address");
        assert!(
            handshake(&ca.cert_pem(), &cert, &key, "c.example.com").is_err(),
            "another name is refused"
        );
        let other = TestCa::new();
        assert!(
            handshake(&other.cert_pem(), &cert, &key, "a.example.com").is_err(),
            "another CA is refused"
        );
    }

    #[test]
    fn secrets_and_files_carry_the_pem() {
        let ca = TestCa::new();
        let (cert, key) = ca.issue(&["a.example.com"]);
        let yaml = tls_secret_yaml("shop", "a-tls", &cert, &key);
        let parsed: Value = serde_norway::from_str(&yaml).expect("valid YAML");
        assert_eq!(parsed, tls_secret("shop", "a-tls", &cert, &key));
        let data = parsed["data"]["tls.crt"].as_str().expect("base64 text");
        assert_eq!(STANDARD.decode(data).expect("base64"), cert.as_bytes());

        let dir = tempdir_with(&[("manifests/secret.yaml", &yaml)]);
        assert!(dir.path().join("manifests/secret.yaml").is_file());
        let (c, k) = write_pair(dir.path(), &cert, &key);
        assert_eq!(std::fs::read_to_string(c).expect("read"), cert);
        assert_eq!(std::fs::read_to_string(k).expect("read"), key);
        assert!(
            std::fs::read_to_string(ca.write_ca(dir.path()))
                .expect("read")
                .contains("BEGIN CERTIFICATE")
        );
    }
}
