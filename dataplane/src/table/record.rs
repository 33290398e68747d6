//! What one slot holds, as Rust values, and its encoding into the slot's 64-bit words.

use std::net::Ipv6Addr;

use zeroize::Zeroize;

use super::layout::CONFIG_WORDS;
use super::SlotId;
use crate::esp::{CipherSuite, DfPolicy, Endpoints, Mode, SaParams, UdpEncap};

/// The longest keying material of any suite: a 256-bit key and the 4-byte salt.
pub const MAX_KEYMAT_LEN: usize = 36;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Inbound,
    Outbound,
}

/// Soft and hard limits of an SA (RFC 4301 §4.4.2.1); zero means no limit of that kind. The
/// soft ones ask the control plane for a rekey, the hard ones stop the SA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifetimes {
    pub soft_bytes: u64,
    pub hard_bytes: u64,
    pub soft_packets: u64,
    pub hard_packets: u64,
    pub soft_seconds: u32,
    pub hard_seconds: u32,
}

/// Keying material in a fixed buffer that is zeroized on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Keymat {
    bytes: [u8; MAX_KEYMAT_LEN],
    len: u8,
}

impl Keymat {
    /// `None` when `bytes` is longer than any suite's keying material.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        let mut keymat = Self {
            bytes: [0; MAX_KEYMAT_LEN],
            len: u8::try_from(bytes.len()).ok()?,
        };
        keymat.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(keymat)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Drop for Keymat {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl std::fmt::Debug for Keymat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keymat({} bytes)", self.len)
    }
}

/// [`SaRecord::owner_worker`] of an SA that no worker is chosen for: its owner follows from
/// its slot (the slot's index modulo the worker count), so ordinary SAs spread over the
/// workers without the control plane knowing how many there are.
pub const ANY_WORKER: u16 = u16::MAX;

/// One SA as the control plane installs it and a worker reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaRecord {
    pub direction: Direction,
    pub params: SaParams,
    pub keymat: Keymat,
    pub lifetimes: Lifetimes,
    /// Which worker owns the SA: the only one that touches its sequence counter or replay
    /// window, and the only writer of its worker area. [`ANY_WORKER`] for an ordinary SA (its
    /// owner is its slot modulo the worker count); any other value pins the SA to that worker,
    /// modulo the worker count, as a per-resource Child SA (RFC 9611) is pinned to its CPU.
    /// `worker::owner_of` applies the rule. A worker reads the owner with the record, and a
    /// record is never rewritten in place, so an SA keeps its owner for its whole life.
    ///
    /// A table written before this field had a meaning holds 0 in every record: those SAs
    /// are all pinned to worker 0, which is correct (one owner each) but hands every packet
    /// the other workers receive over to worker 0.
    pub owner_worker: u16,
    /// Seconds since the epoch.
    pub installed_at: u64,
    /// Inbound: the slot of the outbound SA of the same Child SA. A worker lets a decrypted
    /// packet through only if it fits a policy of that outbound SA, reversed (RFC 4301 §5.2):
    /// a peer may send only what the Child SA's traffic selectors allow. `None` (manual SAs,
    /// outbound SAs): no such check.
    pub pair: Option<SlotId>,
}

/// Words that do not decode into a record: the region was corrupted or written by something
/// else. Only a foreign writer can cause it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorruptRecord;

const STATE_INSTALLED: u64 = 1;
/// Word 18: the pair's slot in the low half, this bit when there is one. A record written
/// before the word had a meaning holds zero there: no pair, the behaviour it was written for.
const PAIR_PRESENT: u64 = 1 << 32;

mod flag {
    pub const TRANSPORT: u64 = 1 << 0;
    pub const ESN: u64 = 1 << 1;
    pub const UDP_ENCAP: u64 = 1 << 2;
    pub const IPV6: u64 = 1 << 3;
    pub const DF_SET: u64 = 1 << 4;
    pub const DF_CLEAR: u64 = 1 << 5;
    pub const TFC: u64 = 1 << 6;
}

fn suite_code(suite: CipherSuite) -> u64 {
    match suite {
        CipherSuite::Aes128Gcm16 => 1,
        CipherSuite::Aes256Gcm16 => 2,
        CipherSuite::ChaCha20Poly1305 => 3,
    }
}

fn suite_from_code(code: u64) -> Option<CipherSuite> {
    match code {
        1 => Some(CipherSuite::Aes128Gcm16),
        2 => Some(CipherSuite::Aes256Gcm16),
        3 => Some(CipherSuite::ChaCha20Poly1305),
        _ => None,
    }
}

fn address_words(bytes: [u8; 16]) -> [u64; 2] {
    let (high, low) = bytes.split_at(8);
    [
        u64::from_be_bytes(high.try_into().unwrap_or_default()),
        u64::from_be_bytes(low.try_into().unwrap_or_default()),
    ]
}

fn address_bytes(words: &[u64]) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&words[0].to_be_bytes());
    bytes[8..].copy_from_slice(&words[1].to_be_bytes());
    bytes
}

