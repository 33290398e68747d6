//! Certificate and key files of `auth = "pubkey"` ends: checked while the file is walked
//! (certificates that do not parse, keys that do not load or do not match the certificate are
//! reported at the `cert`, `key` or `cacerts` value), and loaded for the daemon into what
//! [`crate::ike::IkeConfig`] takes ([`load_local_auth`], [`load_peer_auth`]).

use std::path::Path;
use std::sync::Arc;

use super::read_secret_file;
use super::{AuthMethod, Cx, End, Identity, Tbl};
use crate::crypto::{Certificate, SigningKey, TrustAnchors};
use crate::ike::{self, Credentials, LocalAuth, PeerAuth};

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read '{}': {e}", path.display()))
}

fn certificates(path: &Path) -> Result<Vec<Certificate>, String> {
    Certificate::from_pem_or_der(&read(path)?).map_err(|e| format!("'{}': {e}", path.display()))
}

/// Our credentials from `cert` (our certificate, then any intermediates) and `key`.
fn credentials(cert: &Path, key: &Path) -> Result<Credentials, (&'static str, String)> {
    let chain = certificates(cert).map_err(|m| ("cert", m))?;
    let key_bytes = read_secret_file(key).map_err(|m| ("key", m))?;
    let signing_key = SigningKey::from_pem_or_der(&key_bytes)
        .map_err(|e| ("key", format!("'{}': {e}", key.display())))?;
    Credentials::new(signing_key, chain).map_err(|e| {
        (
            "key",
            format!("'{}' and '{}': {e}", key.display(), cert.display()),
        )
    })
}

/// The IKE identity of a configured `id` (a DN becomes its DER encoding).
pub fn ike_identity(id: &Identity) -> Option<ike::Identity> {
    Some(match id {
        Identity::Fqdn(s) => ike::Identity::Fqdn(s.clone()),
        Identity::UserFqdn(s) => ike::Identity::UserFqdn(s.clone()),
        Identity::Addr(a) => ike::Identity::Addr(*a),
        Identity::Dn(rdns) => ike::Identity::dn(rdns.iter().map(|r| (r.attr, r.value.as_str())))?,
    })
}

/// An identity as the file writes it.
fn id_text(id: &Identity) -> String {
    match id {
        Identity::Fqdn(s) | Identity::UserFqdn(s) => s.clone(),
        Identity::Addr(a) => a.to_string(),
        Identity::Dn(rdns) => rdns
            .iter()
            .map(|r| format!("{}={}", r.attr, r.value))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The trust anchors of `cacerts`.
fn anchors(paths: &[std::path::PathBuf]) -> Result<TrustAnchors, String> {
    let mut certs = Vec::new();
    for p in paths {
        certs.extend(certificates(p)?);
    }
    Ok(TrustAnchors::new(certs))
}

/// How we authenticate, from `[connection.local]`: the PSK, or a signature with the key and
/// certificate chain its `key` and `cert` files hold.
pub fn load_local_auth(local: &End) -> Result<LocalAuth, String> {
    match (local.auth, &local.cert, &local.key) {
        (AuthMethod::Psk, ..) => Ok(LocalAuth::Psk),
        (AuthMethod::Pubkey, Some(cert), Some(key)) => credentials(cert, key)
            .map(|c| LocalAuth::Signature(Arc::new(c)))
            .map_err(|(_, m)| m),
        (AuthMethod::Pubkey, ..) => Err("auth = \"pubkey\" needs 'cert' and 'key'".into()),
    }
}

/// How the peer must authenticate, from `[connection.remote]`: the PSK, or a certificate
/// chaining to one of its `cacerts`.
pub fn load_peer_auth(remote: &End) -> Result<PeerAuth, String> {
    match remote.auth {
        AuthMethod::Psk => Ok(PeerAuth::Psk),
        AuthMethod::Pubkey if remote.cacerts.is_empty() => {
            Err("auth = \"pubkey\" needs 'cacerts'".into())
        }
        AuthMethod::Pubkey => Ok(PeerAuth::Certificate(Arc::new(anchors(&remote.cacerts)?))),
    }
}

/// Reports, at the key that names them, certificate and key files that do not load. Files
/// that cannot be read at all were reported by the walk already.
pub(super) fn check(cx: &mut Cx<'_>, t: &Tbl<'_, '_>, e: &End, local: bool) {
    if e.auth != AuthMethod::Pubkey {
        return;
    }
    let report = |cx: &mut Cx<'_>, key: &str, message: String| {
        if let Some(v) = t.get(key) {
            cx.err(&v.span(), &t.p(key), message);
        }
    };
    if local {
        if let (Some(cert), Some(key)) = (&e.cert, &e.key) {
            if cert.is_file() && key.is_file() {
                match credentials(cert, key) {
                    Err((at, m)) => report(cx, at, m),
                    // The peer would refuse an identity our certificate does not hold.
                    Ok(c) => {
                        let ours = c.chain().first();
                        let id = e.id.as_ref().and_then(|i| Some((i, ike_identity(i)?)));
                        if let (Some(ours), Some((text, id))) = (ours, id) {
                            if !ours.matches_identity(&id.to_wire()) {
                                let m = format!(
                                    "'{}' is not in the certificate '{}' (neither its subject \
                                     nor a subjectAltName)",
                                    id_text(text),
                                    cert.display()
                                );
                                report(cx, "id", m);
                            }
                        }
                    }
                }
            }
        }
    } else {
        let readable: Vec<_> = e.cacerts.iter().filter(|p| p.is_file()).cloned().collect();
        if let Err(m) = anchors(&readable) {
            report(cx, "cacerts", m);
        }
    }
}
