//! Certificates for the private Docker engine that listens on TCP with
//! `--tlsverify`: one CA, a server certificate for 127.0.0.1, and a client
//! certificate in the `DOCKER_CERT_PATH` layout (`ca.pem`, `cert.pem`,
//! `key.pem`) for the tests to reach it with.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// Where the engine listens and what both ends need.
pub struct TlsSetup {
    /// The loopback port of `tcp://127.0.0.1:PORT`.
    pub port: u16,
    /// `ca.pem`, `server-cert.pem`, `server-key.pem`.
    pub server: PathBuf,
    /// `ca.pem`, `cert.pem`, `key.pem`.
    pub client: PathBuf,
}

impl TlsSetup {
    /// `tcp://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

/// Generates the certificates below `dir` and picks a free port.
pub fn generate(dir: &Path) -> Result<TlsSetup> {
    let (server, client) = (dir.join("server"), dir.join("client"));
    fs::create_dir_all(&server)?;
    fs::create_dir_all(&client)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "anvyl itest CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;

    let leaf = |names: Vec<String>, purpose, cert: &Path, key: &Path| -> Result<()> {
        let mut params = CertificateParams::new(names)?;
        params.extended_key_usages = vec![purpose];
        let pair = KeyPair::generate()?;
        fs::write(cert, params.signed_by(&pair, &ca)?.pem())?;
        fs::write(key, pair.serialize_pem())?;
        Ok(())
    };
    leaf(
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
        &server.join("server-cert.pem"),
        &server.join("server-key.pem"),
    )?;
    leaf(
        vec!["anvyl-itest-client".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
        &client.join("cert.pem"),
        &client.join("key.pem"),
    )?;
    for dir in [&server, &client] {
        fs::write(dir.join("ca.pem"), ca.pem())?;
    }
    // A port the kernel just handed out is free a moment later; dockerd
    // fails loudly (and the run with it) in the rare case it is not.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("pick a loopback port")?
        .port();
    Ok(TlsSetup {
        port,
        server,
        client,
    })
}
