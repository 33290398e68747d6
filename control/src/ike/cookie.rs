//! Stateless cookies (RFC 7296 §2.6): the responder's defence against floods of IKE_SA_INIT
//! requests from forged addresses.
//!
//! ```text
//! Initiator                         Responder
//! HDR(A, 0), SAi1, KEi, Ni  -->
//!                              <--  HDR(A, 0), N(COOKIE)
//! HDR(A, 0), N(COOKIE), SAi1, KEi, Ni  -->
//!                              <--  HDR(A, B), SAr1, KEr, Nr, [CERTREQ]
//! ```
//! The daemon asks a [`CookieJar`] about every first IKE_SA_INIT request before it calls
//! [`super::IkeSa::respond`], passing the number of half-open SAs it holds; the jar keeps no
//! per-request state. Below the threshold every request is accepted; at or above it, only a
//! request whose first payload is a COOKIE notification we issued for this nonce, address and
//! SPI is. The cookie is `version || HMAC-SHA256(secret, Ni | IPi | SPIi)` (the construction
//! §2.6 suggests); [`CookieJar::rotate`] changes the secret and still accepts the previous
//! version's cookies, so that initiators in the middle of a retry are not refused.

use std::net::{IpAddr, SocketAddr};

use crate::crypto::{Prf, SecretBytes};
use crate::wire::{ExchangeType, Flags, Header, Message, Notify, NotifyType, Payload};

/// The octets of a cookie: one version octet and a 32-octet HMAC-SHA256.
pub const COOKIE_LEN: usize = 33;

/// The responder's cookie secret and policy (§2.6).
#[derive(Clone)]
pub struct CookieJar {
    secret: SecretBytes,
    version: u8,
    previous: Option<(u8, SecretBytes)>,
    /// Cookies are demanded once the number of half-open SAs reaches this (0: always).
    pub threshold: usize,
}

impl core::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CookieJar")
            .field("version", &self.version)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

/// What to do with a first IKE_SA_INIT request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CookieVerdict {
    /// Go on: call [`super::IkeSa::respond`].
    Accept,
    /// Create no state; send this `HDR(SPIi, 0), N(COOKIE)` back to where the request came from.
    SendCookie(Vec<u8>),
    /// Not a first IKE_SA_INIT request that can be answered: drop it.
    Drop,
}

impl CookieJar {
    /// A jar with this secret (from the system's random generator, at least 32 octets
    /// advisable), version 0, demanding cookies from `threshold` half-open SAs on.
    pub fn new(secret: Vec<u8>, threshold: usize) -> CookieJar {
        CookieJar {
            secret: SecretBytes::new(secret),
            version: 0,
            previous: None,
            threshold,
        }
    }

    /// Replaces the secret (§2.6 suggests doing it periodically). Cookies made with the
    /// secret being replaced stay valid until the next rotation.
    pub fn rotate(&mut self, secret: Vec<u8>) {
        let old = std::mem::replace(&mut self.secret, SecretBytes::new(secret));
        self.previous = Some((self.version, old));
        self.version = self.version.wrapping_add(1);
    }

    /// The current secret's version (the first octet of our cookies).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Decides about a first IKE_SA_INIT request that no SA claims, from `remote`, while the
    /// daemon holds `half_open` half-open SAs. Keeps no state whatever the answer.
    pub fn check(&self, datagram: &[u8], remote: SocketAddr, half_open: usize) -> CookieVerdict {
        let Ok(message) = Message::decode(datagram) else {
            return CookieVerdict::Drop;
        };
        let h = &message.header;
        if h.exchange_type != ExchangeType::IkeSaInit
            || h.message_id != 0
            || h.flags.response
            || !h.flags.initiator
            || h.responder_spi != 0
            || h.initiator_spi == 0
        {
            return CookieVerdict::Drop;
        }
        if half_open < self.threshold {
            return CookieVerdict::Accept;
        }
        let Some(ni) = message.payloads.iter().find_map(|p| match p {
            Payload::Nonce(n) => Some(n.0.as_slice()),
            _ => None,
        }) else {
            return CookieVerdict::Drop;
        };
        // §2.6: the COOKIE notification comes first.
        let presented = match message.payloads.first() {
            Some(Payload::Notify(n)) if n.notify_type == NotifyType::Cookie => Some(&n.data),
            _ => None,
        };
        if let Some(cookie) = presented {
            if self.valid(cookie, ni, remote.ip(), h.initiator_spi) {
                return CookieVerdict::Accept;
            }
        }
        let cookie = self.make(self.version, &self.secret, ni, remote.ip(), h.initiator_spi);
        let header = Header::new(
            h.initiator_spi,
            0,
            ExchangeType::IkeSaInit,
            Flags {
                initiator: false,
                version: false,
                response: true,
            },
            0,
        );
        let reply = Message {
            header,
            payloads: vec![Payload::Notify(Notify::new(NotifyType::Cookie, cookie))],
        };
        CookieVerdict::SendCookie(reply.encode())
    }

    fn valid(&self, cookie: &[u8], ni: &[u8], ip: IpAddr, spi_i: u64) -> bool {
        let Some((&version, _)) = cookie.split_first() else {
            return false;
        };
        let secret = if version == self.version {
            &self.secret
        } else {
            match &self.previous {
                Some((v, s)) if *v == version => s,
                _ => return false,
            }
        };
        let expected = self.make(version, secret, ni, ip, spi_i);
        aws_lc_rs::constant_time::verify_slices_are_equal(&expected, cookie).is_ok()
    }

    fn make(
        &self,
        version: u8,
        secret: &SecretBytes,
        ni: &[u8],
        ip: IpAddr,
        spi_i: u64,
    ) -> Vec<u8> {
        let ip = match ip {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let mac = Prf::HmacSha2_256.prf(secret.expose(), &[ni, &ip, &spi_i.to_be_bytes()]);
        let mut out = Vec::with_capacity(COOKIE_LEN);
        out.push(version);
        out.extend_from_slice(mac.expose());
        out
    }
}
