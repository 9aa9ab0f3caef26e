//! TLS on the gRPC port: clients and peers speak TLS to a node, and nodes prove who they are to
//! each other with certificates (mutual TLS).
//!
//! A node started with `--tls-cert`, `--tls-key` and `--tls-ca` serves only TLS on its gRPC port
//! and dials its peers with TLS, presenting its own certificate. The CA is the cluster's: it signs
//! the nodes' certificates, peers check each other's against it, and clients check the node's.
//! A client needs no certificate of its own (it authenticates with a token, see [`crate::auth`]);
//! but the services only nodes use (`mortar.internal.v1.Epoxy`, `mortar.internal.v1.Control`)
//! accept a call only on a connection that presented a certificate the CA signed ([`PeerCheck`]).
//! A certificate from that CA is therefore a node's credential: issue clients tokens, not
//! certificates.
//!
//! Everything is checked when the node starts ([`NodeTls::load`]): the files are PEM, the key is
//! the certificate's, the CA signed the certificate, and the certificate names the address peers
//! dial (`--advertise`, or the node's `--initial-cluster` entry) and may be used both to serve and
//! to dial. A mistake is a one-line error at start-up rather than failed handshakes later.
//!
//! `mortar cert` ([`generate`]) writes a CA and node certificates for a test or a small cluster.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};
use tonic::{Request, Status};

/// Largest certificate, key or CA file read (a chain of a few certificates is a few KiB).
pub const PEM_FILE_BYTES_MAX: u64 = 1 << 20;

/// The three files of a node's TLS configuration, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The node's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The certificate's private key (PEM, PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The cluster's CA certificate(s) (PEM).
    pub ca: PathBuf,
}

/// Why a node's TLS configuration cannot be used. Retrying does not help: fix the files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}: {reason}", path.display())]
    Unreadable { what: &'static str, path: PathBuf, reason: String },
    #[error("{what} {} holds no PEM {expected} (a file starting with -----BEGIN {expected}-----)", path.display())]
    NotPem { what: &'static str, path: PathBuf, expected: &'static str },
    #[error("{what} {}: {reason}", path.display())]
    Invalid { what: &'static str, path: PathBuf, reason: String },
    #[error(
        "the certificate {} cannot serve as this node's: {reason} (issue it from the CA in {} for \
         the host `{host}` with both server and client authentication, e.g. with `mortar cert \
         node`)",
        cert.display(),
        ca.display()
    )]
    Rejected { cert: PathBuf, ca: PathBuf, host: String, reason: String },
}

/// A node's loaded and checked TLS configuration.
#[derive(Clone)]
pub struct NodeTls {
    server: ServerTlsConfig,
    dialer: Dialer,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeTls")
    }
}

impl NodeTls {
    /// Reads and checks `files` for a node whose peers dial it at `host` (a DNS name or an IP
    /// address, without the port). A handshake that has not finished after `handshake` is
    /// dropped.
    pub fn load(files: &TlsFiles, host: &str, handshake: Duration) -> Result<NodeTls, TlsError> {
        let cert_pem = read_pem(&files.cert, "--tls-cert")?;
        let key_pem = read_pem(&files.key, "--tls-key")?;
        let ca_pem = read_pem(&files.ca, "--tls-ca")?;
        let chain = certificates(&cert_pem, &files.cert, "--tls-cert")?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NotPem {
            what: "--tls-key",
            path: files.key.clone(),
            expected: "PRIVATE KEY",
        })?;
        let roots = root_store(&ca_pem, &files.ca)?;
        let rejected = |reason: String| TlsError::Rejected {
            cert: files.cert.clone(),
            ca: files.ca.clone(),
            host: host.to_string(),
            reason,
        };
        // The provider tonic's `tls-ring` serves and dials with (deprecated in rustls 0.23.48 for
        // lacking post-quantum key exchange, which only the aws-lc-rs provider has, and that one
        // needs cmake and nasm to build).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let signing = provider.key_provider.load_private_key(key).map_err(|e| TlsError::Invalid {
            what: "--tls-key",
            path: files.key.clone(),
            reason: format!("not a usable private key: {e}"),
        })?;
        rustls::sign::CertifiedKey::new(chain.clone(), signing)
            .keys_match()
            .map_err(|_| rejected(format!("its key is not the one in {}", files.key.display())))?;
        let (leaf, intermediates) = chain.split_first().expect("certificates() returns at least one");
        let server_name = ServerName::try_from(host.to_string())
            .map_err(|_| rejected(format!("`{host}` is neither a DNS name nor an IP address")))?;
        let now = UnixTime::now();
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots.clone()),
            provider.clone(),
        )
        .build()
        .map_err(|e| TlsError::Invalid { what: "--tls-ca", path: files.ca.clone(), reason: e.to_string() })?
        .verify_server_cert(leaf, intermediates, &server_name, &[], now)
        .map_err(|e| rejected(format!("as a server for {host}: {e}")))?;
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError::Invalid {
                what: "--tls-ca",
                path: files.ca.clone(),
                reason: e.to_string(),
            })?
            .verify_client_cert(leaf, intermediates, now)
            .map_err(|e| rejected(format!("as a client of its peers: {e}")))?;

        let identity = Identity::from_pem(&cert_pem, &key_pem);
        let ca = Certificate::from_pem(&ca_pem);
        let server = ServerTlsConfig::new()
            .identity(identity.clone())
            .client_ca_root(ca.clone())
            // Clients authenticate with tokens; the peer services check for a certificate.
            .client_auth_optional(true)
            .timeout(handshake);
        let client = ClientTlsConfig::new().ca_certificate(ca).identity(identity);
        // Build both once now: whatever tonic refuses is refused at start-up.
        tonic::transport::Server::builder().tls_config(server.clone()).map_err(|e| TlsError::Invalid {
            what: "--tls-cert",
            path: files.cert.clone(),
            reason: error_chain(&e),
        })?;
        let dialer = Dialer { tls: Some(client) };
        dialer.endpoint("127.0.0.1:1").map_err(|e| TlsError::Invalid {
            what: "--tls-cert",
            path: files.cert.clone(),
            reason: error_chain(&e),
        })?;
        Ok(NodeTls { server, dialer })
    }

    /// What the node's gRPC server serves with.
    pub fn server_config(&self) -> ServerTlsConfig {
        self.server.clone()
    }

    /// How the node dials its peers: TLS, presenting its certificate.
    pub fn dialer(&self) -> Dialer {
        self.dialer.clone()
    }
}

