//! The gateway interfaces: the XDP classifier attached to each (one program instance per
//! interface, since its XSKMAP is indexed by queue), and the AF_XDP sockets workers bind.

use tracing::{info, warn};
use xipsec_ebpf::{AttachMode, Attachment, Classifier, ClassifierConfig};

/// One interface with its classifier attached.
pub struct Interface {
    pub name: String,
    pub classifier: Classifier,
    /// Detaches the program when dropped (and the kernel does when the process dies).
    attachment: Option<Attachment>,
}

impl Interface {
    /// Loads a classifier for `name`, with room for `max_policies` destination prefixes per
    /// family, and attaches it.
    pub fn attach(
        name: &str,
        natt_port: u16,
        mode: AttachMode,
        max_policies: u32,
    ) -> Result<Interface, String> {
        let config = ClassifierConfig {
            natt_port,
            max_policies,
            ..ClassifierConfig::default()
        };
        let mut classifier =
            Classifier::load(config).map_err(|e| format!("cannot load the XDP program: {e}"))?;
        let attachment = classifier
            .attach(name, mode)
            .map_err(|e| format!("cannot attach the XDP program to {name}: {e}"))?;
        info!(interface = name, mode = ?attachment.mode(), "XDP classifier attached");
        Ok(Interface {
            name: name.to_string(),
            classifier,
            attachment: Some(attachment),
        })
    }

    /// Detaches now (rather than when dropped), saying so if the kernel refuses.
    pub fn detach(&mut self) {
        if let Some(attachment) = self.attachment.take() {
            if let Err(e) = attachment.detach() {
                warn!(interface = %self.name, "detaching the XDP program: {e}");
            }
        }
    }
}

/// How many receive queues `name` has, from sysfs of the current network namespace (a process
/// started with `ip netns exec` sees its namespace's sysfs). `None` when sysfs does not say.
pub fn rx_queues(name: &str) -> Option<u32> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{name}/queues")).ok()?;
    let count = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    u32::try_from(count).ok().filter(|n| *n > 0)
}
