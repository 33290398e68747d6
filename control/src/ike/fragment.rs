//! IKE fragmentation (RFC 7383): messages after IKE_SA_INIT that would exceed the path's size
//! go out as SKF fragments, each encrypted and authenticated on its own (§2.5), and are
//! retransmitted as the same fragments; received fragments are authenticated one by one, then
//! reassembled (§2.6).
//!
//! Used by IKE_AUTH, the exchange that carries certificate chains, and by the INFORMATIONAL
//! and CREATE_CHILD_SA exchanges of an established IKE SA (§2.5: any message after
//! IKE_SA_INIT; big KE payloads and long selector lists need it). Both sides must have sent
//! IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT ([`super::IkeConfig::fragmentation`]); an IKE
//! SA made by a rekey keeps what its predecessor negotiated.
//!
//! Reassembly limits: at most [`MAX_FRAGMENTS`] fragments and [`MAX_REASSEMBLED`] octets of
//! plaintext per message; a partial message is forgotten after [`REASSEMBLY_TIMEOUT`], when
//! fragments of a message with more Total Fragments arrive (§2.6: the sender fragmented
//! again, smaller), or when the exchange ends. Duplicates, fragments with fewer Total
//! Fragments than the message in progress, and anything that does not authenticate are
//! dropped (an `Err` from [`super::IkeSa::handle`], counted in [`super::Stats::dropped`]).
//! Fragments of another Message ID never get here: the Message ID checks of every message
//! drop them first.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::sa::{digest, Context};
use super::{protect, Error, Transmit};
use crate::crypto::{Rng, SkCipher};
use crate::wire::{
    decode_chain, encode_chain, EncryptedFragment, Header, Message, Payload, PayloadType,
};

/// The most fragments one message may have.
pub const MAX_FRAGMENTS: u16 = 64;
/// The most plaintext octets one reassembled message may have.
pub const MAX_REASSEMBLED: usize = 64 * 1024;
/// How long a partly received message is kept.
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The IKE header and the SKF header with Fragment Number and Total Fragments.
const FRAGMENT_HEADERS: usize = Header::LEN + 8;

/// The datagrams of our current request and last response when they went out as fragments;
/// empty when they went out whole (then `Retransmit::bytes` / `CachedResponse::bytes` are
/// the message).
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    pub request: Vec<Vec<u8>>,
    pub response: Vec<Vec<u8>>,
}

/// The messages of an established IKE SA being reassembled: the peer's request and the
/// response to ours can be in progress at once, so each has its own.
#[derive(Debug, Default)]
pub(crate) struct Incoming {
    pub request: Reassembly,
    pub response: Reassembly,
}

/// The fragment size to send with when both sides announced IKE fragmentation
/// (`peer_announced`: the peer's IKEV2_FRAGMENTATION_SUPPORTED), else `None`.
pub(crate) fn limit(ctx: &Context, peer_announced: bool) -> Option<usize> {
    (ctx.config.fragmentation && peer_announced).then(|| max_message_len(ctx))
}

/// The largest IKE message (UDP payload) we send to `remote` from `local`: the configured IP
/// datagram size less the IP and UDP headers and, on the NAT-T port, the non-ESP marker.
pub(crate) fn max_message_len(ctx: &Context) -> usize {
    let ip = match ctx.path.remote {
        SocketAddr::V4(_) => 20,
        SocketAddr::V6(_) => 40,
    };
    let marker = if ctx.path.local.port() == ctx.config.natt_port {
        4
    } else {
        0
    };
    ctx.config
        .fragment_size
        .saturating_sub(ip)
        .saturating_sub(8)
        .saturating_sub(marker)
}

