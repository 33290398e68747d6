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
    /// In every classifier's tables.
    installed: BTreeSet<IpNet>,
    /// Wanted but refused by a classifier (its table full): their plaintext is not steered
    /// into the workers, so it is not encrypted. Tried again when the SPD changes.
    refused: usize,
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
        // Removals first: a full table makes room for the new prefixes.
        let gone: Vec<IpNet> = self.installed.difference(&wanted).copied().collect();
        for prefix in gone {
            for classifier in classifiers.iter_mut() {
                if let Err(e) = classifier.remove_policy(prefix) {
                    warn!(%prefix, "cannot remove a policy prefix: {e}");
                }
            }
            self.installed.remove(&prefix);
        }
        let mut refused = 0;
        for prefix in wanted
            .difference(&self.installed)
            .copied()
            .collect::<Vec<_>>()
        {
            let mut added = true;
            for classifier in classifiers.iter_mut() {
                if let Err(e) = classifier.add_policy(prefix) {
                    if refused == 0 {
                        warn!(%prefix, "cannot steer plaintext into the workers: {e}");
                    }
                    added = false;
                }
            }
            if added {
                self.installed.insert(prefix);
            } else {
                refused += 1;
            }
        }
        if refused > 0 {
            warn!(
                refused,
                installed = self.installed.len(),
                "policy prefixes the XDP tables refused: their plaintext is not encrypted"
            );
        }
        debug!(
            prefixes = wanted.len(),
            version = read_version,
            "XDP policy tables synced"
        );
        self.refused = refused;
        // A full table stays full until the SPD changes: not retried every tick.
        self.version = Some(read_version);
        true
    }

    /// Prefixes of the current SPD that the XDP tables refused.
    pub fn refused(&self) -> usize {
        self.refused
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
    use xipsec_dataplane::table::{AddressRange, SlotId, TableWriter, ANY_PORT};

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

    /// A table file, removed on every exit path.
    struct TempTable(std::path::PathBuf);

    impl Drop for TempTable {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// A table whose SPD sends `remotes` (one /24 each) through outbound SAs.
    fn table_with(writer: &mut TableWriter, slots: &[SlotId], remotes: &[u32]) {
        let policies: Vec<Policy> = remotes
            .iter()
            .zip(slots)
            .map(|(&site, &outbound)| Policy {
                local: range("10.1.0.0/16"),
                remote: range(&format!("{}/24", std::net::Ipv4Addr::from(site << 8))),
                protocol: None,
                local_ports: ANY_PORT,
                remote_ports: ANY_PORT,
                outbound,
            })
            .collect();
        writer.set_policies(&policies).unwrap();
    }

    #[test]
    fn a_full_xdp_table_is_counted_and_retried_when_the_spd_changes() {
        use xipsec_dataplane::esp::{CipherSuite, Endpoints, SaParams};
        use xipsec_dataplane::table::{Direction, Keymat, Lifetimes, SaRecord, TableWriter};
        if !xipsec_testkit::require("xdp_policy_table_full", &[xipsec_testkit::Need::Root]) {
            return;
        }
        let file = TempTable(
            std::env::temp_dir().join(format!("xipsec-policy-sync-{}", std::process::id())),
        );
        let mut writer = TableWriter::create(&file.0, 16).unwrap();
        let slots: Vec<SlotId> = (0..8)
            .map(|i| {
                let params = SaParams::tunnel(
                    0x100 + i,
                    CipherSuite::Aes128Gcm16,
                    Endpoints::V4 {
                        local: "192.0.2.1".parse().unwrap(),
                        remote: "192.0.2.2".parse().unwrap(),
                    },
                );
                let record = SaRecord {
                    direction: Direction::Outbound,
                    params,
                    keymat: Keymat::new(&[7; 20]).unwrap(),
                    lifetimes: Lifetimes::default(),
                    owner_worker: xipsec_dataplane::table::ANY_WORKER,
                    installed_at: 0,
                    pair: None,
                };
                writer.install(&record).unwrap()
            })
            .collect();
        let reader = TableReader::open(&file.0).unwrap();
        let config = xipsec_ebpf::ClassifierConfig {
            max_policies: 4,
            ..xipsec_ebpf::ClassifierConfig::default()
        };
        let mut classifier = Classifier::load(config).unwrap();
        let mut sync = PolicySync::default();
        let net = |site: u32| -> IpNet {
            format!("{}/24", std::net::Ipv4Addr::from(site << 8))
                .parse()
                .unwrap()
        };
        // Six destinations for a table of four: four steered, two refused and counted.
        let sites: Vec<u32> = (0x0A0201..=0x0A0206).collect();
        table_with(&mut writer, &slots, &sites);
        assert!(sync.sync(&reader, &mut [&mut classifier]));
        assert_eq!((sync.installed().len(), sync.refused()), (4, 2));
        // Nothing changed: not tried again every tick.
        assert!(!sync.sync(&reader, &mut [&mut classifier]));
        // Two steered tunnels go: the refused ones get their turn.
        let (steered, refused): (Vec<u32>, Vec<u32>) = sites
            .iter()
            .partition(|&&site| sync.installed().contains(&net(site)));
        let now: Vec<u32> = steered[2..].iter().chain(&refused).copied().collect();
        table_with(&mut writer, &slots, &now);
        assert!(sync.sync(&reader, &mut [&mut classifier]));
        assert_eq!((sync.installed().len(), sync.refused()), (4, 0));
        for site in now {
            assert!(sync.installed().contains(&net(site)), "{}", net(site));
        }
    }
}
