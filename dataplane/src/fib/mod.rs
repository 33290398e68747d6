//! The forwarding information the AF_XDP workers need: for each destination, the egress
//! interface and the next hop's MAC address.
//!
//! The kernel decides; the data plane follows. [`FibMirror`] (Linux) keeps a copy of the
//! kernel's links, main routing table (IPv4 and IPv6) and neighbour tables, read over
//! rtnetlink and kept current by its notifications, on a thread of its own; it publishes
//! immutable [`FibSnapshot`]s, coalescing each burst of changes into one. Each worker holds a
//! [`FibHandle`], which implements [`NextHops`]: one atomic load per batch to notice a new
//! snapshot, a small cache and a lock-free lookup per packet. A next hop whose MAC the kernel
//! does not know yet is [`NextHop::Unresolved`]: the handle queues a request, and the
//! mirror's thread asks the kernel to resolve it (`RTM_NEWNEIGH` with `NTF_USE`, which makes
//! the kernel send ARP or neighbour solicitations as if a packet were waiting), at most once
//! per second per neighbour. The packet is dropped; the ones after the kernel's answer are
//! not.
//!
//! [`StaticNextHops`] answers from a fixed list, for tests and benchmarks.
//!
//! | file | what |
//! |---|---|
//! | `next_hop.rs` | [`NextHop`], [`NextHops`]: the contract with the workers |
//! | `netlink.rs` | rtnetlink messages and attributes, bounds-checked; the requests |
//! | `parse.rs` | a message to the change it makes (link, route, neighbour) |
//! | `state.rs` | the mirror's working copy, changed message by message (sans-IO) |
//! | `snapshot.rs` | [`FibSnapshot`]: the immutable copy and its lookup |
//! | `lpm.rs` | longest-prefix match over sorted arrays |
//! | `resolve.rs` | resolution requests and their rate limit |
//! | `mirror.rs` | [`FibMirror`]: the thread, dumps, notifications, publication |
//! | `handle.rs` | [`FibHandle`]: a worker's view |
//! | `socket.rs` | the system calls (netlink sockets, eventfd, poll) |
//! | `static_next_hops.rs` | [`StaticNextHops`] |

#[cfg(target_os = "linux")]
mod handle;
mod lpm;
#[cfg(target_os = "linux")]
mod mirror;
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod netlink;
mod next_hop;
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod parse;
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod resolve;
mod snapshot;
#[cfg(target_os = "linux")]
mod socket;
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod state;
mod static_next_hops;
mod types;

#[cfg(target_os = "linux")]
pub use handle::FibHandle;
#[cfg(target_os = "linux")]
pub use mirror::{FibMirror, MirrorConfig, MirrorStats};
pub use next_hop::{NextHop, NextHops};
pub use snapshot::{FibSnapshot, RouteEntry};
pub use static_next_hops::StaticNextHops;
pub use types::{Link, RouteTarget};
