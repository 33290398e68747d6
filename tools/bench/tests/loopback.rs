//! The generator and the sink against each other on loopback, no namespaces and no root: every
//! probe sent at a modest paced rate arrives once, in order, with a latency, and the pacing
//! never exceeds what the token bucket allows.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use xipsec_bench::generator::{generate, GenConfig, Live};
use xipsec_bench::net::udp_socket;
use xipsec_bench::sink::{receive, Tally};
use xipsec_bench::size::PacketSize;

fn bound_port(fd: &std::os::fd::OwnedFd) -> u16 {
    // SAFETY: getsockname writes at most `len` bytes into a live sockaddr_in.
    unsafe {
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let ret = libc::getsockname(
            fd.as_raw_fd(),
            (&mut sa as *mut libc::sockaddr_in).cast(),
            &mut len,
        );
        assert_eq!(ret, 0);
        u16::from_be(sa.sin_port)
    }
}

#[test]
fn paced_imix_on_loopback_arrives_complete_in_order_and_within_the_bucket() {
    let timeout = Duration::from_millis(50);
    let any = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
    let sink_fd = udp_socket(any, None, timeout).unwrap();
    let sink_addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, bound_port(&sink_fd));
    let gen_fd = udp_socket(any, Some(sink_addr), timeout).unwrap();
    let config = GenConfig {
        size: PacketSize::Imix,
        pps: Some(5000.0),
        duration: Duration::from_millis(400),
        run: 42,
    };
    let live = Live::default();
    let (gen_stop, sink_stop) = (AtomicBool::new(false), AtomicBool::new(false));
    let (gen, tally) = std::thread::scope(|scope| {
        let sink = scope.spawn(|| {
            let mut tally = Tally::new(42);
            receive(&sink_fd, &mut tally, &live, &sink_stop).map(|()| tally)
        });
        let gen = generate(&gen_fd, &config, &live, &gen_stop);
        // Loopback delivers synchronously; a moment for the sink to read the last batch.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while live.received.load(Ordering::Relaxed) < gen.sent
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        sink_stop.store(true, Ordering::Relaxed);
        (gen, sink.join().unwrap().unwrap())
    });
    assert!(gen.sent > 0);
    assert_eq!(gen.send_errors, 0);
    // The bucket's promise: 5000 per second of sending plus the initial burst of 64.
    assert!(
        gen.sent as f64 <= 5000.0 * gen.elapsed_ns as f64 / 1e9 + 64.0,
        "{gen:?}"
    );
    assert_eq!(tally.seq.unique(), gen.sent, "{gen:?}");
    assert_eq!(tally.seq.lost(gen.sent), 0);
    assert_eq!((tally.seq.duplicates(), tally.seq.reordered()), (0, 0));
    assert_eq!(tally.foreign, 0);
    assert_eq!(tally.latency.count(), gen.sent);
    // IMIX bytes: each packet's length follows the 12-packet cycle from sequence 0.
    let expected: u64 = (0..gen.sent)
        .map(|seq| u64::from(PacketSize::Imix.len_of(seq)))
        .sum();
    assert_eq!(tally.bytes, expected);
}
