//! TLS for `sim serve --tls`: a certificate authority generated for this run and a server
//! certificate it signs for `127.0.0.1`, `::1` and `localhost`, so clients that insist on
//! HTTPS (the Azure SDK's bearer-token policy, the Azure CLI) trust the simulator through the
//! CA file alone (`REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`, a kubeconfig's
//! `certificate-authority-data`).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A TLS acceptor and the PEM of the CA that signed its certificate.
pub(crate) struct Tls {
    /// Accepts TLS connections (HTTP/1.1).
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// The CA certificate (PEM).
    pub ca_pem: String,
}

/// Generates a fresh CA and server certificate.
pub(crate) fn generate() -> Result<Tls, String> {
    let err = |what: &str, e: &dyn std::fmt::Display| format!("cannot make the simulator's {what}: {e}");
    let ca_key = KeyPair::generate().map_err(|e| err("CA key", &e))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| err("CA", &e))?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "rollbook simulator CA");
    ca.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| err("CA certificate", &e))?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().map_err(|e| err("server key", &e))?;
    let names = vec!["127.0.0.1".to_string(), "::1".to_string(), "localhost".to_string()];
    let mut leaf = CertificateParams::new(names).map_err(|e| err("server certificate", &e))?;
    leaf.distinguished_name.push(DnType::CommonName, "localhost");
    leaf.use_authority_key_identifier_extension = true;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer).map_err(|e| err("server certificate", &e))?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err("TLS configuration", &e))?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone(), ca_cert.der().clone()], private)
        .map_err(|e| err("TLS configuration", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca_pem: ca_cert.pem() })
}
