//! The xipsec data plane.
//!
//! - [`esp`]: the ESP core (RFC 4303): encapsulation and decapsulation in place, anti-replay,
//!   extended sequence numbers, NAT-T. Pure functions over packet buffers, no I/O.
//! - [`table`]: the SA table in shared memory, written by the control plane and read by the
//!   workers.
//! - [`io`]: packet I/O backends; today the portable one (TUN and UDP/raw sockets).
//!
//! The shared-memory SA table, the workers and the AF_XDP I/O layer build on it (see
//! `../shared/DESIGN.md`).

pub mod esp;
pub mod fib;
pub mod io;
pub mod process;
#[cfg(target_os = "linux")]
mod sys;
pub mod table;
pub mod worker;

#[cfg(test)]
mod tests;
