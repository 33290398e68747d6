//! The XDP classifier that steers ESP, ESP-in-UDP and outbound plaintext to AF_XDP sockets, and
//! its loader.
//!
//! The program (`src/bpf/classifier.bpf.c`) is C, compiled with clang by `build.rs` and embedded
//! in this crate; [`Classifier`] loads it with [`aya`](https://docs.rs/aya/0.14.0), attaches it
//! to interfaces and fills its maps. For each frame it decides:
//!
//! | frame | action | counter |
//! |---|---|---|
//! | ESP (IP protocol 50), not a fragment | AF_XDP socket of the receiving queue | `esp_to_xsk` |
//! | destination in an outbound policy prefix ([`Classifier::add_policy`]) | AF_XDP socket | `policy_to_xsk` |
//! | IPv4 or IPv6 fragment | kernel | `fragment_pass` |
//! | UDP to the NAT-T port, a single 0xFF byte (keepalive) | drop | `keepalive_drop` |
//! | UDP to the NAT-T port, first word zero (non-ESP marker: IKE) | kernel | `ike_pass` |
//! | UDP to the NAT-T port, otherwise (ESP in UDP) | AF_XDP socket | `esp_in_udp_to_xsk` |
//! | UDP to 500 (IKE) | kernel | `ike_pass` |
//! | truncated or invalid headers | kernel | `malformed_pass` |
//! | anything else | kernel | `pass_other` |
//!
//! The checks run in that order (ESP first, so the inbound hot path pays no policy lookup; the
//! policy before everything else, so no plaintext for a protected destination leaks through the
//! kernel). Ethernet frames with up to two VLAN tags (802.1Q, 802.1ad) and IPv6 with up to six
//! hop-by-hop, routing, destination-options or fragment headers are understood. A frame sent
//! to a queue with no AF_XDP socket goes to the kernel instead (`xsk_fallback_pass`).
//!
//! ```no_run
//! use xipsec_ebpf::{AttachMode, Classifier, ClassifierConfig};
//!
//! let mut classifier = Classifier::load(ClassifierConfig::default())?;
//! classifier.add_policy("10.2.0.0/24".parse()?)?;
//! let attachment = classifier.attach("eth0", AttachMode::Auto)?;
//! // classifier.register_xsk(queue, &socket)? for each AF_XDP socket of eth0.
//! println!("{:?}", classifier.counters()?);
//! drop(attachment); // detaches
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod counters;
mod error;

use std::fmt;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{MapData, PerCpuArray, XskMap};
use aya::programs::links::Link as _;
use aya::programs::xdp::XdpLink;
use aya::programs::{ProgramError, TestRun as _, TestRunOptions, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};

pub use counters::VerdictCounters;
pub use error::{Error, Fault, Source};
pub use ipnet::IpNet;

use counters::index;

/// The compiled program, aligned as the ELF parser wants it.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/classifier.bpf.o"));

/// The NAT-T port of RFC 3948, the default of [`ClassifierConfig::natt_port`].
pub const DEFAULT_NATT_PORT: u16 = 4500;
/// The IKE port (RFC 7296): UDP to it always passes to the kernel.
pub const IKE_PORT: u16 = 500;

const PROGRAM: &str = "xipsec_classify";
const MAP_XSKS: &str = "xipsec_xsks";
const MAP_POLICY_V4: &str = "xipsec_pol_v4";
const MAP_POLICY_V6: &str = "xipsec_pol_v6";
const MAP_COUNTERS: &str = "xipsec_counts";
const GLOBAL_NATT_PORT: &str = "natt_port";

/// How the classifier is built. Fields may be added: start from `Default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassifierConfig {
    /// UDP destination port of NAT-T (ESP in UDP, IKE with the non-ESP marker, keepalives).
    /// Default 4500; must not be 0 or 500.
    pub natt_port: u16,
    /// Entries in the XSKMAP: queues 0 to `max_queues - 1` can have an AF_XDP socket.
    /// Default 64; must be at least 1.
    pub max_queues: u32,
    /// Capacity of each policy table (one for IPv4 prefixes, one for IPv6). Default 16384;
    /// must be at least 1. Memory is allocated per prefix, not up front.
    pub max_policies: u32,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            natt_port: DEFAULT_NATT_PORT,
            max_queues: 64,
            max_policies: 16384,
        }
    }
}

impl ClassifierConfig {
    fn validate(&self) -> Result<(), Error> {
        let reason = if self.natt_port == 0 {
            "natt_port must not be 0"
        } else if self.natt_port == IKE_PORT {
            "natt_port must not be 500: the IKE port always passes to the kernel"
        } else if self.max_queues == 0 {
            "max_queues must be at least 1"
        } else if self.max_policies == 0 {
            "max_policies must be at least 1"
        } else {
            return Ok(());
        };
        Err(Error::InvalidConfig { reason })
    }
}

