//! [`Secret`]: key material from the configuration, and reading secret files.

use core::fmt;
use std::path::Path;

use zeroize::Zeroizing;

/// Key material (a PSK, a manual SA's key and salt). Zeroized on drop; `Debug` prints
/// `<redacted>`; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps bytes (which are moved, not copied).
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(Zeroizing::new(bytes))
    }

    /// The bytes, for the code that keys a PRF or an AEAD with them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Reads a secret file: it must exist, be readable, and not be readable by others (mode
/// `o+r`). A trailing newline is removed. Errors never quote the content.
pub(crate) fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {}", path.display(), e))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o004 != 0 {
            return Err(format!(
                "{}: secret file is world-readable (mode {:04o}); chmod o-r it",
                path.display(),
                mode
            ));
        }
    }
    let mut bytes =
        Zeroizing::new(std::fs::read(path).map_err(|e| format!("{}: {}", path.display(), e))?);
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err(format!("{}: secret file is empty", path.display()));
    }
    Ok(bytes)
}

/// Checks that a (non-secret) file exists and can be opened for reading.
pub(crate) fn check_readable(path: &Path) -> Result<(), String> {
    match std::fs::File::open(path) {
        Ok(f) => match f.metadata() {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(format!("{}: not a regular file", path.display())),
            Err(e) => Err(format!("{}: {}", path.display(), e)),
        },
        Err(e) => Err(format!("{}: {}", path.display(), e)),
    }
}

/// Decodes hex digits (upper or lower case; `:` and whitespace between bytes ignored).
/// The error does not quote the input.
pub(crate) fn decode_hex(text: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let digits: Zeroizing<Vec<u8>> = Zeroizing::new(
        text.iter()
            .copied()
            .filter(|c| !c.is_ascii_whitespace() && *c != b':')
            .collect(),
    );
    if !digits.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    let mut out = Zeroizing::new(Vec::with_capacity(digits.len() / 2));
    for pair in digits.chunks(2) {
        let hi = hex_val(pair[0]).ok_or("not valid hex")?;
        let lo = hex_val(pair[1]).ok_or("not valid hex")?;
        out.push(hi << 4 | lo);
    }
    Ok(out)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted() {
        let s = Secret::new(b"hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(s.expose(), b"hunter2");
    }

    #[test]
    fn hex() {
        assert_eq!(&*decode_hex(b"00ff:A0 1b").unwrap(), &[0, 0xff, 0xa0, 0x1b]);
        assert!(decode_hex(b"abc").is_err());
        assert!(decode_hex(b"zz").is_err());
    }
}