/// Makes the endpoints a node (or a client) dials: plain HTTP/2, or TLS with a CA and perhaps a
/// certificate of its own.
#[derive(Clone, Default)]
pub struct Dialer {
    tls: Option<ClientTlsConfig>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer").field("tls", &self.tls.is_some()).finish()
    }
}

impl Dialer {
    /// A dialer without TLS.
    pub fn plain() -> Dialer {
        Dialer { tls: None }
    }

    /// A client's dialer: TLS, trusting the CA in `ca_pem`, presenting `identity` if given
    /// (certificate and key, PEM).
    pub fn client(ca_pem: &[u8], identity: Option<(&[u8], &[u8])>) -> Dialer {
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
        if let Some((cert, key)) = identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        Dialer { tls: Some(config) }
    }

    /// Whether this dialer speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The endpoint of `address` (`host:port`, or a URI with a scheme; a scheme that disagrees
    /// with the dialer is replaced).
    pub fn endpoint(&self, address: &str) -> Result<Endpoint, tonic::transport::Error> {
        let authority = address.split_once("://").map_or(address, |(_, rest)| rest).trim_end_matches('/');
        match &self.tls {
            None => Endpoint::from_shared(format!("http://{authority}")),
            Some(tls) => Endpoint::from_shared(format!("https://{authority}"))?.tls_config(tls.clone()),
        }
    }
}

/// Lets a call through to a service only nodes use when the connection presented a certificate
/// the cluster's CA signed (the TLS handshake has verified it). Without TLS it lets every call
/// through: the node then has no way to tell peers from clients (and says so at start-up).
#[derive(Debug, Clone, Copy)]
pub struct PeerCheck {
    tls: bool,
}

impl PeerCheck {
    pub fn new(tls: bool) -> Self {
        Self { tls }
    }
}

impl tonic::service::Interceptor for PeerCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if !self.tls || request.peer_certs().is_some_and(|certs| !certs.is_empty()) {
            return Ok(request);
        }
        metrics::counter!("mortar_node_auth_refused_total", "reason" => "no_node_certificate").increment(1);
        Err(Status::unauthenticated(
            "this service is for the cluster's nodes: connect with a node certificate signed by the cluster's CA",
        ))
    }
}

/// The host part of a `host:port` address (brackets of an IPv6 address removed).
pub fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn read_pem(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    let unreadable = |reason: String| TlsError::Unreadable { what, path: path.to_path_buf(), reason };
    let len = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?.len();
    if len > PEM_FILE_BYTES_MAX {
        return Err(unreadable(format!(
            "{len} bytes, more than the {PEM_FILE_BYTES_MAX} a PEM file may have"
        )));
    }
    std::fs::read(path).map_err(|e| unreadable(e.to_string()))
}

fn certificates(
    pem: &[u8],
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid { what, path: path.to_path_buf(), reason: format!("bad PEM: {e}") })?;
    if certs.is_empty() {
        return Err(TlsError::NotPem { what, path: path.to_path_buf(), expected: "CERTIFICATE" });
    }
    Ok(certs)
}

fn root_store(pem: &[u8], path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(pem, path, "--tls-ca")? {
        roots.add(cert).map_err(|e| TlsError::Invalid {
            what: "--tls-ca",
            path: path.to_path_buf(),
            reason: format!("not a CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// A CA and the certificates it signed, in PEM.
pub struct Generated {
    pub ca_cert: String,
    pub ca_key: String,
}

/// A new self-signed CA for a cluster, valid for `days`.
pub fn generate_ca(days: u32) -> Result<Generated, rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "Mortar cluster CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    set_validity(&mut params, days);
    let cert = params.self_signed(&key)?;
    Ok(Generated { ca_cert: cert.pem(), ca_key: key.serialize_pem() })
}

/// A node certificate and its key (PEM), signed by the CA in `ca`, naming `hosts` (DNS names or
/// IP addresses), usable to serve and to dial, valid for `days`.
pub fn generate_node(ca: &Generated, hosts: &[String], days: u32) -> Result<(String, String), rcgen::Error> {
    let ca_key = rcgen::KeyPair::from_pem(&ca.ca_key)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca.ca_cert, ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hosts.first().map_or("mortar node", String::as_str));
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    set_validity(&mut params, days);
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn set_validity(params: &mut rcgen::CertificateParams, days: u32) {
    let now = std::time::SystemTime::now();
    // An hour of slack for clocks slightly behind this one.
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + Duration::from_secs(u64::from(days) * 86_400)).into();
}

#[cfg(test)]
#[path = "tls_test.rs"]
mod tests;
