//! Test certificates made with strongSwan's `pki` tool, so that what a certificate says comes
//! from a tool independent of our code. Everything is PEM (`--outform pem`); each function
//! writes into a directory the caller owns and returns the paths.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{run_ok, tool};

/// How long one `pki` run may take (an RSA key is the slow one).
const PKI_TIMEOUT: Duration = Duration::from_secs(30);

/// A key pair `pki --gen` can make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on NIST P-256 (IKEv2 auth method 9, or RFC 7427 digital signature).
    EcdsaP256,
    /// ECDSA on NIST P-384 (auth method 10, or RFC 7427).
    EcdsaP384,
    /// ECDSA on NIST P-521 (auth method 11, or RFC 7427).
    EcdsaP521,
    /// Ed25519 (RFC 8420, through RFC 7427).
    Ed25519,
    /// RSA with a modulus of this many bits.
    Rsa(u32),
}

impl KeyType {
    fn gen_args(self) -> Vec<String> {
        let (kind, size) = match self {
            KeyType::EcdsaP256 => ("ecdsa", Some(256)),
            KeyType::EcdsaP384 => ("ecdsa", Some(384)),
            KeyType::EcdsaP521 => ("ecdsa", Some(521)),
            KeyType::Ed25519 => ("ed25519", None),
            KeyType::Rsa(bits) => ("rsa", Some(bits)),
        };
        let mut args = vec!["--type".to_owned(), kind.to_owned()];
        if let Some(size) = size {
            args.extend(["--size".to_owned(), size.to_string()]);
        }
        args
    }
}

/// A self-signed certification authority: its certificate and private key (PEM).
#[derive(Clone, Debug)]
pub struct Ca {
    /// The CA certificate, PEM.
    pub cert: PathBuf,
    /// The CA's private key, PEM.
    pub key: PathBuf,
    /// Its subject (and issuer) DN, as given.
    pub dn: String,
}

/// An end-entity certificate and its private key (PEM).
#[derive(Clone, Debug)]
pub struct Credential {
    /// The certificate, PEM, signed by the CA it was issued by.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
}

/// Makes a CA valid for ten years: key `<dir>/<name>.key.pem`, certificate
/// `<dir>/<name>.cert.pem`, subject `dn` (strongSwan syntax: "C=CH, O=xipsec, CN=Test CA").
pub fn make_ca(dir: &Path, name: &str, dn: &str, key_type: KeyType) -> Result<Ca, String> {
    let key = gen_key(dir, name, key_type)?;
    let cert = dir.join(format!("{name}.cert.pem"));
    let pem = pki(&[
        "--self",
        "--ca",
        "--lifetime",
        "3650",
        "--type",
        "priv",
        "--in",
        &path_str(&key)?,
        "--dn",
        dn,
        "--outform",
        "pem",
    ])?;
    write(&cert, &pem)?;
    Ok(Ca {
        cert,
        key,
        dn: dn.to_owned(),
    })
}

/// Issues an end-entity certificate from `ca`, valid for a year: a fresh key of `key_type` in
/// `<dir>/<name>.key.pem`, the certificate in `<dir>/<name>.cert.pem`, subject `dn`, and one
/// subjectAltName per entry of `sans` — `pki` makes an IP address of "10.0.0.1" or "fd00::1",
/// an rfc822Name of "a@b.example" and a dNSName of anything else ("moon.xipsec.test").
pub fn issue(
    ca: &Ca,
    dir: &Path,
    name: &str,
    dn: &str,
    sans: &[&str],
    key_type: KeyType,
) -> Result<Credential, String> {
    let key = gen_key(dir, name, key_type)?;
    let cert = dir.join(format!("{name}.cert.pem"));
    let key_path = path_str(&key)?;
    let ca_cert = path_str(&ca.cert)?;
    let ca_key = path_str(&ca.key)?;
    let mut args = vec![
        "--issue",
        "--lifetime",
        "365",
        "--type",
        "priv",
        "--in",
        &key_path,
        "--cacert",
        &ca_cert,
        "--cakey",
        &ca_key,
        "--dn",
        dn,
        "--outform",
        "pem",
    ];
    for san in sans {
        args.extend(["--san", san]);
    }
    let pem = pki(&args)?;
    write(&cert, &pem)?;
    Ok(Credential { cert, key })
}

/// `pki --print` of a certificate: subject, subjectAltNames, issuer, validity, key type, as
/// strongSwan reads them.
pub fn print(cert: &Path) -> Result<String, String> {
    pki(&["--print", "--type", "x509", "--in", &path_str(cert)?])
}

fn gen_key(dir: &Path, name: &str, key_type: KeyType) -> Result<PathBuf, String> {
    let key = dir.join(format!("{name}.key.pem"));
    let mut args: Vec<String> = vec!["--gen".to_owned()];
    args.extend(key_type.gen_args());
    args.extend(["--outform".to_owned(), "pem".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let pem = pki(&args)?;
    write(&key, &pem)?;
    Ok(key)
}

fn pki(args: &[&str]) -> Result<String, String> {
    run_ok(Command::new(tool("pki")).args(args), PKI_TIMEOUT)
}

fn write(path: &Path, contents: &str) -> Result<(), String> {
    if !contents.starts_with("-----BEGIN") {
        return Err(format!(
            "pki wrote no PEM for {}:\n{contents}",
            path.display()
        ));
    }
    std::fs::write(path, contents).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn path_str(path: &Path) -> Result<String, String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}
