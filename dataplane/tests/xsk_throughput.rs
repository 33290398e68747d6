//! Throughput of the AF_XDP ESP gateway beside a plain AF_XDP forwarder with no crypto, on the
//! same path, in one run: generator -- device under test -- sink, each in a namespace of its
//! own, veth between them. The device counts packets per second of its own thread's CPU time
//! (the machine is shared: wall-clock rates drift). Not a test: run it by hand (root) with
//!
//! ```text
//! cargo test -p xipsec-dataplane --release --test xsk_throughput -- --ignored --nocapture
//! ```
//!
//! Every frame is processed in place and copied once into the other port's UMEM; the plain
//! forwarder makes the same copy, so the difference is the ESP work. On veth the receiver's
//! work runs in the sender's system call, so the device sends to a MAC address nobody owns:
//! the sink's kernel drops each frame at once (counted in its interface statistics) instead of
//! charging the device a full receive path (`../shared/notes/xdp-on-veth.md`).

mod netns;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use netns::gateways::{sas, Transport};
use netns::{mac_of, Netns, Topology};
use xipsec_dataplane::esp::{ip, Decapsulator};
use xipsec_dataplane::io::xsk::{Descriptor, XskConfig, XskSocket};
use xipsec_dataplane::worker::{StaticSas, XskGateway, XskPort};
use xipsec_ebpf::{AttachMode, Attachment, Classifier, ClassifierConfig, IpNet};

const RUN: Duration = Duration::from_secs(3);
const BATCH: usize = 64;
const EMPTY: Descriptor = Descriptor {
    addr: 0,
    len: 0,
    options: 0,
};

fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a live timespec for the kernel to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Waits up to a millisecond for `fd` to have frames: an idle device under test must not burn
/// CPU time spinning, or packets per CPU-second would measure the generator's pace.
fn wait_readable(fd: std::os::fd::RawFd) {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd, count 1.
    unsafe { libc::poll(&mut pollfd, 1, 1) };
}

fn config() -> XskConfig {
    XskConfig::default()
}

