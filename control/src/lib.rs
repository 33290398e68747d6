//! The xipsec IKEv2 control plane (RFC 7296).
//!
//! Built sans-IO in the style of quinn-proto: the protocol core takes datagrams and the current
//! time and returns datagrams, timers and SA events. See `../shared/DESIGN.md`, room 3.
//!
//! - [`wire`]: the IKEv2 message codec (RFC 7296 §3, RFC 7383 fragments): strict, bounds-checked
//!   decoding and byte-exact encoding of the header and every payload.
//! - [`config`]: the TOML configuration file (`docs/config.md`): typed, validated, with errors
//!   that name the file, line, column and key.
//! - [`crypto`]: the IKEv2 crypto suite (RFC 7296 §2.13–2.18, §3.14): PRFs and `prf+`, the key
//!   schedule, key exchange (groups 14, 15, 19, 20, 21, 31) and the Encrypted payload.
#![forbid(unsafe_code)]

pub mod config;
pub mod crypto;
pub mod ctl;
pub mod daemon;
pub mod ike;
pub mod wire;
