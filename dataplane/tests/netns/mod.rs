//! The namespace helpers (guards, veths, topologies, capture, frame classification) live in the
//! shared test kit, `xipsec-testkit` (tests/ at the top of the repository); this module
//! re-exports them and adds the gateway building blocks that need the dataplane's own types.

pub use xipsec_testkit::netns::*;

pub mod gateways;
