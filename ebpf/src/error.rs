//! What can go wrong loading, attaching and feeding the classifier, and whose fault it is.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use ipnet::IpNet;

use crate::AttachMode;

/// A boxed cause from the BPF library or the kernel, kept opaque so that the loader library is
/// not part of this crate's API.
pub type Source = Box<dyn StdError + Send + Sync + 'static>;

/// Who has to act to fix an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// This machine: the kernel (version, verifier, driver), missing privileges (CAP_BPF,
    /// CAP_NET_ADMIN), memory limits, or a resource the caller handed in (a socket).
    Local,
    /// The configuration: an interface name, a NAT-T port, a table size.
    Config,
}

/// Errors of [`Classifier`](crate::Classifier) and [`Attachment`](crate::Attachment).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A [`ClassifierConfig`](crate::ClassifierConfig) value is out of range. Config.
    InvalidConfig {
        /// Which field and why.
        reason: &'static str,
    },
    /// The kernel refused the program or one of its maps: no CAP_BPF/CAP_SYS_ADMIN (EPERM),
    /// the verifier rejected the program (its log is in the source), or the memory cgroup is
    /// exhausted. Local.
    Load {
        /// The loader's error, with the verifier log where there is one.
        source: Source,
    },
    /// No network interface has this name in the calling thread's network namespace. Config.
    UnknownInterface {
        /// The name looked up.
        ifname: String,
    },
    /// This [`Classifier`](crate::Classifier) is attached already (its XSKMAP serves one
    /// interface): drop that [`Attachment`](crate::Attachment) or load another classifier.
    /// Config.
    AlreadyAttached {
        /// The interface of the refused attachment.
        ifname: String,
    },
    /// The kernel refused to attach the program: the driver has no native XDP
    /// ([`AttachMode::Native`]), another XDP program is attached (EBUSY/EEXIST), the MTU is too
    /// large for the mode, or CAP_NET_ADMIN is missing. Local.
    Attach {
        /// The interface.
        ifname: String,
        /// The mode that was tried last.
        mode: AttachMode,
        /// The kernel's answer.
        source: Source,
    },
    /// Detaching from an interface failed (it may have disappeared meanwhile). Local.
    Detach {
        /// The interface.
        ifname: String,
        /// The kernel's answer.
        source: Source,
    },
    /// A queue index at or above [`ClassifierConfig::max_queues`](crate::ClassifierConfig).
    /// Config.
    QueueOutOfRange {
        /// The queue asked for.
        queue: u32,
        /// The XSKMAP size.
        max_queues: u32,
    },
    /// The kernel refused the socket for the XSKMAP: the descriptor is not an AF_XDP socket,
    /// or the socket is not bound. Local.
    RegisterXsk {
        /// The queue.
        queue: u32,
        /// The kernel's answer.
        source: Source,
    },
    /// The policy table for this address family holds
    /// [`ClassifierConfig::max_policies`](crate::ClassifierConfig) prefixes already. Config.
    PolicyTableFull {
        /// The prefix that did not fit.
        prefix: IpNet,
        /// The table's capacity.
        max_policies: u32,
    },
    /// A map read or update failed for another reason (memory). Local.
    Map {
        /// The map's name in the program.
        map: &'static str,
        /// The kernel's answer.
        source: Source,
    },
    /// BPF_PROG_TEST_RUN failed: the frame is shorter than an Ethernet header or longer than
    /// the kernel accepts, or the kernel lacks the command. Local.
    TestRun {
        /// The kernel's answer.
        source: Source,
    },
}

impl Error {
    /// Who has to act to fix this error.
    pub fn fault(&self) -> Fault {
        match self {
            Error::InvalidConfig { .. }
            | Error::UnknownInterface { .. }
            | Error::AlreadyAttached { .. }
            | Error::QueueOutOfRange { .. }
            | Error::PolicyTableFull { .. } => Fault::Config,
            Error::Load { .. }
            | Error::Attach { .. }
            | Error::Detach { .. }
            | Error::RegisterXsk { .. }
            | Error::Map { .. }
            | Error::TestRun { .. } => Fault::Local,
        }
    }

    /// The errno of the failed system call, when there was one.
    pub fn os_error(&self) -> Option<i32> {
        let source = match self {
            Error::Load { source }
            | Error::Attach { source, .. }
            | Error::Detach { source, .. }
            | Error::RegisterXsk { source, .. }
            | Error::Map { source, .. }
            | Error::TestRun { source } => source.as_ref(),
            _ => return None,
        };
        os_error(source)
    }
}

/// The errno of the first `io::Error` in an error's source chain.
pub(crate) fn os_error(error: &(dyn StdError + 'static)) -> Option<i32> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(io) = error.downcast_ref::<io::Error>() {
            return io.raw_os_error();
        }
        next = error.source();
    }
    None
}

/// Writes an error and its causes, `: `-separated.
fn write_chain(f: &mut fmt::Formatter<'_>, error: &(dyn StdError + 'static)) -> fmt::Result {
    write!(f, "{error}")?;
    let mut next = error.source();
    while let Some(cause) = next {
        write!(f, ": {cause}")?;
        next = cause.source();
    }
    Ok(())
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig { reason } => {
                write!(f, "invalid classifier configuration: {reason}")
            }
            Error::Load { source } => {
                f.write_str("loading the XDP classifier failed (needs root or CAP_BPF): ")?;
                write_chain(f, source.as_ref())
            }
            Error::UnknownInterface { ifname } => {
                write!(f, "no network interface named {ifname:?} in this namespace")
            }
            Error::AlreadyAttached { ifname } => write!(
                f,
                "cannot attach to {ifname}: this classifier is attached to an interface already \
                 (load one classifier per interface)"
            ),
            Error::Attach {
                ifname,
                mode,
                source,
            } => {
                write!(
                    f,
                    "attaching the XDP classifier to {ifname} ({mode:?}) failed: "
                )?;
                write_chain(f, source.as_ref())
            }
            Error::Detach { ifname, source } => {
                write!(f, "detaching the XDP classifier from {ifname} failed: ")?;
                write_chain(f, source.as_ref())
            }
            Error::QueueOutOfRange { queue, max_queues } => write!(
                f,
                "queue {queue} is out of range: the XSKMAP has {max_queues} entries (max_queues)"
            ),
            Error::RegisterXsk { queue, source } => {
                write!(
                    f,
                    "putting the AF_XDP socket of queue {queue} in the XSKMAP failed: "
                )?;
                write_chain(f, source.as_ref())
            }
            Error::PolicyTableFull {
                prefix,
                max_policies,
            } => write!(
                f,
                "cannot add policy prefix {prefix}: the table holds {max_policies} prefixes \
                 (max_policies)"
            ),
            Error::Map { map, source } => {
                write!(f, "BPF map {map} failed: ")?;
                write_chain(f, source.as_ref())
            }
            Error::TestRun { source } => {
                f.write_str("BPF_PROG_TEST_RUN failed: ")?;
                write_chain(f, source.as_ref())
            }
        }
    }
}

/// The causes are part of the `Display` text (a verifier log is useless when hidden behind
/// `source()`), so `source()` returns `None` and a report does not print them twice.
impl StdError for Error {}
