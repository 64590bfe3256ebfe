//! TLS for the public listener: rustls with the aws-lc-rs provider (TLS 1.2 and 1.3, ECDHE +
//! AEAD suites only), ALPN `h2` and `http/1.1`, certificates from PEM files or generated dev
//! material, and the dev PKI written by `mcgate certs` (never committed).

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// TLS set-up failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// PEM content unusable.
    #[error("{0}")]
    Invalid(String),
}

/// PEM certificate chain and private key.
#[derive(Clone)]
pub struct TlsMaterial {
    /// Certificate chain, PEM.
    pub cert_pem: String,
    /// Private key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsMaterial([redacted key])")
    }
}

impl TlsMaterial {
    /// Reads the two files.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| TlsError::Io(p.display().to_string(), e));
        Ok(Self { cert_pem: read(cert)?, key_pem: read(key)? })
    }

    /// A self-signed ECDSA P-256 certificate for `localhost`, `127.0.0.1` and `::1` (dev only).
    pub fn generate_self_signed() -> Result<Self, TlsError> {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
        let ck = rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Invalid(e.to_string()))?;
        Ok(Self { cert_pem: ck.cert.pem(), key_pem: ck.signing_key.serialize_pem() })
    }

    /// A rustls acceptor for this material.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut self.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Invalid(format!("certificate: {e}")))?;
        if certs.is_empty() {
            return Err(TlsError::Invalid("no certificate in the PEM".into()));
        }
        let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut self.key_pem.as_bytes())
            .map_err(|e| TlsError::Invalid(format!("private key: {e}")))?
            .ok_or_else(|| TlsError::Invalid("no private key in the PEM".into()))?;
        let mut cfg =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|e| TlsError::Invalid(e.to_string()))?
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .map_err(|e| TlsError::Invalid(e.to_string()))?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(cfg)))
    }
}

/// Writes the dev PKI into `dir`: TLS certificate and key, RS256 and ES256 signing keys, the
/// `demo-rp-jwt` client's key pair (private PEM + public JWKS), and the secrets behind pairwise
/// subjects and subscriber ids. Existing files are kept unless `force`.
pub fn write_dev_material(dir: &Path, force: bool) -> Result<Vec<String>, TlsError> {
    std::fs::create_dir_all(dir).map_err(|e| TlsError::Io(dir.display().to_string(), e))?;
    let mut written = Vec::new();
    let mut put = |name: &str, content: &dyn Fn() -> Result<String, TlsError>| -> Result<(), TlsError> {
        let p = dir.join(name);
        if p.exists() && !force {
            return Ok(());
        }
        std::fs::write(&p, content()?).map_err(|e| TlsError::Io(p.display().to_string(), e))?;
        restrict(&p);
        written.push(p.display().to_string());
        Ok(())
    };
    let tls = TlsMaterial::generate_self_signed()?;
    put("server.pem", &|| Ok(tls.cert_pem.clone()))?;
    put("server-key.pem", &|| Ok(tls.key_pem.clone()))?;
    put("signing-rs256.pem", &|| {
        crate::tokens::keys::generate_rsa_pkcs8_pem().map_err(|e| TlsError::Invalid(e.to_string()))
    })?;
    put("signing-es256.pem", &|| {
        crate::tokens::keys::generate_p256_pkcs8_pem().map_err(|e| TlsError::Invalid(e.to_string()))
    })?;
    // The demo-rp-jwt client's key pair (routing.toml registers its public JWKS file).
    let rp_key = crate::tokens::keys::generate_p256_pkcs8_pem().map_err(|e| TlsError::Invalid(e.to_string()))?;
    let rp_jwks = crate::tokens::keys::SigningKey::from_pem(rp_key.as_bytes())
        .map(|k| crate::sim::rp_client::public_jwks(&k))
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    if !dir.join("demo-rp-jwt-key.pem").exists() || !dir.join("demo-rp-jwt.jwks.json").exists() {
        // The two files are a pair: one without the other is replaced together with it.
        let _ = std::fs::remove_file(dir.join("demo-rp-jwt-key.pem"));
        let _ = std::fs::remove_file(dir.join("demo-rp-jwt.jwks.json"));
    }
    put("demo-rp-jwt-key.pem", &|| Ok(rp_key.clone()))?;
    put("demo-rp-jwt.jwks.json", &|| Ok(rp_jwks.clone()))?;
    put("pairwise.secret", &|| Ok(crate::clock::random_token(48) + "\n"))?;
    put("subscriber-id.secret", &|| Ok(crate::clock::random_token(48) + "\n"))?;
    put("sms-hmac.secret", &|| Ok(crate::clock::random_token(48) + "\n"))?;
    put("log-pseudonym.secret", &|| Ok(crate::clock::random_token(48) + "\n"))?;
    Ok(written)
}

#[cfg(unix)]
fn restrict(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict(_p: &Path) {}