/// An Ethernet frame of `size` bytes (the length on the wire without FCS) carrying UDP from
/// host A to host B.
fn frame(size: usize, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut frame = vec![0u8; size];
    frame[..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = size - 14;
    let packet = &mut frame[14..];
    packet[0] = 0x45;
    packet[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    packet[8] = 64;
    packet[9] = ip::proto::UDP;
    packet[12..16].copy_from_slice(&[10, 1, 0, 2]);
    packet[16..20].copy_from_slice(&[10, 2, 0, 2]);
    ip::set_ipv4_checksum(&mut packet[..20]);
    packet[20..22].copy_from_slice(&7000u16.to_be_bytes());
    packet[22..24].copy_from_slice(&7000u16.to_be_bytes());
    packet[24..26].copy_from_slice(&((ip_len - 20) as u16).to_be_bytes());
    frame
}

/// Sends `template` as fast as the ring takes it until `stop`.
fn generate(socket: &mut XskSocket, template: &[u8], stop: &AtomicBool) -> u64 {
    let mut sent = 0;
    let mut batch = [EMPTY; BATCH];
    while !stop.load(Ordering::Relaxed) {
        let mut count = 0;
        while count < BATCH {
            let Some(addr) = socket.take_tx_frame() else {
                break;
            };
            let (buffer, offset) = socket.frame_mut(addr).expect("frame");
            buffer[offset..offset + template.len()].copy_from_slice(template);
            batch[count] = Descriptor {
                addr,
                len: template.len() as u32,
                options: 0,
            };
            count += 1;
        }
        sent += u64::from(socket.transmit(&batch[..count]));
        socket.reclaim_completed();
    }
    sent
}

/// A locally administered MAC address no interface has: frames to it are dropped on arrival.
const NOBODY: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x99];

/// Frames `interface` of `netns` has received, from its statistics.
fn rx_packets(netns: &Netns, interface: &str) -> u64 {
    let output = std::process::Command::new("ip")
        .args([
            "-n",
            netns.name(),
            "-s",
            "-j",
            "link",
            "show",
            "dev",
            interface,
        ])
        .output()
        .expect("ip -s link");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("ip's JSON");
    json[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .expect("rx packets")
}

/// The no-crypto baseline: the gateway's path (receive, copy into the other port's frame with
/// new MACs, transmit) without the ESP call.
fn plain_forward(lan: &mut XskPort, wan: &mut XskPort, stop: &AtomicBool) -> u64 {
    let mut forwarded = 0;
    let mut received = [EMPTY; BATCH];
    let mut outgoing = [EMPTY; BATCH];
    while !stop.load(Ordering::Relaxed) {
        let count = lan.socket.receive(&mut received);
        let mut sending = 0;
        for d in &received[..count] {
            let Some(data) = lan.socket.frame(d.addr, d.len as usize) else {
                continue;
            };
            let Some(addr) = wan.socket.take_tx_frame() else {
                continue;
            };
            let (buffer, offset) = wan.socket.frame_mut(addr).expect("frame");
            let out = &mut buffer[offset..offset + data.len()];
            out.copy_from_slice(data);
            out[..6].copy_from_slice(&wan.next_hop);
            out[6..12].copy_from_slice(&wan.mac);
            outgoing[sending] = Descriptor {
                addr,
                len: d.len,
                options: 0,
            };
            sending += 1;
        }
        lan.socket.refill(received[..count].iter().map(|d| d.addr));
        forwarded += u64::from(wan.socket.transmit(&outgoing[..sending]));
        wan.socket.reclaim_completed();
        if count == 0 {
            wait_readable(lan.socket.fd());
        }
    }
    forwarded
}

struct Result {
    forwarded: u64,
    cpu: Duration,
    wall: Duration,
    sent: u64,
    received: u64,
}

fn attach_with_policy(interface: &str, policy: Option<&str>) -> (Classifier, Attachment) {
    let mut classifier = Classifier::load(ClassifierConfig::default()).expect("classifier");
    let attachment = classifier
        .attach(interface, AttachMode::Native)
        .expect("native attach");
    if let Some(prefix) = policy {
        classifier
            .add_policy(prefix.parse::<IpNet>().unwrap())
            .unwrap();
    }
    (classifier, attachment)
}

fn run(topology: &Topology, size: usize, esp: bool) -> Result {
    let host_mac = mac_of(&topology.host_a, "eth0");
    let lan_mac = mac_of(&topology.gw_a, "lan");
    let wan_mac = mac_of(&topology.gw_a, "wan");
    let template = frame(size, lan_mac, host_mac);
    let stop = AtomicBool::new(false);
    let ready = AtomicU64::new(0);
    let wait_ready = |n| {
        while ready.load(Ordering::Acquire) < n {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    std::thread::scope(|scope| {
        let dut_thread = scope.spawn(|| {
            topology.gw_a.run(|| {
                let (mut classifier, _attached) = attach_with_policy("lan", Some("10.2.0.0/24"));
                let lan_socket = XskSocket::bind("lan", 0, config()).unwrap();
                classifier.register_xsk(0, &lan_socket).unwrap();
                let mut lan = XskPort {
                    socket: lan_socket,
                    mac: lan_mac,
                    next_hop: host_mac,
                };
                let mut wan = XskPort {
                    socket: XskSocket::bind("wan", 0, config()).unwrap(),
                    mac: wan_mac,
                    next_hop: NOBODY,
                };
                ready.fetch_add(1, Ordering::Release);
                let (wall, cpu) = (Instant::now(), thread_cpu_time());
                let forwarded = if esp {
                    let (a, b) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
                    let (outbound, inbound) = sas(a, b, Transport::RawEsp, 0x1001, 0x2002);
                    let mut gateway = XskGateway::new(
                        lan,
                        wan,
                        StaticSas { outbound, inbound },
                        Decapsulator::new(4500),
                        BATCH,
                    );
                    while !stop.load(Ordering::Relaxed) {
                        if gateway.run_once() == 0 {
                            wait_readable(gateway.lan().socket.fd());
                        }
                    }
                    gateway.counters().encapsulated
                } else {
                    plain_forward(&mut lan, &mut wan, &stop)
                };
                (forwarded, thread_cpu_time() - cpu, wall.elapsed())
            })
        });
        wait_ready(1);
        let sink_before = rx_packets(&topology.gw_b, "wan");
        let generator = scope.spawn(|| {
            topology.host_a.run(|| {
                let mut socket = XskSocket::bind("eth0", 0, config()).unwrap();
                generate(&mut socket, &template, &stop)
            })
        });
        std::thread::sleep(RUN);
        stop.store(true, Ordering::Release);
        let sent = generator.join().unwrap();
        let (forwarded, cpu, wall) = dut_thread.join().unwrap();
        let received = rx_packets(&topology.gw_b, "wan") - sink_before;
        Result {
            forwarded,
            cpu,
            wall,
            sent,
            received,
        }
    })
}

#[test]
#[ignore = "a measurement, not a test: run by hand as root (see the module docs)"]
fn esp_gateway_against_plain_forwarder() {
    if !netns::can_run("esp_gateway_against_plain_forwarder") {
        return;
    }
    let topology = Topology::new("192.0.2.1/24", "192.0.2.2/24");
    let _ = Netns::name;
    println!(
        "| bytes | device | Mpps (wall) | M packets per CPU-second | sent | arrived at the sink |"
    );
    println!("|---:|---|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for size in [64usize, 1400] {
        let mut per_cpu = [0f64; 2];
        for (i, esp) in [(1, true), (0, false), (1, true), (0, false)] {
            let r = run(&topology, size, esp);
            let wall = r.forwarded as f64 / r.wall.as_secs_f64() / 1e6;
            // Each device runs twice, interleaved; the better run counts (noise only slows).
            per_cpu[i] = per_cpu[i].max(r.forwarded as f64 / r.cpu.as_secs_f64() / 1e6);
            let name = if esp {
                "xipsec ESP (AES-128-GCM)"
            } else {
                "plain AF_XDP forwarder"
            };
            println!(
                "| {size} | {name} | {wall:.3} | {:.3} | {} | {} |",
                r.forwarded as f64 / r.cpu.as_secs_f64() / 1e6,
                r.sent,
                r.received
            );
        }
        rows.push((size, per_cpu[1] / per_cpu[0]));
    }
    for (size, ratio) in rows {
        println!(
            "ESP / plain at {size} bytes: {:.0}% of the forwarder's packets per CPU-second",
            ratio * 100.0
        );
    }
}
