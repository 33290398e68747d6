//! The sans-IO IKE SA state machine (RFC 7296 §1.2, §1.3, §2.1–2.6, §2.9, §2.10, §2.14–2.17,
//! §2.23): one [`IkeSa`] per IKE SA, driven by the caller in the style of quinn-proto's
//! `Connection`.
//!
//! # Driving an IKE SA
//! The core never reads a clock, a socket, a file or a global random generator. Time comes in
//! as an [`Instant`](std::time::Instant) argument, randomness through the injected
//! [`crate::crypto::Rng`], datagrams through [`IkeSa::handle`], and everything the SA wants
//! done comes out of the `poll_*` methods:
//!
//! ```text
//! let mut sa = IkeSa::initiate(config, now, rng)?;          // or IkeSa::respond(..) on a
//! loop {                                                    //  first IKE_SA_INIT request
//!     while let Some(t) = sa.poll_transmit() { socket.send_to(&t.contents, t.destination) }
//!     while let Some(e) = sa.poll_event() { program_data_plane(e) }
//!     match wait_for(socket, sa.poll_timeout()) {
//!         Datagram(d) => { let _ = sa.handle(now(), &d); }   // Err = dropped, see Error
//!         Timeout => sa.handle_timeout(now()),
//!     }
//!     if sa.is_drained() { break }
//! }
//! ```
//!
//! # Map of the module
//! - [`config`](IkeConfig): addresses, identities, the PSK, IKE and ESP proposals, traffic
//!   selectors, retransmission and half-open timers; `credentials.rs`: how each side
//!   authenticates ([`LocalAuth`], [`PeerAuth`], [`Credentials`]).
//! - `sa.rs`: [`IkeSa`], the public surface, message-ID checks, the responder's response cache
//!   and the dispatch to the current state.
//! - `sa_init.rs` (IKE_SA_INIT, §1.2), `auth.rs` (IKE_AUTH, §1.2, §2.15), `established.rs`:
//!   the states, one type each in the style of rustls (`ExpectSaInitResponse`,
//!   `ExpectAuthRequest`, `ExpectAuthResponse`, `Established`, `Failed`): a state consumes
//!   itself to produce the next, so an impossible transition does not compile.
//! - `proposal.rs` (SA payloads and their selection, §2.7, §3.3), `child.rs` (the first Child SA
//!   and its keys, §2.17), `ts.rs` (traffic-selector narrowing, §2.9), `psk.rs` (the AUTH
//!   payload, §2.15), `signature_auth.rs` (signature AUTH, CERT and CERTREQ payloads, RFC 7427,
//!   RFC 4754, RFC 7670), `nat.rs` (NAT detection hashes, §2.23), `protect.rs` (SK payloads),
//!   `retransmit.rs` (§2.1 timers), `fragment.rs` (IKE fragmentation, RFC 7383),
//!   [`events`](Event), [`error`](Error).
//!
//! # After IKE_AUTH
//! `established.rs` keeps the Child SAs and the queue of our requests (one outstanding at a
//! time, §2.3 window of 1); `informational.rs` (INFORMATIONAL: liveness, Delete, §1.4, §1.5,
//! §2.4) and `create_child.rs` (CREATE_CHILD_SA: a new Child SA and the Child SA rekey,
//! §1.3.1–§1.3.3, §2.8, §2.17) build and answer those exchanges; `rekey_ike.rs` the IKE SA
//! rekey (§1.3.2, §2.18); `resource.rs` per-resource Child SAs (RFC 9611: SA_RESOURCE_INFO,
//! TS_MAX_QUEUE), asked for with [`IkeSa::create_child_for_resource`]. `cookie.rs` holds the
//! responder's stateless cookies (§2.6), checked by the daemon before [`IkeSa::respond`].
//!
//! # Not yet here
//! The retry after INVALID_KE_PAYLOAD or TEMPORARY_FAILURE in CREATE_CHILD_SA, lifetimes
//! (the daemon schedules rekeys and hard expiry), revocation (CRL, OCSP), hash-and-URL
//! certificates and EAP.
//!
//! # NAT traversal (§2.23)
//! Both sides send NAT_DETECTION_*; when either finds a NAT (or [`NatTraversal::Force`]
//! fakes one), the initiator moves to the NAT-T port from IKE_AUTH on, the responder follows
//! the address of the latest authentic message, and every [`ChildSaInstalled`] carries the
//! [`EspPath`] with the UDP ports ESP must be encapsulated in. The daemon passes the addresses
//! each datagram travelled between to [`IkeSa::handle_from`] and sends each [`Transmit`]
//! from its `source` port, with the non-ESP marker on the NAT-T port (RFC 3948 §2.2).
// The discipline of the wire codec and the crypto suite: nothing here may panic on input.
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::cast_possible_truncation,
        clippy::arithmetic_side_effects
    )
)]

mod auth;
mod child;
mod config;
mod cookie;
mod create_child;
mod credentials;
mod error;
mod established;
mod events;
mod fragment;
mod identity;
mod informational;
mod nat;
mod payloads;
mod proposal;
mod protect;
mod psk;
mod rekey_ike;
mod resource;
mod retransmit;
mod sa;
mod sa_init;
mod signature_auth;
mod ts;

pub use config::{
    ChildConfig, EspProposal, IkeConfig, IkeProposal, Mode, NatTraversal, Psk, RetransmitConfig,
    SelectionOrder,
};
pub use cookie::{CookieJar, CookieVerdict, COOKIE_LEN};
pub use credentials::{trust_anchors_from_pem, CredentialError, Credentials, LocalAuth, PeerAuth};
pub use error::{ConfigError, Error, Fault};
pub use events::{
    AuthenticationFailed, ChildSaDeleted, ChildSaInstalled, ChildSaRekeyed, DeleteReason, EspPath,
    Event, IkeSaDeleted, IkeSaEstablished, IkeSaRekeyed, NatStatus, NattPorts, Side,
};
pub use fragment::{MAX_FRAGMENTS, MAX_REASSEMBLED, REASSEMBLY_TIMEOUT};
pub use identity::Identity;
pub use nat::nat_detection_hash;
pub use proposal::EspSuite;
pub use psk::psk_auth;
pub use sa::{IkeSa, Path, Rejected, Stats, Transmit};
pub use ts::{intersect as ts_intersect, narrow as ts_narrow};
