//! The control socket between `xipsecd` and `xipsecctl` (`docs/xipsecctl.md`).
//!
//! One JSON object per line over a Unix stream socket: the client writes a request line, the
//! daemon answers with one response line, and the client may send the next request on the same
//! connection. Every line carries the protocol version ([`protocol::VERSION`]), so a mismatched
//! pair of binaries says so instead of misreading each other.
//!
//! - [`protocol`]: the requests, responses and what they carry ([`protocol::IkeSaInfo`], …), the
//!   line encoding and its limits.
//! - [`server`]: the daemon side: [`server::bind`] the socket (0600), [`server::serve`] it with a
//!   [`server::Handler`] (or a [`server::channel`] into the daemon's event loop).
//! - [`client`]: the blocking client `xipsecctl` uses, with a timeout and errors that say what
//!   to do.
//! - [`format`]: `swanctl`-style text output and the JSON documents of `xipsecctl --json`.
//! - [`describe`]: how the daemon's values (suites, traffic selectors, identities, the
//!   configuration) are written into the info structs.

pub mod client;
pub mod describe;
pub mod format;
pub mod protocol;
pub mod server;

/// Where `xipsecd` listens and `xipsecctl` connects unless told otherwise (`-s`).
pub const DEFAULT_SOCKET: &str = "/run/xipsec/xipsecd.sock";