/// How to attach to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// Driver mode: runs before any socket buffer exists. Needs driver support (veth has it).
    Native,
    /// Generic (skb) mode: works on any interface, after the kernel built a socket buffer.
    Generic,
    /// Native, or generic where the driver refuses native mode.
    Auto,
}

impl AttachMode {
    fn xdp_mode(self) -> XdpMode {
        match self {
            AttachMode::Native | AttachMode::Auto => XdpMode::Driver,
            AttachMode::Generic => XdpMode::Skb,
        }
    }
}

/// What an XDP program returned (`enum xdp_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum XdpAction {
    /// `XDP_ABORTED`: a program error. The classifier never returns it.
    Aborted,
    /// `XDP_DROP`.
    Drop,
    /// `XDP_PASS`: on to the kernel stack.
    Pass,
    /// `XDP_TX`: back out of the receiving interface.
    Tx,
    /// `XDP_REDIRECT`: here, to an AF_XDP socket.
    Redirect,
    /// A value outside the enum.
    Unknown(u32),
}

impl From<u32> for XdpAction {
    fn from(value: u32) -> Self {
        match value {
            0 => XdpAction::Aborted,
            1 => XdpAction::Drop,
            2 => XdpAction::Pass,
            3 => XdpAction::Tx,
            4 => XdpAction::Redirect,
            other => XdpAction::Unknown(other),
        }
    }
}

/// The loaded classifier program and its maps.
///
/// Loading needs CAP_BPF (or root), attaching CAP_NET_ADMIN. BPF maps and programs are global
/// to the machine, not per network namespace.
///
/// One `Classifier` serves one interface at a time: the XSKMAP is indexed by receive queue
/// only, and the kernel drops a frame redirected to an AF_XDP socket bound to another
/// interface. Load one per interface.
pub struct Classifier {
    ebpf: Ebpf,
    config: ClassifierConfig,
    xsks: XskMap<MapData>,
    policy_v4: LpmTrie<MapData, [u8; 4], u32>,
    policy_v6: LpmTrie<MapData, [u8; 16], u32>,
    counters: PerCpuArray<MapData, u64>,
    /// Set while an [`Attachment`] lives.
    attached: Arc<AtomicBool>,
}

impl fmt::Debug for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn load_error(error: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Load {
        source: Box::new(error),
    }
}

fn missing(what: &'static str) -> Error {
    Error::Load {
        source: format!("the embedded object has no {what}").into(),
    }
}

impl Classifier {
    /// Loads the program into the kernel with its maps (empty policy tables, no sockets,
    /// counters at zero). Nothing is attached yet.
    pub fn load(config: ClassifierConfig) -> Result<Self, Error> {
        config.validate()?;
        let mut ebpf = EbpfLoader::new()
            .override_global(GLOBAL_NATT_PORT, &config.natt_port, true)
            .map_max_entries(MAP_XSKS, config.max_queues)
            .map_max_entries(MAP_POLICY_V4, config.max_policies)
            .map_max_entries(MAP_POLICY_V6, config.max_policies)
            .load(OBJECT)
            .map_err(load_error)?;

        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| missing("program xipsec_classify"))?
            .try_into()
            .map_err(load_error)?;
        program.load().map_err(load_error)?;

        let mut take = |name: &'static str| ebpf.take_map(name).ok_or_else(|| missing(name));
        let xsks = XskMap::try_from(take(MAP_XSKS)?).map_err(load_error)?;
        let policy_v4 = LpmTrie::try_from(take(MAP_POLICY_V4)?).map_err(load_error)?;
        let policy_v6 = LpmTrie::try_from(take(MAP_POLICY_V6)?).map_err(load_error)?;
        let counters = PerCpuArray::try_from(take(MAP_COUNTERS)?).map_err(load_error)?;
        if counters.len() != index::COUNT {
            return Err(missing("counter map of the expected size"));
        }

