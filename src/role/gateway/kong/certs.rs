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
