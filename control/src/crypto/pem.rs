//! PEM (RFC 7468): the `-----BEGIN label-----` blocks of a certificate or key file, base64
//! decoded into buffers that are wiped on drop (key files hold secrets). Text outside the
//! blocks is ignored, as OpenSSL does.

use zeroize::Zeroizing;

/// One decoded block.
pub(crate) struct Block {
    pub label: String,
    pub der: Zeroizing<Vec<u8>>,
    /// RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`): an OpenSSL-encrypted key.
    pub encrypted: bool,
}

/// Why a PEM file does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PemError {
    /// A BEGIN without its END (or the wrong END).
    Unterminated,
    /// Not base64 inside a block.
    Base64,
}

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c.wrapping_sub(b'A')),
        b'a'..=b'z' => Some(c.wrapping_sub(b'a').wrapping_add(26)),
        b'0'..=b'9' => Some(c.wrapping_sub(b'0').wrapping_add(52)),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Decodes base64, ignoring whitespace; `=` padding only at the end.
fn base64(text: &[u8]) -> Result<Zeroizing<Vec<u8>>, PemError> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len()));
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut padding = 0usize;
    for &c in text.iter().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            padding = padding.saturating_add(1);
            continue;
        }
        if padding > 0 {
            return Err(PemError::Base64);
        }
        let v = sextet(c).ok_or(PemError::Base64)?;
        acc = (acc << 6 | u32::from(v)) & 0xff_ffff;
        bits = bits.saturating_add(6);
        if bits >= 8 {
            bits = bits.saturating_sub(8);
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    if padding > 2 || bits >= 6 {
        return Err(PemError::Base64);
    }
    Ok(out)
}

/// Every block of `text`, in order.
pub(crate) fn blocks(text: &[u8]) -> Result<Vec<Block>, PemError> {
    let mut out = Vec::new();
    let mut lines = text.split(|&b| b == b'\n').map(|l| l.trim_ascii());
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix(b"-----BEGIN ")
            .and_then(|l| l.strip_suffix(b"-----"))
        else {
            continue;
        };
        let label = String::from_utf8_lossy(label).into_owned();
        let end = format!("-----END {label}-----");
        let mut body = Zeroizing::new(Vec::new());
        let mut encrypted = false;
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end.as_bytes() {
                closed = true;
                break;
            }
            if line.contains(&b':') {
                encrypted |= line.windows(9).any(|w| w == b"ENCRYPTED");
                continue;
            }
            body.extend_from_slice(line);
        }
        if !closed {
            return Err(PemError::Unterminated);
        }
        let der = if encrypted {
            Zeroizing::new(Vec::new())
        } else {
            base64(&body)?
        };
        out.push(Block {
            label,
            der,
            encrypted,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_blocks() {
        let text = b"junk\n-----BEGIN X-----\nTWFu\r\nTWE=\n-----END X-----\n\n-----BEGIN Y-----\nTQ==\n-----END Y-----\ntrailing";
        let b = blocks(text).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].label.as_str(), &b[0].der[..]), ("X", &b"ManMa"[..]));
        assert_eq!((b[1].label.as_str(), &b[1].der[..]), ("Y", &b"M"[..]));
        assert!(blocks(b"-----BEGIN X-----\nTWFu\n").is_err());
        assert!(blocks(b"-----BEGIN X-----\nTW!u\n-----END X-----").is_err());
        assert!(blocks(b"-----BEGIN X-----\nTQ==TQ==\n-----END X-----").is_err());
        let enc = b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(blocks(enc).unwrap()[0].encrypted);
    }
}
