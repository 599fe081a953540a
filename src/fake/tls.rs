//! The fake's TLS: a self-signed ECDSA P-256 certificate made at start-up, written by hand in
//! DER (a few dozen bytes of structure; no certificate crate in the binary that carries the
//! `demo`). Clients trust it by being given the certificate itself as their only extra root.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_rustls::TlsAcceptor;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[cfg(test)]
/// A TLS server config for a new certificate valid for `names` (IP addresses or DNS names),
/// and that certificate as PEM, for the client's root store.
pub(crate) fn tls_acceptor(names: &[&str]) -> Result<(TlsAcceptor, String), String> {
    tls_acceptor_for(names, rustls::DEFAULT_VERSIONS)
}

/// [`tls_acceptor`] speaking only the TLS `versions` given.
#[cfg(test)]
pub(crate) fn tls_acceptor_for(
    names: &[&str],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<(TlsAcceptor, String), String> {
    let server = tls_server(names, versions)?;
    Ok((server.acceptor, server.pem))
}

/// A TLS server's config, the certificate clients trust (PEM), and a switch that makes new
/// handshakes present a twin of that certificate which is not valid yet.
pub(crate) struct TlsServer {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) pem: String,
    #[cfg_attr(not(feature = "fake-twitch"), allow(dead_code))]
    pub(crate) not_valid_yet: Arc<AtomicBool>,
}

/// [`tls_acceptor_for`], with the switch: the twin has the same name and key (so the client's
/// trust in the first still covers it) and is valid only from 2049, as every certificate
/// looks to a machine whose clock is far behind.
pub(crate) fn tls_server(
    names: &[&str],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<TlsServer, String> {
    let rng = SystemRandom::new();
    let (pkcs8, key) = new_key(&rng)?;
    let valid = certificate(names, &key, b"200101000000Z", &rng)?;
    let twin = certificate(names, &key, b"491231000000Z", &rng)?;
    let pem = pem("CERTIFICATE", &valid);
    // the ECDSA key loaded as such: `with_single_cert` would link RSA signing too
    let signer = rustls::crypto::ring::sign::any_ecdsa_type(&PrivateKeyDer::Pkcs8(
        PrivatePkcs8KeyDer::from(pkcs8),
    ))
    .map_err(|e| e.to_string())?;
    let certified = |cert: Vec<u8>| {
        Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(cert)],
            signer.clone(),
        ))
    };
    let not_valid_yet = Arc::new(AtomicBool::new(false));
    let resolver = Certs {
        valid: certified(valid),
        not_yet: certified(twin),
        not_valid_yet: not_valid_yet.clone(),
    };
    let provider = crate::tls::provider();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    Ok(TlsServer {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        pem,
        not_valid_yet,
    })
}

/// The certificate, whatever the client asks for: the valid one, or its twin while the switch
/// is on.
#[derive(Debug)]
struct Certs {
    valid: Arc<CertifiedKey>,
    not_yet: Arc<CertifiedKey>,
    not_valid_yet: Arc<AtomicBool>,
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(if self.not_valid_yet.load(Ordering::Relaxed) {
            self.not_yet.clone()
        } else {
            self.valid.clone()
        })
    }
}

const ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

fn err(what: &str) -> String {
    format!("cannot make the fake's certificate: {what}")
}

/// A new P-256 key: PKCS#8 DER, and the key to sign with.
fn new_key(rng: &SystemRandom) -> Result<(Vec<u8>, EcdsaKeyPair), String> {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, rng)
        .map_err(|_| err("key generation failed"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), rng)
        .map_err(|_| err("key unusable"))?;
    Ok((pkcs8.as_ref().to_vec(), key))
}

/// A self-signed X.509 v3 certificate for `names` (DER) and its key (PKCS#8 DER).
#[cfg(test)]
fn self_signed(names: &[&str]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let rng = SystemRandom::new();
    let (pkcs8, key) = new_key(&rng)?;
    Ok((certificate(names, &key, b"200101000000Z", &rng)?, pkcs8))
}

