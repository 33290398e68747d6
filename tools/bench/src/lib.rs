//! xipsec-bench: a benchmark harness for IPsec gateways. A generator host sends UDP probes
//! (sequence number and send time in the payload) through gateway A and gateway B to a sink
//! host, all in network namespaces; the gateways run the device under test. Per run it reports
//! packets sent, received and lost, rates in packets and bits per second (inner and on the
//! wire), one-way latency percentiles, and the CPU time of the device under test.
//!
//! The generator and sink use UDP sockets with sendmmsg/recvmmsg; AF_XDP and AF_PACKET
//! generators, real interfaces (`--tx-iface`/`--rx-iface`) and external devices are
//! later steps (docs/bench.md).
//!
//! Sans-IO parts, tested on their own: [`rate`] (parsing, token bucket), [`seq`] (loss,
//! reordering, duplicates), [`latency`] (percentiles), [`size`], [`payload`], [`wire`],
//! [`report`] (JSON schema, table). The rest does I/O: [`net`], [`generator`], [`sink`],
//! [`dut`], [`runner`], [`plot`], [`cpu`].

pub mod cli;
pub mod clock;
pub mod cpu;
pub mod dut;
pub mod generator;
pub mod latency;
pub mod net;
pub mod payload;
pub mod plot;
pub mod rate;
pub mod report;
pub mod runner;
pub mod seq;
pub mod sink;
pub mod size;
pub mod stop;
pub mod wire;

pub use stop::StopFlag;
