//! The receive path: the XDP classifier steers ESP arriving on a veth to our AF_XDP socket and
//! lets IKE through to the kernel. Network namespaces of the test's own; needs root.

mod netns;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use netns::{can_run, veth_pair};
use xipsec_dataplane::io::xsk::{Descriptor, XskConfig, XskSocket};
use xipsec_ebpf::{AttachMode, Classifier, ClassifierConfig};

/// Sends `payload` as an ESP packet (IP protocol 50) to `to` from the calling thread's
/// namespace, with the kernel building the IPv4 header.
fn send_esp(to: [u8; 4], payload: &[u8]) {
    // SAFETY: plain socket(2); checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ESP) };
    assert!(
        fd >= 0,
        "raw ESP socket: {}",
        std::io::Error::last_os_error()
    );
    let address = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(to),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `payload` and `address` are live for the call; sizes match.
    let sent = unsafe {
        libc::sendto(
            fd,
            payload.as_ptr().cast(),
            payload.len(),
            0,
            (&address as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    // SAFETY: `fd` is ours.
    unsafe { libc::close(fd) };
    assert_eq!(
        sent,
        payload.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
}

#[test]
fn esp_reaches_the_socket_and_ike_the_kernel() {
    if !can_run("esp_reaches_the_socket_and_ike_the_kernel") {
        return;
    }
    let (a, b) = veth_pair("xa", "xb");
    a.ip(&["addr", "add", "10.99.0.1/24", "dev", "xa"]);
    b.ip(&["addr", "add", "10.99.0.2/24", "dev", "xb"]);
    a.ip(&["link", "set", "xa", "up"]);
    b.ip(&["link", "set", "xb", "up"]);

    let markers: Vec<Vec<u8>> = (0..5u8)
        .map(|i| format!("esp-{}-{i}", a.name()).into_bytes())
        .collect();
    let ike_marker = format!("ike-{}", a.name()).into_bytes();
    let ready = AtomicBool::new(false);
    let done = AtomicBool::new(false);

    let (received, counters) = std::thread::scope(|scope| {
        let receiver = scope.spawn(|| {
            a.run(|| {
                let mut classifier =
                    Classifier::load(ClassifierConfig::default()).expect("loading the program");
                let _attachment = classifier
                    .attach("xa", AttachMode::Native)
                    .expect("attaching natively to veth");
                let config = XskConfig {
                    frame_count: 512,
                    ring_size: 128,
                    ..XskConfig::default()
                };
                let mut socket = XskSocket::bind("xa", 0, config).expect("binding");
                classifier
                    .register_xsk(0, &socket)
                    .expect("registering the socket");
                ready.store(true, Ordering::Release);
                let mut frames = Vec::new();
                let mut batch = [Descriptor {
                    addr: 0,
                    len: 0,
                    options: 0,
                }; 32];
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline && !done.load(Ordering::Acquire) {
                    let n = socket.receive(&mut batch);
                    for d in &batch[..n] {
                        frames.push(socket.frame(d.addr, d.len as usize).unwrap().to_vec());
                    }
                    socket.refill(batch[..n].iter().map(|d| d.addr));
                    if n == 0 {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                (frames, classifier.counters().expect("counters"))
            })
        });
        while !ready.load(Ordering::Acquire) {
            assert!(
                !receiver.is_finished(),
                "the receiver failed before it was ready"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        b.run(|| {
            let ike = UdpSocket::bind("10.99.0.2:0").unwrap();
            ike.send_to(&ike_marker, "10.99.0.1:500").unwrap();
            for marker in &markers {
                let mut payload = vec![0, 0, 0x12, 0x34, 0, 0, 0, 1];
                payload.extend_from_slice(marker);
                send_esp([10, 99, 0, 1], &payload);
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        done.store(true, Ordering::Release);
        receiver.join().expect("receiver")
    });

    for marker in &markers {
        let frame = received
            .iter()
            .find(|f| f.windows(marker.len()).any(|w| w == &marker[..]))
            .unwrap_or_else(|| {
                panic!(
                    "ESP {:?} did not reach the socket",
                    String::from_utf8_lossy(marker)
                )
            });
        assert_eq!(&frame[12..14], &[0x08, 0x00], "an IPv4 frame");
        assert_eq!(frame[14 + 9], 50, "carrying ESP");
    }
    assert!(
        !received
            .iter()
            .any(|f| f.windows(ike_marker.len()).any(|w| w == &ike_marker[..])),
        "IKE must go to the kernel, not to the socket"
    );
    assert!(counters.esp_to_xsk >= markers.len() as u64, "{counters:?}");
    assert!(counters.ike_pass >= 1, "{counters:?}");
}