impl SaRecord {
    /// The slot words of this record. The caller zeroizes them once written.
    pub(crate) fn encode(&self) -> [u64; CONFIG_WORDS] {
        let p = &self.params;
        let mut words = [0u64; CONFIG_WORDS];
        let mut flags = 0;
        if p.mode == Mode::Transport {
            flags |= flag::TRANSPORT;
        }
        if p.esn {
            flags |= flag::ESN;
        }
        if p.udp_encap.is_some() {
            flags |= flag::UDP_ENCAP;
        }
        match p.df {
            DfPolicy::Copy => {}
            DfPolicy::Set => flags |= flag::DF_SET,
            DfPolicy::Clear => flags |= flag::DF_CLEAR,
        }
        if p.tfc_pad_to.is_some() {
            flags |= flag::TFC;
        }
        let (local, remote) = match p.endpoints {
            Endpoints::V4 { local, remote } => (
                local.to_ipv6_mapped().octets(),
                remote.to_ipv6_mapped().octets(),
            ),
            Endpoints::V6 { local, remote } => {
                flags |= flag::IPV6;
                (local.octets(), remote.octets())
            }
        };
        let direction = match self.direction {
            Direction::Inbound => 0,
            Direction::Outbound => 1,
        };
        words[0] = STATE_INSTALLED
            | direction << 8
            | suite_code(p.suite) << 16
            | flags << 24
            | u64::from(p.spi) << 32;
        words[1] = u64::from(p.replay_window)
            | u64::from(p.outer_ttl) << 32
            | u64::from(p.tfc_pad_to.unwrap_or(0)) << 40;
        let ports = p.udp_encap.unwrap_or(UdpEncap {
            local_port: 0,
            remote_port: 0,
        });
        words[2] = u64::from(ports.local_port)
            | u64::from(ports.remote_port) << 16
            | u64::from(self.owner_worker) << 32
            | u64::from(self.keymat.len) << 48;
        words[3..5].copy_from_slice(&address_words(local));
        words[5..7].copy_from_slice(&address_words(remote));
        for (word, chunk) in words[7..12].iter_mut().zip(self.keymat.bytes.chunks(8)) {
            let mut bytes = [0u8; 8];
            bytes[..chunk.len()].copy_from_slice(chunk);
            *word = u64::from_be_bytes(bytes);
            bytes.zeroize();
        }
        let l = &self.lifetimes;
        words[12] = l.soft_bytes;
        words[13] = l.hard_bytes;
        words[14] = l.soft_packets;
        words[15] = l.hard_packets;
        words[16] = u64::from(l.soft_seconds) | u64::from(l.hard_seconds) << 32;
        words[17] = self.installed_at;
        words[18] = self.pair.map_or(0, |slot| PAIR_PRESENT | u64::from(slot.0));
        words
    }

