//! The XDP classifier that steers ESP, ESP-in-UDP and outbound plaintext to AF_XDP sockets.
//!
//! The program itself is C compiled with clang (aya-ebpf would need nightly here); this crate
//! will build and load it. Nothing is here yet: see the open issue "The AF_XDP/eBPF fast path".
#![forbid(unsafe_code)]