/// Seals `inner` into one SK message, or into SKF fragments of at most `max_len` octets each
/// when `max_len` is given and the whole message would be larger.
pub(crate) fn seal(
    header: Header,
    inner: &[Payload],
    cipher: &mut SkCipher,
    rng: &mut dyn Rng,
    max_len: Option<usize>,
) -> Result<Vec<Vec<u8>>, Error> {
    let mut plaintext = Vec::new();
    let first = encode_chain(inner, &mut plaintext);
    let whole = Header::LEN
        .saturating_add(4)
        .saturating_add(cipher.sealed_len(plaintext.len()));
    let Some(max_len) = max_len.filter(|&m| whole > m) else {
        return Ok(vec![protect::seal(header, inner, cipher, rng)?]);
    };
    // The largest chunk whose sealed fragment fits.
    let room = max_len.saturating_sub(FRAGMENT_HEADERS);
    let mut chunk = room;
    while chunk > 0 && cipher.sealed_len(chunk) > room {
        chunk = chunk.saturating_sub(1);
    }
    if chunk == 0 {
        return Err(Error::Config(super::ConfigError {
            field: "fragment_size",
            reason: "too small to hold any fragment",
        }));
    }
    let chunks: Vec<&[u8]> = plaintext.chunks(chunk).collect();
    let total = u16::try_from(chunks.len())
        .ok()
        .filter(|&n| n <= MAX_FRAGMENTS)
        .ok_or(Error::Config(super::ConfigError {
            field: "fragment_size",
            reason: "the message would need too many fragments",
        }))?;
    let mut out = Vec::with_capacity(chunks.len());
    for (number, part) in (1u16..).zip(chunks) {
        let outer = Message {
            header: header.clone(),
            payloads: vec![Payload::Skf(EncryptedFragment {
                // §2.5: the first inner payload's type in fragment 1 only.
                next_payload: if number == 1 {
                    first
                } else {
                    PayloadType::NoNextPayload
                },
                fragment_number: number,
                total_fragments: total,
                data: Vec::new(),
            })],
        };
        let mut bytes = outer.encode();
        cipher
            .seal_message(&mut bytes, Header::LEN, part, rng)
            .map_err(Error::Crypto)?;
        out.push(bytes);
    }
    Ok(out)
}

impl Context {
    fn transmit_to_peer(&mut self, contents: Vec<u8>) {
        self.transmits.push_back(Transmit {
            destination: self.path.remote,
            source: self.path.local,
            contents,
        });
    }

    /// Sends a request made of `datagrams` (one message, or its fragments) and arms its
    /// retransmission timer.
    pub(crate) fn send_request_datagrams(
        &mut self,
        now: Instant,
        message_id: u32,
        mut datagrams: Vec<Vec<u8>>,
    ) {
        if datagrams.len() <= 1 {
            self.send_request(now, message_id, datagrams.pop().unwrap_or_default());
            return;
        }
        self.send_request(
            now,
            message_id,
            datagrams.first().cloned().unwrap_or_default(),
        );
        for d in datagrams.iter().skip(1) {
            self.transmit_to_peer(d.clone());
        }
        self.fragments.request = datagrams;
    }

    /// Sends a response made of `datagrams` and keeps them for retransmitted requests.
    pub(crate) fn send_response_datagrams(&mut self, message_id: u32, mut datagrams: Vec<Vec<u8>>) {
        if datagrams.len() <= 1 {
            self.send_response(message_id, datagrams.pop().unwrap_or_default());
            return;
        }
        self.send_response(message_id, datagrams.first().cloned().unwrap_or_default());
        for d in datagrams.iter().skip(1) {
            self.transmit_to_peer(d.clone());
        }
        self.fragments.response = datagrams;
    }

    /// Sends the outstanding request again, every fragment of it (§2.6.1 of RFC 7383).
    pub(crate) fn resend_request(&mut self) {
        if self.fragments.request.is_empty() {
            if let Some(bytes) = self.request.as_ref().map(|r| r.bytes.clone()) {
                self.transmit_to_peer(bytes);
            }
        } else {
            for d in self.fragments.request.clone() {
                self.transmit_to_peer(d);
            }
        }
    }

    /// Sends the last response again, every fragment of it.
    pub(crate) fn resend_response(&mut self) {
        if self.fragments.response.is_empty() {
            if let Some(bytes) = self.last_response.as_ref().map(|r| r.bytes.clone()) {
                self.transmit_to_peer(bytes);
            }
        } else {
            for d in self.fragments.response.clone() {
                self.transmit_to_peer(d);
            }
        }
    }
}

/// A message being reassembled.
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    total: u16,
    first_inner: Option<PayloadType>,
    /// Plaintext of each fragment, by Fragment Number - 1.
    parts: Vec<Option<Vec<u8>>>,
    size: usize,
    started: Option<Instant>,
    /// Digest of fragment 1's datagram: a retransmission of it gets the cached response.
    first_digest: Option<[u8; 32]>,
}

