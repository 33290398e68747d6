//! What a worker needs beyond the ESP core and its I/O: the SAs it owns, taken from the shared
//! table and kept current, with their counters, lifetimes and sequence state reported back.

mod sa_cache;
mod sa_source;
mod spd;
#[cfg(target_os = "linux")]
mod xsk_gateway;

pub use sa_cache::{SaCache, OUTBOUND_SEQUENCE_RESERVATION};
pub use sa_source::{SaSource, StaticSas, TableSas};
pub use spd::{flow_of, SpdMirror};
#[cfg(target_os = "linux")]
pub use xsk_gateway::{XskGateway, XskGatewayCounters, XskPort, MAX_BATCH};