        Ok(Self {
            ebpf,
            config,
            xsks,
            policy_v4,
            policy_v6,
            counters,
            attached: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The configuration the program was loaded with.
    pub fn config(&self) -> &ClassifierConfig {
        &self.config
    }

    fn program(&self) -> Result<&Xdp, Error> {
        self.ebpf
            .program(PROGRAM)
            .ok_or_else(|| missing("program xipsec_classify"))?
            .try_into()
            .map_err(load_error)
    }

    fn program_mut(&mut self) -> Result<&mut Xdp, Error> {
        self.ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| missing("program xipsec_classify"))?
            .try_into()
            .map_err(load_error)
    }

    /// Attaches the program to `ifname`, looked up in the calling thread's network namespace,
    /// through a BPF link. The returned [`Attachment`] detaches it when dropped (so does the
    /// kernel when the process exits). An interface can have one XDP program: attaching where
    /// another is attached fails. While an [`Attachment`] of this `Classifier` lives, attaching
    /// again fails with [`Error::AlreadyAttached`] (see [`Classifier`]).
    pub fn attach(&mut self, ifname: &str, mode: AttachMode) -> Result<Attachment, Error> {
        if ifname.is_empty() || ifname.len() > 15 || ifname.contains('\0') {
            return Err(Error::UnknownInterface {
                ifname: ifname.to_owned(),
            });
        }
        if self.attached.swap(true, Ordering::AcqRel) {
            return Err(Error::AlreadyAttached {
                ifname: ifname.to_owned(),
            });
        }
        let result = self.attach_once(ifname, mode);
        if result.is_err() {
            self.attached.store(false, Ordering::Release);
        }
        result
    }

    fn attach_once(&mut self, ifname: &str, mode: AttachMode) -> Result<Attachment, Error> {
        let tries: &[AttachMode] = match mode {
            AttachMode::Native => &[AttachMode::Native],
            AttachMode::Generic => &[AttachMode::Generic],
            AttachMode::Auto => &[AttachMode::Native, AttachMode::Generic],
        };
        let program = self.program_mut()?;
        let mut failure = None;
        for &mode in tries {
            match program.attach(ifname, mode.xdp_mode()) {
                Ok(id) => {
                    let link = program.take_link(id).map_err(|error| Error::Attach {
                        ifname: ifname.to_owned(),
                        mode,
                        source: Box::new(error),
                    })?;
                    return Ok(Attachment {
                        link: Some(link),
                        ifname: ifname.to_owned(),
                        mode,
                        attached: Arc::clone(&self.attached),
                    });
                }
                Err(ProgramError::UnknownInterface { .. }) => {
                    return Err(Error::UnknownInterface {
                        ifname: ifname.to_owned(),
                    })
                }
                Err(error) => failure = Some((mode, error)),
            }
        }
        let (mode, error) = failure.expect("at least one mode was tried");
        Err(Error::Attach {
            ifname: ifname.to_owned(),
            mode,
            source: Box::new(error),
        })
    }

    /// Puts the AF_XDP socket bound to `queue` in the XSKMAP: ESP, ESP-in-UDP and policy
    /// matches received on that queue go to it from now on. Replaces any previous socket.
    pub fn register_xsk(&mut self, queue: u32, socket: impl AsFd) -> Result<(), Error> {
        self.check_queue(queue)?;
        self.xsks
            .set(queue, socket.as_fd().as_raw_fd(), 0)
            .map_err(|error| Error::RegisterXsk {
                queue,
                source: Box::new(error),
            })
    }

    /// Removes the socket of `queue` from the XSKMAP (its frames then pass to the kernel).
    pub fn unregister_xsk(&mut self, queue: u32) -> Result<(), Error> {
        self.check_queue(queue)?;
        self.xsks.unset(queue).map_err(|error| Error::Map {
            map: MAP_XSKS,
            source: Box::new(error),
        })
    }

    fn check_queue(&self, queue: u32) -> Result<(), Error> {
        if queue >= self.config.max_queues {
            return Err(Error::QueueOutOfRange {
                queue,
                max_queues: self.config.max_queues,
            });
        }
        Ok(())
    }

    /// Adds an outbound-policy destination prefix: plaintext to an address inside it goes to
    /// the AF_XDP socket. Host bits are ignored (`10.2.0.7/24` is `10.2.0.0/24`). Adding a
    /// prefix twice is not an error.
    pub fn add_policy(&mut self, prefix: IpNet) -> Result<(), Error> {
        let prefix = prefix.trunc();
        let length = u32::from(prefix.prefix_len());
        let result = match prefix.addr() {
            IpAddr::V4(addr) => self
                .policy_v4
                .insert(&Key::new(length, addr.octets()), 1, 0),
            IpAddr::V6(addr) => self
                .policy_v6
                .insert(&Key::new(length, addr.octets()), 1, 0),
        };
        result.map_err(|error| {
            if error::os_error(&error) == Some(libc_errno::ENOSPC) {
                Error::PolicyTableFull {
                    prefix,
                    max_policies: self.config.max_policies,
                }
            } else {
                Error::Map {
                    map: policy_map_name(&prefix),
                    source: Box::new(error),
                }
            }
        })
    }

    /// Removes a prefix added with [`add_policy`](Self::add_policy) (host bits ignored).
    /// Returns whether it was there.
    pub fn remove_policy(&mut self, prefix: IpNet) -> Result<bool, Error> {
        let prefix = prefix.trunc();
        let length = u32::from(prefix.prefix_len());
        let result = match prefix.addr() {
            IpAddr::V4(addr) => self.policy_v4.remove(&Key::new(length, addr.octets())),
            IpAddr::V6(addr) => self.policy_v6.remove(&Key::new(length, addr.octets())),
        };
        match result {
            Ok(()) => Ok(true),
            Err(error) if error::os_error(&error) == Some(libc_errno::ENOENT) => Ok(false),
            Err(aya::maps::MapError::KeyNotFound) => Ok(false),
            Err(error) => Err(Error::Map {
                map: policy_map_name(&prefix),
                source: Box::new(error),
            }),
        }
    }

    /// The policy prefixes in the tables, IPv4 first, in the kernel's order.
    pub fn policies(&self) -> Result<Vec<IpNet>, Error> {
        fn map_error(map: &'static str, error: impl Into<Source>) -> Error {
            Error::Map {
                map,
                source: error.into(),
            }
        }
        let mut prefixes = Vec::new();
        for key in self.policy_v4.keys() {
            let key = key.map_err(|error| map_error(MAP_POLICY_V4, error))?;
            let net = ipnet::Ipv4Net::new(key.data().into(), prefix_len(key.prefix_len()))
                .map_err(|error| map_error(MAP_POLICY_V4, error))?;
            prefixes.push(IpNet::V4(net));
        }
        for key in self.policy_v6.keys() {
            let key = key.map_err(|error| map_error(MAP_POLICY_V6, error))?;
            let net = ipnet::Ipv6Net::new(key.data().into(), prefix_len(key.prefix_len()))
                .map_err(|error| map_error(MAP_POLICY_V6, error))?;
            prefixes.push(IpNet::V6(net));
        }
        Ok(prefixes)
    }

    /// The verdict counters, summed over all CPUs, since the program was loaded.
    pub fn counters(&self) -> Result<VerdictCounters, Error> {
        let mut values = [0u64; index::COUNT as usize];
        for (i, value) in (0..index::COUNT).zip(values.iter_mut()) {
            let per_cpu = self.counters.get(&i, 0).map_err(|error| Error::Map {
                map: MAP_COUNTERS,
                source: Box::new(error),
            })?;
            *value = per_cpu.iter().copied().fold(0u64, u64::wrapping_add);
        }
        Ok(VerdictCounters::from_indexed(|i| values[i as usize]))
    }

    /// Runs the program once on `frame` with BPF_PROG_TEST_RUN (receive queue 0, no
    /// interface) and returns its action. The counters move as for a received frame; nothing
    /// is sent anywhere. The kernel refuses frames shorter than an Ethernet header (14 bytes).
    pub fn test_run(&self, frame: &[u8]) -> Result<XdpAction, Error> {
        let options = TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::default()
        };
        let result = self
            .program()?
            .test_run(options)
            .map_err(|error| Error::TestRun {
                source: Box::new(error),
            })?;
        Ok(XdpAction::from(result.return_value))
    }
}

