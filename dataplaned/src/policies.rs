//! The XDP program steers plaintext into the workers only where an outbound policy covers its
//! destination (issue 5); this keeps its LPM tables equal to the SPD the control plane wrote.
//! Polled, not pushed: the SPD carries a version, and one load tells whether anything moved.

use std::collections::BTreeSet;

use ipnet::IpNet;
use tracing::{debug, warn};
use xipsec_dataplane::table::{Policy, TableReader};
use xipsec_ebpf::Classifier;

/// The prefixes last written into every classifier, and the SPD version they came from.
#[derive(Debug, Default)]
pub struct PolicySync {
    version: Option<u64>,
    installed: BTreeSet<IpNet>,
    scratch: Vec<Policy>,
}

impl PolicySync {
    /// Brings every classifier's policy tables to the SPD's outbound destinations when the SPD
    /// changed. Returns whether it wrote anything.
    pub fn sync(&mut self, table: &TableReader, classifiers: &mut [&mut Classifier]) -> bool {
        let version = table.spd_version();
        if self.version == Some(version) {
            return false;
        }
        // A torn read (the writer was mid-update) is retried on the next tick.
        let Ok(read_version) = table.read_policies(&mut self.scratch) else {
            return false;
        };
        let wanted = destinations(&self.scratch);
        let mut complete = true;
        for prefix in wanted.difference(&self.installed) {
            for classifier in classifiers.iter_mut() {
                if let Err(e) = classifier.add_policy(*prefix) {
                    warn!(%prefix, "cannot steer plaintext into the workers: {e}");
                    complete = false;
                }
            }
        }
        for prefix in self.installed.difference(&wanted) {
            for classifier in classifiers.iter_mut() {
                if let Err(e) = classifier.remove_policy(*prefix) {
                    warn!(%prefix, "cannot remove a policy prefix: {e}");
                    complete = false;
                }
            }
        }
        debug!(
            prefixes = wanted.len(),
            version = read_version,
            "XDP policy tables synced"
        );
        self.installed = wanted;
        // Try again on the next tick if a map refused something.
        self.version = complete.then_some(read_version);
        true
    }

    /// The prefixes steered into the workers now.
    pub fn installed(&self) -> &BTreeSet<IpNet> {
        &self.installed
    }
}

/// Where outbound plaintext goes: the remote side of every policy, as prefixes.
fn destinations(policies: &[Policy]) -> BTreeSet<IpNet> {
    policies
        .iter()
        .flat_map(|policy| policy.remote.subnets())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use xipsec_dataplane::table::{AddressRange, SlotId, ANY_PORT};

    fn range(text: &str) -> AddressRange {
        let net: IpNet = text.parse().unwrap();
        AddressRange::prefix(net.addr(), net.prefix_len()).unwrap()
    }

    #[test]
    fn destinations_are_the_remote_selectors_as_prefixes() {
        let policy = |local: &str, remote: &str| Policy {
            local: range(local),
            remote: range(remote),
            protocol: None,
            local_ports: ANY_PORT,
            remote_ports: ANY_PORT,
            outbound: SlotId(0),
        };
        let got = destinations(&[
            policy("10.1.0.0/24", "10.2.0.0/24"),
            policy("10.1.0.0/24", "10.2.0.0/24"),
            policy("10.1.0.0/24", "10.3.0.0/16"),
            policy("2001:db8:1::/48", "2001:db8:2::/48"),
        ]);
        let text: Vec<String> = got.iter().map(|n| n.to_string()).collect();
        assert_eq!(text, ["10.2.0.0/24", "10.3.0.0/16", "2001:db8:2::/48"]);
    }
}
