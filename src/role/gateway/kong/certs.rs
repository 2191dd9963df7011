//! The hybrid-mode cluster certificate, made in-process.
//!
//! Kong's control and data planes authenticate each other with one shared certificate
//! (`cluster_mtls = shared`). Kong makes it with `kong hybrid gen_cert`: an EC key on curve
//! secp384r1 and a self-signed certificate with subject and issuer `CN=kong_clustering`, valid
//! from now for 1095 days by default. Kong's framework ran that command on the Kong node (or
//! copied a fixture pair); perflab makes the same pair with `rcgen`, so a hybrid lab needs no
//! `kong` binary on the controller and every run gets a fresh key.

use std::time::Duration;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P384_SHA384};

use crate::{Error, Result};

/// The subject (and issuer) common name `kong hybrid gen_cert` uses.
pub const CLUSTER_CN: &str = "kong_clustering";
/// `kong hybrid gen_cert`'s default validity: three years.
pub const DEFAULT_DAYS: u32 = 1095;

/// A PEM certificate and its PEM private key.
#[derive(Debug, Clone)]
pub struct ClusterCert {
    /// The certificate (`-----BEGIN CERTIFICATE-----`).
    pub cert_pem: String,
    /// The private key (`-----BEGIN PRIVATE KEY-----`, PKCS#8).
    pub key_pem: String,
}

/// Makes a self-signed P-384 certificate for `CN=kong_clustering`, valid from now for `days`.
pub fn generate(days: u32) -> Result<ClusterCert> {
    let err = |e: rcgen::Error| Error::Lab(format!("generating the cluster certificate: {e}"));
    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CLUSTER_CN);
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + Duration::from_secs(u64::from(days) * 86_400);
    let cert = params.self_signed(&key).map_err(err)?;
    Ok(ClusterCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {

    use crate::role::gateway::kong::*;

    #[test]
    fn cluster_certificate_is_self_signed_kong_clustering_p384() {
        use x509_parser::pem::parse_x509_pem;
        let pair = certs::generate(certs::DEFAULT_DAYS).unwrap();
        assert!(pair.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pair.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let (_, pem) = parse_x509_pem(pair.cert_pem.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        let cn: Vec<&str> = cert
            .subject()
            .iter_common_name()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(cn, [certs::CLUSTER_CN]);
        assert_eq!(cert.subject(), cert.issuer(), "self-signed");
        cert.verify_signature(None).expect("signed by its own key");
        assert!(cert.validity().is_valid());
        let secs =
            (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) as u64;
        assert_eq!(secs, 1095 * 86_400);
        // EC key on secp384r1 (OID 1.3.132.0.34), like `kong hybrid gen_cert`.
        let spki = cert.public_key();
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.to_id_string());
        assert_eq!(curve.as_deref(), Some("1.3.132.0.34"));
        // The key file belongs to the certificate.
        let key = rcgen::KeyPair::from_pem(&pair.key_pem).unwrap();
        use rcgen::PublicKeyData;
        assert_eq!(key.subject_public_key_info(), spki.raw);
        // Every call makes a new key.
        let other = certs::generate(1).unwrap();
        assert_ne!(other.key_pem, pair.key_pem);
    }
}