/// A reassembled message: its inner payloads and the digest of its first fragment.
#[derive(Debug)]
pub(crate) struct Reassembled {
    pub payloads: Vec<Payload>,
    pub first_digest: [u8; 32],
}

fn drop_it(what: &'static str) -> Error {
    Error::Unexpected { what }
}

impl Reassembly {
    fn reset(&mut self) {
        *self = Reassembly::default();
    }

    /// Takes one authentic-to-be fragment. `Ok(None)` while fragments are missing.
    pub fn add(
        &mut self,
        now: Instant,
        datagram: &[u8],
        cipher: &SkCipher,
    ) -> Result<Option<Reassembled>, Error> {
        if self
            .started
            .is_some_and(|t| now.saturating_duration_since(t) > REASSEMBLY_TIMEOUT)
        {
            self.reset();
        }
        // §2.6: authenticate before anything else is believed.
        let opened = cipher.open_message(datagram).map_err(Error::opening)?;
        let Some((number, total)) = opened.fragment else {
            return Err(drop_it("not a fragment"));
        };
        if total > MAX_FRAGMENTS {
            return Err(drop_it("a message of too many fragments"));
        }
        if total < self.total {
            return Err(drop_it(
                "a fragment with fewer Total Fragments than the message's",
            ));
        }
        if total > self.total {
            // The sender fragmented again (smaller): start over (§2.6).
            self.reset();
            self.total = total;
            self.parts = vec![None; usize::from(total)];
            self.started = Some(now);
        }
        let index = usize::from(number).saturating_sub(1);
        let slot = self
            .parts
            .get_mut(index)
            .ok_or(drop_it("a Fragment Number beyond Total Fragments"))?;
        if slot.is_some() {
            return Err(drop_it("a duplicate fragment"));
        }
        let size = self.size.saturating_add(opened.plaintext.len());
        if size > MAX_REASSEMBLED {
            self.reset();
            return Err(drop_it("a fragmented message larger than we reassemble"));
        }
        self.size = size;
        if number == 1 {
            self.first_inner = Some(opened.first_inner);
            self.first_digest = Some(digest(datagram));
        }
        *slot = Some(opened.plaintext);
        if self.parts.iter().any(Option::is_none) {
            return Ok(None);
        }
        let plaintext: Vec<u8> = self.parts.iter().flatten().flatten().copied().collect();
        let first_inner = self.first_inner.unwrap_or(PayloadType::NoNextPayload);
        let first_digest = self.first_digest.unwrap_or_else(|| digest(datagram));
        self.reset();
        let payloads = decode_chain(first_inner, &plaintext)?;
        Ok(Some(Reassembled {
            payloads,
            first_digest,
        }))
    }
}

/// The inner payloads of a protected message, or of a fragmented one once its last fragment
/// is in (`Ok(None)` until then). A completed request's digest becomes that of its first
/// fragment: a retransmission of that fragment gets the cached response (§2.6.1).
/// `peer_announced` is the peer's IKEV2_FRAGMENTATION_SUPPORTED: fragments are refused
/// unless both sides announced support.
pub(crate) fn open_inner(
    ctx: &mut Context,
    now: Instant,
    peer_announced: bool,
    reassembly: &mut Reassembly,
    cipher: &SkCipher,
    datagram: &[u8],
    message: &Message,
) -> Result<Option<Vec<Payload>>, Error> {
    if !is_fragment(message) {
        return protect::open(datagram, message, cipher).map(Some);
    }
    if !(ctx.config.fragmentation && peer_announced) {
        return Err(Error::Unsupported {
            what: "IKE fragments without IKEV2_FRAGMENTATION_SUPPORTED",
        });
    }
    Ok(reassembly.add(now, datagram, cipher)?.map(|r| {
        if !message.header.flags.response {
            ctx.request_digest = r.first_digest;
        }
        r.payloads
    }))
}

/// Whether `message` is a fragment (its only payload is SKF).
pub(crate) fn is_fragment(message: &Message) -> bool {
    matches!(message.payloads.as_slice(), [Payload::Skf(_)])
}
