//! xipsec-bench: a benchmark harness for IPsec gateways. A generator sends UDP probes
//! (sequence number and send time in the payload) through the device under test to a sink —
//! through gateway A and gateway B in network namespaces (`e2e`), through one gateway whose
//! other end the harness plays with static SAs (`encrypt`, `decrypt`), or across real
//! interfaces. Per run it reports packets sent, received and lost, rates in packets and bits
//! per second (inner and on the wire), one-way latency percentiles, and the CPU time of the
//! device under test, the generator and the sink.
//!
//! The generator and sink use AF_XDP ([`xsk_io`]), AF_PACKET ([`packet_io`]) or UDP sockets
//! ([`generator`], [`sink`]); the `forwarder` device is a plain AF_XDP forwarder
//! ([`forwarder`]).
//!
//! Sans-IO parts, tested on their own: [`rate`] (parsing, token bucket), [`seq`] (loss,
//! reordering, duplicates), [`latency`] (percentiles), [`size`], [`payload`], [`frame`]
//! (probe frames, ESP), [`rx`] (what a received frame holds), [`mac`] (addresses and
//! iproute2's JSON), [`plan`] (which sockets where), [`cli`] (which options go together),
//! [`wire`], [`report`] (JSON schema, table). The rest does I/O: [`net`], [`topology`],
//! [`dut`], [`runner`], [`plot`], [`cpu`].

pub mod ceiling;
pub mod cli;
pub mod clock;
pub mod cpu;
pub mod dut;
pub mod forwarder;
pub mod frame;
pub mod generator;
pub mod latency;
pub mod mac;
pub mod manual;
pub mod net;
pub mod packet_io;
pub mod payload;
pub mod plan;
pub mod plot;
pub mod rate;
pub mod report;
pub mod runner;
pub mod rx;
pub mod seq;
pub mod sink;
pub mod size;
pub mod stop;
pub mod topology;
pub mod wire;
pub mod xsk_io;

pub use stop::StopFlag;
