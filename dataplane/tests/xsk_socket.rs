//! The AF_XDP socket layer on a real veth pair in network namespaces of the test's own:
//! frames written into UMEM and transmitted arrive on the peer, and their frames come back
//! through the completion ring. Needs root.

mod netns;

use std::time::{Duration, Instant};

use netns::{can_run, veth_pair, Capture};
use xipsec_dataplane::io::xsk::{Descriptor, XskConfig, XskSocket};

/// A locally administered EtherType-less test frame: broadcast destination, a local source
/// MAC, the IEEE "local experimental" EtherType 0x88B5, and a marker payload.
fn test_frame(marker: &[u8]) -> Vec<u8> {
    let mut frame = vec![0xFFu8; 6];
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x88, 0xB5]);
    frame.extend_from_slice(marker);
    frame.resize(64, 0);
    frame
}

#[test]
fn transmitted_frames_arrive_and_complete() {
    if !can_run("transmitted_frames_arrive_and_complete") {
        return;
    }
    let (a, b) = veth_pair("xa", "xb");
    a.ip(&["link", "set", "xa", "up"]);
    b.ip(&["link", "set", "xb", "up"]);
    let capture = Capture::start(&b, "xb");

    let markers: Vec<Vec<u8>> = (0..8u8)
        .map(|i| format!("xipsec-xsk-{}-{i}", a.name()).into_bytes())
        .collect();
    let (sent, reclaimed, free_before) = a.run(|| {
        let config = XskConfig {
            frame_count: 256,
            ring_size: 64,
            ..XskConfig::default()
        };
        let mut socket = XskSocket::bind("xa", 0, config).expect("binding an AF_XDP socket");
        assert!(!socket.is_zero_copy(), "veth offers copy mode only");
        let free_before = socket.free_tx_frames();
        let mut descriptors = Vec::new();
        for marker in &markers {
            let frame = test_frame(marker);
            let addr = socket.take_tx_frame().expect("a free frame");
            let (buffer, offset) = socket.frame_mut(addr).expect("the frame");
            buffer[offset..offset + frame.len()].copy_from_slice(&frame);
            descriptors.push(Descriptor {
                addr,
                len: frame.len() as u32,
                options: 0,
            });
        }
        let sent = socket.transmit(&descriptors);
        // Copy-mode transmission completes in the kick's system call; poll briefly anyway.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut reclaimed = 0;
        while reclaimed < sent as usize && Instant::now() < deadline {
            reclaimed += socket.reclaim_completed();
            std::thread::sleep(Duration::from_millis(5));
        }
        (sent, reclaimed, free_before)
    });
    let frames = capture.stop();
    assert_eq!(sent, 8);
    assert_eq!(
        reclaimed, 8,
        "every sent frame comes back through the completion ring"
    );
    assert_eq!(free_before, 128, "half of the UMEM is for transmitting");
    for marker in &markers {
        assert!(
            frames
                .iter()
                .any(|f| f.windows(marker.len()).any(|w| w == &marker[..])),
            "the frame with {:?} did not arrive",
            String::from_utf8_lossy(marker)
        );
    }
}

#[test]
fn bad_configurations_and_interfaces_are_refused() {
    if !can_run("bad_configurations_and_interfaces_are_refused") {
        return;
    }
    let bad = XskConfig {
        ring_size: 100,
        ..XskConfig::default()
    };
    assert!(XskSocket::bind("lo", 0, bad).is_err());
    let missing = XskSocket::bind("no-such-if0", 0, XskConfig::default());
    assert!(matches!(
        missing,
        Err(xipsec_dataplane::io::xsk::XskError::NoSuchInterface(_))
    ));
}
