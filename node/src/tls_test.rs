use super::*;

const DAY: u32 = 1;

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files { dir: tempfile::tempdir().unwrap() }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A CA and one node certificate for `hosts`, written out; returns the three paths.
    fn node(&self, ca: &Generated, hosts: &[&str], prefix: &str) -> TlsFiles {
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let (cert, key) = generate_node(ca, &hosts, DAY).unwrap();
        TlsFiles {
            cert: self.write(&format!("{prefix}.pem"), &cert),
            key: self.write(&format!("{prefix}.key"), &key),
            ca: self.write("ca.pem", &ca.ca_cert),
        }
    }
}

fn load(files: &TlsFiles, host: &str) -> Result<NodeTls, TlsError> {
    NodeTls::load(files, host, Duration::from_secs(1))
}

#[test]
fn a_certificate_from_the_ca_for_the_nodes_host_is_accepted() {
    let files = Files::new();
    let ca = generate_ca(DAY).unwrap();
    let node = files.node(&ca, &["127.0.0.1", "node-1.mortar"], "node");
    assert!(load(&node, "127.0.0.1").unwrap().dialer().is_tls());
    assert!(load(&node, "node-1.mortar").is_ok());
}

#[test]
fn a_certificate_for_another_host_is_refused_naming_the_host() {
    let files = Files::new();
    let ca = generate_ca(DAY).unwrap();
    let node = files.node(&ca, &["127.0.0.1"], "node");
    let error = load(&node, "127.0.0.2").unwrap_err().to_string();
    assert!(error.contains("`127.0.0.2`") && error.contains("as a server"), "{error}");
}

#[test]
fn a_certificate_another_ca_signed_is_refused() {
    let files = Files::new();
    let ca = generate_ca(DAY).unwrap();
    let other = generate_ca(DAY).unwrap();
    let mut node = files.node(&other, &["127.0.0.1"], "node");
    node.ca = files.write("cluster-ca.pem", &ca.ca_cert);
    let error = load(&node, "127.0.0.1").unwrap_err();
    assert!(matches!(error, TlsError::Rejected { .. }), "{error}");
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let files = Files::new();
    let ca = generate_ca(DAY).unwrap();
    let mut one = files.node(&ca, &["127.0.0.1"], "one");
    let two = files.node(&ca, &["127.0.0.1"], "two");
    one.key = two.key;
    let error = load(&one, "127.0.0.1").unwrap_err().to_string();
    assert!(error.contains("its key is not the one in"), "{error}");
}

#[test]
fn missing_and_non_pem_files_are_refused_with_the_flag_named() {
    let files = Files::new();
    let ca = generate_ca(DAY).unwrap();
    let node = files.node(&ca, &["127.0.0.1"], "node");
    let missing = TlsFiles { key: files.dir.path().join("absent.key"), ..node.clone() };
    let error = load(&missing, "127.0.0.1").unwrap_err().to_string();
    assert!(error.starts_with("cannot read --tls-key") && error.contains("absent.key"), "{error}");
    let garbage = TlsFiles { cert: files.write("garbage.pem", "not a certificate\n"), ..node.clone() };
    let error = load(&garbage, "127.0.0.1").unwrap_err().to_string();
    assert!(error.contains("--tls-cert") && error.contains("no PEM CERTIFICATE"), "{error}");
    let key_as_ca = TlsFiles { ca: node.key.clone(), ..node.clone() };
    let error = load(&key_as_ca, "127.0.0.1").unwrap_err().to_string();
    assert!(error.contains("--tls-ca"), "{error}");
    // Never the key's bytes in an error.
    let key_text = std::fs::read_to_string(&node.key).unwrap();
    let body = key_text.lines().nth(1).unwrap();
    assert!(!error.contains(body));
}

#[test]
fn the_dialer_picks_the_scheme() {
    let plain = Dialer::plain();
    assert!(!plain.is_tls());
    assert_eq!(plain.endpoint("127.0.0.1:7100").unwrap().uri().to_string(), "http://127.0.0.1:7100/");
    assert_eq!(plain.endpoint("https://h:1/").unwrap().uri().to_string(), "http://h:1/");
    let ca = generate_ca(DAY).unwrap();
    let tls = Dialer::client(ca.ca_cert.as_bytes(), None);
    assert!(tls.is_tls());
    assert_eq!(tls.endpoint("127.0.0.1:7100").unwrap().uri().to_string(), "https://127.0.0.1:7100/");
}

#[test]
fn host_of_strips_the_port_and_brackets() {
    assert_eq!(host_of("127.0.0.1:7100"), "127.0.0.1");
    assert_eq!(host_of("node-1.mortar:7100"), "node-1.mortar");
    assert_eq!(host_of("[::1]:7100"), "::1");
}