    /// The record in `words`, or `Ok(None)` for a free slot.
    pub(crate) fn decode(words: &[u64; CONFIG_WORDS]) -> Result<Option<Self>, CorruptRecord> {
        let w0 = words[0];
        match w0 & 0xFF {
            0 => return Ok(None),
            STATE_INSTALLED => {}
            _ => return Err(CorruptRecord),
        }
        let direction = match (w0 >> 8) & 0xFF {
            0 => Direction::Inbound,
            1 => Direction::Outbound,
            _ => return Err(CorruptRecord),
        };
        let suite = suite_from_code((w0 >> 16) & 0xFF).ok_or(CorruptRecord)?;
        let flags = (w0 >> 24) & 0xFF;
        let local = address_bytes(&words[3..5]);
        let remote = address_bytes(&words[5..7]);
        let endpoints = if flags & flag::IPV6 != 0 {
            Endpoints::V6 {
                local: Ipv6Addr::from(local),
                remote: Ipv6Addr::from(remote),
            }
        } else {
            let v4 = |bytes: [u8; 16]| Ipv6Addr::from(bytes).to_ipv4_mapped().ok_or(CorruptRecord);
            Endpoints::V4 {
                local: v4(local)?,
                remote: v4(remote)?,
            }
        };
        let df = match (flags & flag::DF_SET != 0, flags & flag::DF_CLEAR != 0) {
            (false, false) => DfPolicy::Copy,
            (true, false) => DfPolicy::Set,
            (false, true) => DfPolicy::Clear,
            (true, true) => return Err(CorruptRecord),
        };
        let keymat_len = ((words[2] >> 48) & 0xFF) as usize;
        if keymat_len != suite.keymat_len() {
            return Err(CorruptRecord);
        }
        let mut keymat = Keymat {
            bytes: [0; MAX_KEYMAT_LEN],
            len: keymat_len as u8,
        };
        for (chunk, word) in keymat.bytes.chunks_mut(8).zip(&words[7..12]) {
            let bytes = word.to_be_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let params = SaParams {
            spi: (w0 >> 32) as u32,
            suite,
            mode: if flags & flag::TRANSPORT != 0 {
                Mode::Transport
            } else {
                Mode::Tunnel
            },
            endpoints,
            udp_encap: (flags & flag::UDP_ENCAP != 0).then_some(UdpEncap {
                local_port: words[2] as u16,
                remote_port: (words[2] >> 16) as u16,
            }),
            esn: flags & flag::ESN != 0,
            replay_window: words[1] as u32,
            df,
            outer_ttl: (words[1] >> 32) as u8,
            tfc_pad_to: (flags & flag::TFC != 0).then_some((words[1] >> 40) as u16),
        };
        let pair = match words[18] >> 32 {
            0 if words[18] == 0 => None,
            1 => Some(SlotId(words[18] as u32)),
            _ => return Err(CorruptRecord),
        };
        Ok(Some(Self {
            direction,
            params,
            keymat,
            lifetimes: Lifetimes {
                soft_bytes: words[12],
                hard_bytes: words[13],
                soft_packets: words[14],
                hard_packets: words[15],
                soft_seconds: words[16] as u32,
                hard_seconds: (words[16] >> 32) as u32,
            },
            owner_worker: (words[2] >> 32) as u16,
            installed_at: words[17],
            pair,
        }))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    pub(crate) fn sample(spi: u32, direction: Direction) -> SaRecord {
        let suite = CipherSuite::Aes256Gcm16;
        let keymat: Vec<u8> = (0..suite.keymat_len() as u8)
            .map(|b| b ^ spi as u8)
            .collect();
        SaRecord {
            direction,
            params: SaParams {
                esn: true,
                udp_encap: Some(UdpEncap {
                    local_port: 4500,
                    remote_port: 61000,
                }),
                df: DfPolicy::Clear,
                tfc_pad_to: Some(900),
                ..SaParams::tunnel(
                    spi,
                    suite,
                    Endpoints::V4 {
                        local: Ipv4Addr::new(198, 51, 100, 1),
                        remote: Ipv4Addr::new(198, 51, 100, 2),
                    },
                )
            },
            keymat: Keymat::new(&keymat).unwrap(),
            lifetimes: Lifetimes {
                soft_bytes: 1 << 30,
                hard_bytes: 1 << 31,
                soft_packets: 1000,
                hard_packets: 2000,
                soft_seconds: 3300,
                hard_seconds: 3600,
            },
            owner_worker: 1,
            installed_at: 1_795_000_000,
            pair: None,
        }
    }

    #[test]
    fn records_round_trip_through_words() {
        let mut record = sample(0xABCD_0001, Direction::Inbound);
        assert_eq!(SaRecord::decode(&record.encode()), Ok(Some(record.clone())));
        for pair in [SlotId(0), SlotId(7), SlotId(super::super::MAX_CAPACITY - 1)] {
            record.pair = Some(pair);
            assert_eq!(SaRecord::decode(&record.encode()), Ok(Some(record.clone())));
        }
        record.pair = None;
        for owner in [0, 2, 0x7FFF, ANY_WORKER - 1, ANY_WORKER] {
            record.owner_worker = owner;
            let words = record.encode();
            assert_eq!((words[2] >> 32) as u16, owner, "{owner:#x}");
            assert_eq!(SaRecord::decode(&words), Ok(Some(record.clone())));
        }
        record.owner_worker = 1;
        record.params.endpoints = Endpoints::V6 {
            local: "2001:db8::1".parse().unwrap(),
            remote: "2001:db8::2".parse().unwrap(),
        };
        record.params.mode = Mode::Transport;
        record.params.udp_encap = None;
        record.params.tfc_pad_to = None;
        record.params.suite = CipherSuite::Aes128Gcm16;
        record.keymat = Keymat::new(&[7; 20]).unwrap();
        record.direction = Direction::Outbound;
        assert_eq!(SaRecord::decode(&record.encode()), Ok(Some(record)));
    }

    #[test]
    fn free_and_corrupt_words() {
        assert_eq!(SaRecord::decode(&[0; CONFIG_WORDS]), Ok(None));
        let mut words = sample(1, Direction::Inbound).encode();
        words[0] = (words[0] & !(0xFF << 16)) | 9 << 16;
        assert_eq!(SaRecord::decode(&words), Err(CorruptRecord));
        let mut words = sample(1, Direction::Inbound).encode();
        words[0] |= 7;
        assert_eq!(SaRecord::decode(&words), Err(CorruptRecord));
        // A pair word with other high bits, or a slot without the presence bit.
        for pair_word in [2 << 32, 3 << 32 | 5, 5] {
            let mut words = sample(1, Direction::Inbound).encode();
            words[18] = pair_word;
            assert_eq!(
                SaRecord::decode(&words),
                Err(CorruptRecord),
                "{pair_word:#x}"
            );
        }
    }

    #[test]
    fn keymat_is_not_printed() {
        let record = sample(5, Direction::Outbound);
        let printed = format!("{record:?}");
        assert!(printed.contains("Keymat(36 bytes)"));
        assert!(!printed.contains("bytes: ["));
    }
}