/// A self-signed X.509 v3 certificate (DER) for `names` with `key`, valid from `not_before`
/// (UTCTime) on.
fn certificate(
    names: &[&str],
    key: &EcdsaKeyPair,
    not_before: &[u8],
    rng: &SystemRandom,
) -> Result<Vec<u8>, String> {
    let mut serial = [0u8; 12];
    ring::rand::SecureRandom::fill(rng, &mut serial).map_err(|_| err("no randomness"))?;
    serial[0] = (serial[0] & 0x7f) | 0x40; // positive and minimal

    let algorithm = der(0x30, &der(0x06, ECDSA_WITH_SHA256));
    let name = der(
        0x30,
        &der(
            0x31,
            &der(
                0x30,
                &[
                    der(0x06, COMMON_NAME),
                    der(0x0c, b"twitch-colorchanger fake Twitch"),
                ]
                .concat(),
            ),
        ),
    );
    let validity = der(
        0x30,
        &[der(0x17, not_before), der(0x18, b"99991231235959Z")].concat(),
    );
    let spki = der(
        0x30,
        &[
            der(
                0x30,
                &[der(0x06, EC_PUBLIC_KEY), der(0x06, PRIME256V1)].concat(),
            ),
            bit_string(key.public_key().as_ref()),
        ]
        .concat(),
    );
    let alt_names: Vec<u8> = names
        .iter()
        .flat_map(|n| match n.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => der(0x87, &ip.octets()),
            Ok(IpAddr::V6(ip)) => der(0x87, &ip.octets()),
            Err(_) => der(0x82, n.as_bytes()),
        })
        .collect();
    let san = der(
        0x30,
        &[
            der(0x06, SUBJECT_ALT_NAME),
            der(0x04, &der(0x30, &alt_names)),
        ]
        .concat(),
    );
    let tbs = der(
        0x30,
        &[
            der(0xa0, &der(0x02, &[2])), // v3
            der(0x02, &serial),
            algorithm.clone(),
            name.clone(),
            validity,
            name,
            spki,
            der(0xa3, &der(0x30, &san)),
        ]
        .concat(),
    );
    let signature = key.sign(rng, &tbs).map_err(|_| err("signing failed"))?;
    Ok(der(
        0x30,
        &[tbs, algorithm, bit_string(signature.as_ref())].concat(),
    ))
}

/// One DER element: tag, definite length, contents.
fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(contents);
    out
}

/// A BIT STRING of whole bytes.
fn bit_string(bytes: &[u8]) -> Vec<u8> {
    der(0x03, &[&[0u8][..], bytes].concat())
}

/// PEM armour, 64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    let body = crate::ws::base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{ServerName, UnixTime};
    use std::time::Duration;

    fn verify(names: &[&str], server: &str) -> Result<(), String> {
        let (cert, _) = self_signed(names)?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(cert.clone()))
            .map_err(|e| e.to_string())?;
        let provider = crate::tls::provider();
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| e.to_string())?;
        let name = ServerName::try_from(server.to_owned()).map_err(|e| e.to_string())?;
        let now = UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000));
        rustls::client::danger::ServerCertVerifier::verify_server_cert(
            verifier.as_ref(),
            &CertificateDer::from(cert),
            &[],
            &name,
            &[],
            now,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    #[test]
    fn the_certificate_verifies_for_its_names_only() {
        let names = ["127.0.0.1", "localhost", "::1"];
        for server in names {
            assert_eq!(verify(&names, server), Ok(()), "{server}");
        }
        let wrong = verify(&names, "twitch.tv").unwrap_err();
        assert!(wrong.contains("not valid for name"), "{wrong}");
        assert!(verify(&["localhost"], "127.0.0.1").is_err());
    }

    #[test]
    fn long_elements_get_long_lengths() {
        assert_eq!(der(0x04, &[7; 3]), [0x04, 3, 7, 7, 7]);
        assert_eq!(&der(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(&der(0x04, &[0; 300])[..4], [0x04, 0x82, 1, 44]);
    }
}