fn prefix_len(bits: u32) -> u8 {
    u8::try_from(bits).unwrap_or(u8::MAX)
}

fn policy_map_name(prefix: &IpNet) -> &'static str {
    match prefix {
        IpNet::V4(_) => MAP_POLICY_V4,
        IpNet::V6(_) => MAP_POLICY_V6,
    }
}

/// The errno values this crate tells apart (Linux, all architectures).
mod libc_errno {
    pub const ENOENT: i32 = 2;
    pub const ENOSPC: i32 = 28;
}

/// The program attached to one interface. Dropping it detaches the program (errors ignored);
/// [`detach`](Self::detach) reports them.
pub struct Attachment {
    link: Option<XdpLink>,
    ifname: String,
    mode: AttachMode,
    attached: Arc<AtomicBool>,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // The link (if still here) detaches in its own Drop, right after this.
        self.attached.store(false, Ordering::Release);
    }
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("ifname", &self.ifname)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Attachment {
    /// The interface.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The mode in use: [`AttachMode::Native`] or [`AttachMode::Generic`], never `Auto`.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// Detaches the program from the interface.
    pub fn detach(mut self) -> Result<(), Error> {
        match self.link.take() {
            Some(link) => link.detach().map_err(|error| Error::Detach {
                ifname: self.ifname.clone(),
                source: Box::new(error),
            }),
            None => Ok(()),
        }
    }
}
