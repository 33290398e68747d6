//! The blocking client `xipsecctl` uses: connect, send a request line, read one response line
//! within a deadline.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::protocol::{self, ProtocolError, Request, Response, MAX_RESPONSE_LINE};

/// How long [`Client::request`] waits for an answer unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request got no answer. Every message names the socket and says what to check.
#[derive(Debug)]
pub enum CtlError {
    /// The socket could not be connected to.
    Connect {
        /// The socket.
        path: PathBuf,
        /// What `connect` said.
        source: io::Error,
    },
    /// Sending the request failed.
    Send {
        /// The socket.
        path: PathBuf,
        /// What `write` said.
        source: io::Error,
    },
    /// Reading the answer failed.
    Receive {
        /// The socket.
        path: PathBuf,
        /// What `read` said.
        source: io::Error,
    },
    /// No complete answer within the timeout.
    Timeout {
        /// The socket.
        path: PathBuf,
        /// The timeout.
        after: Duration,
    },
    /// The daemon closed the connection before a complete answer.
    Closed {
        /// The socket.
        path: PathBuf,
    },
    /// The answer is not one this build understands.
    Protocol {
        /// The socket.
        path: PathBuf,
        /// What is wrong with it.
        error: ProtocolError,
    },
}

impl std::fmt::Display for CtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CtlError::Connect { path, source } => {
                let path = path.display();
                match source.kind() {
                    io::ErrorKind::NotFound => write!(
                        f,
                        "cannot connect to {path}: is xipsecd running? (the socket does not exist)"
                    ),
                    io::ErrorKind::ConnectionRefused => write!(
                        f,
                        "cannot connect to {path}: is xipsecd running? (nothing listens on the \
                         socket)"
                    ),
                    io::ErrorKind::PermissionDenied => write!(
                        f,
                        "cannot connect to {path}: permission denied (the control socket is \
                         root's only: run xipsecctl as root)"
                    ),
                    _ => write!(f, "cannot connect to {path}: {source}"),
                }
            }
            CtlError::Send { path, source } => write!(
                f,
                "cannot send the request to xipsecd on {}: {source}",
                path.display()
            ),
            CtlError::Receive { path, source } => write!(
                f,
                "lost the connection to xipsecd on {}: {source}",
                path.display()
            ),
            CtlError::Timeout { path, after } => write!(
                f,
                "xipsecd did not answer on {} within {} s",
                path.display(),
                after.as_secs_f64()
            ),
            CtlError::Closed { path } => write!(
                f,
                "xipsecd closed the connection on {} without answering",
                path.display()
            ),
            CtlError::Protocol { path, error } => write!(
                f,
                "cannot read xipsecd's answer on {}: {error}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for CtlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CtlError::Connect { source, .. }
            | CtlError::Send { source, .. }
            | CtlError::Receive { source, .. } => Some(source),
            CtlError::Protocol { error, .. } => Some(error),
            CtlError::Timeout { .. } | CtlError::Closed { .. } => None,
        }
    }
}

/// A connection to `xipsecd`'s control socket.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    stream: UnixStream,
    timeout: Duration,
}

impl Client {
    /// Connects to the control socket at `path`.
    pub fn connect(path: impl AsRef<Path>) -> Result<Client, CtlError> {
        let path = path.as_ref().to_path_buf();
        match UnixStream::connect(&path) {
            Ok(stream) => Ok(Client {
                path,
                stream,
                timeout: DEFAULT_TIMEOUT,
            }),
            Err(source) => Err(CtlError::Connect { path, source }),
        }
    }

    /// How long each [`Client::request`] may take, sending and receiving (default
    /// [`DEFAULT_TIMEOUT`]; zero is taken as one millisecond).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout.max(Duration::from_millis(1));
    }

    /// The socket this client is connected to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends `request` and waits for the answer.
    pub fn request(&mut self, request: &Request) -> Result<Response, CtlError> {
        let deadline = Instant::now() + self.timeout;
        let line = protocol::encode_request(request);
        let answer = match self.send(&line, deadline) {
            Ok(()) => self.receive(deadline)?,
            // A daemon that refuses the connection (too many open) answers and closes before
            // reading: its answer says more than EPIPE does.
            Err(e @ CtlError::Send { .. }) => self.receive(deadline).map_err(|_| e)?,
            Err(e) => return Err(e),
        };
        protocol::decode_response(&answer).map_err(|error| CtlError::Protocol {
            path: self.path.clone(),
            error,
        })
    }

    fn remaining(&self, deadline: Instant) -> Result<Duration, CtlError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out());
        }
        Ok(left)
    }

    fn timed_out(&self) -> CtlError {
        CtlError::Timeout {
            path: self.path.clone(),
            after: self.timeout,
        }
    }

    fn send(&mut self, mut line: &[u8], deadline: Instant) -> Result<(), CtlError> {
        while !line.is_empty() {
            let left = self.remaining(deadline)?;
            let sent = self
                .stream
                .set_write_timeout(Some(left))
                .and_then(|()| self.stream.write(line));
            match sent {
                Ok(0) => return Err(self.closed()),
                Ok(n) => line = &line[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(self.timed_out()),
                Err(source) => {
                    return Err(CtlError::Send {
                        path: self.path.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    fn closed(&self) -> CtlError {
        CtlError::Closed {
            path: self.path.clone(),
        }
    }

    /// Reads up to and including the first `\n`. The daemon sends nothing unasked, so nothing
    /// after the `\n` belongs to a later answer.
    fn receive(&mut self, deadline: Instant) -> Result<Vec<u8>, CtlError> {
        const CHUNK: usize = 64 * 1024;
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
        loop {
            let left = self.remaining(deadline)?;
            let start = buf.len();
            buf.resize(start + CHUNK, 0);
            let read = self
                .stream
                .set_read_timeout(Some(left))
                .and_then(|()| self.stream.read(&mut buf[start..]));
            match read {
                Ok(0) => return Err(self.closed()),
                Ok(n) => {
                    buf.truncate(start + n);
                    if let Some(i) = buf[start..].iter().position(|&b| b == b'\n') {
                        buf.truncate(start + i);
                        return Ok(buf);
                    }
                    if buf.len() > MAX_RESPONSE_LINE {
                        return Err(CtlError::Protocol {
                            path: self.path.clone(),
                            error: ProtocolError::TooLong {
                                limit: MAX_RESPONSE_LINE,
                            },
                        });
                    }
                }
                Err(e) => {
                    buf.truncate(start);
                    match e.kind() {
                        io::ErrorKind::Interrupted => {}
                        _ if is_timeout(&e) => return Err(self.timed_out()),
                        _ => {
                            return Err(CtlError::Receive {
                                path: self.path.clone(),
                                source: e,
                            })
                        }
                    }
                }
            }
        }
    }
}

/// A socket timeout shows as `WouldBlock` (EAGAIN) on Unix, `TimedOut` elsewhere.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
