//! What can go wrong with the shared SA table, and whose fault it is.

/// Errors of the SA table. `Io` and the header checks are local faults (the file, the machine);
/// `Full` and `DuplicateSpi` are the caller's (configuration or control-plane logic).
#[derive(Debug)]
#[non_exhaustive]
pub enum TableError {
    /// Creating, sizing, locking or mapping the file failed.
    Io(std::io::Error),
    /// The file does not start with the table's magic number.
    NotATable,
    /// The file is a table of another layout version.
    Version(u32),
    /// The file is shorter than its header says, or the header is inconsistent.
    Truncated,
    /// Another process holds the writer's lock: two control planes must not write one table.
    WriterLocked,
    /// Every slot is in use.
    Full,
    /// An inbound SA with this SPI is already installed.
    DuplicateSpi(u32),
    /// A capacity of zero or above [`MAX_CAPACITY`](super::MAX_CAPACITY).
    Capacity(u32),
    /// The slot is not installed (freed, or never used).
    NoSuchSlot(u32),
    /// A slot's words do not decode: the region was written by something else.
    Corrupt(u32),
    /// More policies than the SPD has room for (one per slot).
    TooManyPolicies(usize),
    /// A policy names a slot that holds no outbound SA.
    PolicyWithoutSa(u32),
}

impl std::fmt::Display for TableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TableError::Io(e) => write!(f, "SA table file: {e}"),
            TableError::NotATable => write!(f, "the file is not an xipsec SA table"),
            TableError::Version(v) => write!(f, "SA table layout version {v} is not supported"),
            TableError::Truncated => write!(f, "the SA table file is truncated or inconsistent"),
            TableError::WriterLocked => {
                write!(f, "another control plane is writing this SA table")
            }
            TableError::Full => write!(f, "the SA table is full"),
            TableError::DuplicateSpi(spi) => {
                write!(f, "inbound SPI {spi:#010x} is already installed")
            }
            TableError::Capacity(c) => write!(f, "SA table capacity {c} is out of range"),
            TableError::NoSuchSlot(s) => write!(f, "SA table slot {s} is not installed"),
            TableError::Corrupt(s) => write!(f, "SA table slot {s} does not decode"),
            TableError::TooManyPolicies(n) => write!(f, "{n} policies do not fit the SPD"),
            TableError::PolicyWithoutSa(s) => {
                write!(f, "a policy points at slot {s}, which holds no outbound SA")
            }
        }
    }
}

impl std::error::Error for TableError {}
