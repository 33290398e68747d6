//! Inner packet sizes: fixed sizes and IMIX, parsed from the command line.
//!
//! A size is the inner IPv4 packet's total length (IP header, UDP header, payload): what a host
//! behind the gateway sends and what the tunnel carries inside ESP.

use std::fmt;

/// IPv4 header (no options) plus UDP header: what every inner packet spends before its payload.
pub const IP_UDP_HEADERS: usize = 20 + 8;

/// The smallest inner packet: the headers, the probe payload ([`crate::payload::LEN`]), rounded
/// up to the customary 64.
pub const MIN: u16 = 64;

/// The largest inner packet: it fits a 1500-byte MTU after ESP tunnel mode with AES-GCM, even in
/// UDP, so no run measures fragmentation by accident.
pub const MAX: u16 = 1400;

/// IMIX sizes and how many of each in one cycle: 7 × 64, 4 × 570, 1 × 1400 (the classic
/// 7:4:1 mix, whose 1518-byte frame is capped at [`MAX`]).
pub const IMIX_CYCLE: [u16; 12] = [64, 570, 64, 64, 570, 64, 1400, 64, 570, 64, 570, 64];

/// One size of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PacketSize {
    /// Every packet this many bytes long.
    Fixed(u16),
    /// Sizes from [`IMIX_CYCLE`], in that order, again and again.
    Imix,
}

impl PacketSize {
    /// The length of packet number `seq`.
    #[inline]
    pub fn len_of(self, seq: u64) -> u16 {
        match self {
            PacketSize::Fixed(len) => len,
            PacketSize::Imix => IMIX_CYCLE[(seq % IMIX_CYCLE.len() as u64) as usize],
        }
    }

    /// The mean packet length, in bytes.
    pub fn mean(self) -> f64 {
        match self {
            PacketSize::Fixed(len) => f64::from(len),
            PacketSize::Imix => {
                let total: u32 = IMIX_CYCLE.iter().map(|&l| u32::from(l)).sum();
                f64::from(total) / IMIX_CYCLE.len() as f64
            }
        }
    }

    /// The largest packet it produces.
    pub fn max(self) -> u16 {
        match self {
            PacketSize::Fixed(len) => len,
            PacketSize::Imix => MAX,
        }
    }

    /// Its name in tables and JSON: `"64"`, `"imix"`.
    pub fn label(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for PacketSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketSize::Fixed(len) => write!(f, "{len}"),
            PacketSize::Imix => f.write_str("imix"),
        }
    }
}

/// A size the command line gave that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeError(pub String);

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SizeError {}

/// Parses `"64"`, `"1400"` or `"imix"` (any case).
pub fn parse_size(text: &str) -> Result<PacketSize, SizeError> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("imix") {
        return Ok(PacketSize::Imix);
    }
    let len: u16 = text.parse().map_err(|_| {
        SizeError(format!(
            "packet size '{text}' is neither a number of bytes nor 'imix'"
        ))
    })?;
    if !(MIN..=MAX).contains(&len) {
        return Err(SizeError(format!(
            "packet size {len} is outside {MIN}..={MAX} bytes (the inner IPv4 packet)"
        )));
    }
    Ok(PacketSize::Fixed(len))
}

/// Parses a comma-separated list, `"64,128,512,1400,imix"`; duplicates are dropped, the order
/// kept.
pub fn parse_sizes(text: &str) -> Result<Vec<PacketSize>, SizeError> {
    let mut sizes = Vec::new();
    for part in text.split(',') {
        if part.trim().is_empty() {
            return Err(SizeError(format!("empty packet size in '{text}'")));
        }
        let size = parse_size(part)?;
        if !sizes.contains(&size) {
            sizes.push(size);
        }
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_imix_in_order_without_duplicates() {
        assert_eq!(
            parse_sizes("64, 1400,IMIX,64").unwrap(),
            vec![
                PacketSize::Fixed(64),
                PacketSize::Fixed(1400),
                PacketSize::Imix
            ]
        );
    }

    #[test]
    fn refuses_what_cannot_be_sent() {
        for bad in ["63", "1401", "0", "-1", "big", "", "64,,128", "65536"] {
            let err = parse_sizes(bad).unwrap_err();
            assert!(!err.0.is_empty(), "{bad}");
        }
        assert!(parse_size("63").unwrap_err().0.contains("64..=1400"));
    }

    #[test]
    fn imix_is_seven_four_one_with_the_documented_mean() {
        let cycle: Vec<u16> = (0..12).map(|s| PacketSize::Imix.len_of(s)).collect();
        assert_eq!(cycle.iter().filter(|&&l| l == 64).count(), 7);
        assert_eq!(cycle.iter().filter(|&&l| l == 570).count(), 4);
        assert_eq!(cycle.iter().filter(|&&l| l == 1400).count(), 1);
        // (7·64 + 4·570 + 1400) / 12
        assert!((PacketSize::Imix.mean() - 344.0).abs() < 1e-9);
        assert_eq!(PacketSize::Imix.len_of(12), PacketSize::Imix.len_of(0));
        assert_eq!(PacketSize::Fixed(512).len_of(99), 512);
    }
}
