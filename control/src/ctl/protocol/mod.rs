//! What goes over the control socket, and how it is framed.
//!
//! A request line is `{"version":1,"request":{...}}`, a response line
//! `{"version":1,"response":{"kind":...,"data":...}}`, each ended by `\n`. Requests are at most
//! [`MAX_REQUEST_LINE`] bytes, responses at most [`MAX_RESPONSE_LINE`]; beyond that the reader
//! stops and reports it rather than buffering without bound.
//!
//! [`VERSION`] changes whenever a change would make one side misread the other (a field renamed
//! or retyped, a variant removed); both sides refuse a line of another version with a message
//! that names both versions.

mod hex;
mod info;

use serde::{Deserialize, Serialize};

pub use info::{
    Auth, ChildSaInfo, ChildSaState, ConnChildInfo, ConnInfo, CountersInfo, IkeSaInfo, IkeSaState,
    Mode, Role, StartAction, StatusInfo,
};

/// The control protocol version this build speaks.
pub const VERSION: u32 = 1;

/// The longest request line accepted, `\n` excluded (the longest real request is a few hundred
/// bytes).
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// The longest response line accepted, `\n` excluded. 12,000 IKE SAs with a Child SA each take
/// about 10 MiB.
pub const MAX_RESPONSE_LINE: usize = 64 * 1024 * 1024;

/// A command from `xipsecctl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    /// The daemon's state in a few numbers: answered with [`Response::Status`].
    Status,
    /// The configured connections: answered with [`Response::Conns`].
    ListConns,
    /// Every IKE SA with its Child SAs: answered with [`Response::Sas`].
    ListSas,
    /// Start the connection `name` (its IKE SA and the Child SAs configured with it).
    Initiate {
        /// The connection's `name`.
        name: String,
    },
    /// Delete IKE SAs (and their Child SAs): every one of a connection, or one by its id. How
    /// `target` is read: [`Target::resolve`].
    Terminate {
        /// A connection name, or an IKE SA id (`7` or `#7`).
        target: String,
    },
    /// Read the configuration file again and apply it.
    Reload,
    /// Every counter: answered with [`Response::Counters`].
    Counters,
    /// Rekey now (make-before-break): the IKE SAs `target` names ([`Target::resolve`]), or
    /// with `child` their Child SAs.
    Rekey {
        /// A connection name, or an IKE SA id (`7` or `#7`).
        target: String,
        /// Rekey the Child SAs instead of the IKE SA.
        #[serde(default)]
        child: bool,
    },
}

/// The daemon's answer to one [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "kebab-case")]
pub enum Response {
    /// Done (initiate, terminate, reload): what happened, for a person to read.
    Ok {
        /// E.g. "initiating site-b (IKE SA #12)".
        message: String,
    },
    /// The request failed or was not understood; `xipsecctl` exits with status 1.
    Error {
        /// Why, for a person to read.
        message: String,
    },
    /// The answer to [`Request::Status`].
    Status(StatusInfo),
    /// The answer to [`Request::ListConns`], in configuration order.
    Conns(Vec<ConnInfo>),
    /// The answer to [`Request::ListSas`].
    Sas(Vec<IkeSaInfo>),
    /// The answer to [`Request::Counters`].
    Counters(CountersInfo),
}

impl Response {
    /// A [`Response::Ok`].
    pub fn ok(message: impl Into<String>) -> Response {
        Response::Ok {
            message: message.into(),
        }
    }

    /// A [`Response::Error`].
    pub fn error(message: impl Into<String>) -> Response {
        Response::Error {
            message: message.into(),
        }
    }
}

/// What a [`Request::Terminate`] target names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// Every IKE SA of this connection.
    Connection(&'a str),
    /// The IKE SA with this id ([`IkeSaInfo::id`]).
    IkeSa(u64),
}

impl<'a> Target<'a> {
    /// Reads a terminate target: `#7` is always IKE SA 7; otherwise a name for which
    /// `is_connection` is true is that connection (names may be all digits); otherwise a
    /// decimal number is an IKE SA id. `None`: neither (answer with an error naming `target`).
    pub fn resolve(target: &'a str, is_connection: impl FnOnce(&str) -> bool) -> Option<Self> {
        if let Some(id) = target.strip_prefix('#') {
            return parse_id(id).map(Target::IkeSa);
        }
        if is_connection(target) {
            return Some(Target::Connection(target));
        }
        parse_id(target).map(Target::IkeSa)
    }
}

fn parse_id(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Why a line could not be read as a request or response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// The line is longer than `limit` bytes.
    TooLong {
        /// The limit that was passed.
        limit: usize,
    },
    /// The line is not a request (response) of this protocol version.
    Malformed {
        /// What the JSON decoder said.
        detail: String,
    },
    /// The other side speaks another protocol version.
    Version {
        /// The version of the line.
        theirs: u32,
    },
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolError::TooLong { limit } => {
                write!(f, "line longer than the limit of {limit} bytes")
            }
            ProtocolError::Malformed { detail } => write!(f, "malformed line: {detail}"),
            ProtocolError::Version { theirs } => write!(
                f,
                "control protocol version {theirs} received, this build speaks version {VERSION} \
                 (use xipsecctl and xipsecd of the same release)"
            ),
        }
    }
}

impl std::error::Error for ProtocolError {}

#[derive(Serialize)]
struct RequestOut<'a> {
    version: u32,
    request: &'a Request,
}

#[derive(Deserialize)]
struct RequestIn {
    version: u32,
    request: Request,
}

#[derive(Serialize)]
struct ResponseOut<'a> {
    version: u32,
    response: &'a Response,
}

#[derive(Deserialize)]
struct ResponseIn {
    version: u32,
    response: Response,
}

/// Just the version of a line that did not decode, to tell a version mismatch from garbage.
#[derive(Deserialize)]
struct VersionProbe {
    version: u32,
}

/// The request line, `\n` included.
pub fn encode_request(request: &Request) -> Vec<u8> {
    encode(&RequestOut {
        version: VERSION,
        request,
    })
}

/// The response line, `\n` included. A response that would exceed [`MAX_RESPONSE_LINE`] is
/// replaced by a [`Response::Error`] that says so.
pub fn encode_response(response: &Response) -> Vec<u8> {
    let line = encode(&ResponseOut {
        version: VERSION,
        response,
    });
    if line.len() - 1 <= MAX_RESPONSE_LINE {
        return line;
    }
    encode(&ResponseOut {
        version: VERSION,
        response: &Response::error(format!(
            "the answer is {} bytes, over the control protocol's limit of {MAX_RESPONSE_LINE}",
            line.len() - 1
        )),
    })
}

fn encode(value: &impl Serialize) -> Vec<u8> {
    let mut line = Vec::with_capacity(256);
    // Serializing these types into a Vec cannot fail: every map key is a string and no
    // Serialize impl here returns an error.
    if serde_json::to_writer(&mut line, value).is_err() {
        line = format!(
            r#"{{"version":{VERSION},"response":{{"kind":"error","data":{{"message":"xipsecd could not serialize its answer"}}}}}}"#
        )
        .into_bytes();
    }
    line.push(b'\n');
    line
}

/// Reads a request line (with or without its `\n`).
pub fn decode_request(line: &[u8]) -> Result<Request, ProtocolError> {
    check_len(line, MAX_REQUEST_LINE)?;
    match serde_json::from_slice::<RequestIn>(line) {
        Ok(r) if r.version == VERSION => Ok(r.request),
        Ok(r) => Err(ProtocolError::Version { theirs: r.version }),
        Err(e) => Err(mismatch_or(line, e)),
    }
}

/// Reads a response line (with or without its `\n`).
pub fn decode_response(line: &[u8]) -> Result<Response, ProtocolError> {
    check_len(line, MAX_RESPONSE_LINE)?;
    match serde_json::from_slice::<ResponseIn>(line) {
        Ok(r) if r.version == VERSION => Ok(r.response),
        Ok(r) => Err(ProtocolError::Version { theirs: r.version }),
        Err(e) => Err(mismatch_or(line, e)),
    }
}

fn check_len(line: &[u8], limit: usize) -> Result<(), ProtocolError> {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    if body.len() > limit {
        return Err(ProtocolError::TooLong { limit });
    }
    Ok(())
}

fn mismatch_or(line: &[u8], e: serde_json::Error) -> ProtocolError {
    match serde_json::from_slice::<VersionProbe>(line) {
        Ok(p) if p.version != VERSION => ProtocolError::Version { theirs: p.version },
        _ => ProtocolError::Malformed {
            detail: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape() {
        let line = encode_request(&Request::Initiate {
            name: "site-b".into(),
        });
        assert_eq!(
            line,
            b"{\"version\":1,\"request\":{\"command\":\"initiate\",\"name\":\"site-b\"}}\n"
        );
        let line = encode_response(&Response::ok("done"));
        assert_eq!(
            line,
            b"{\"version\":1,\"response\":{\"kind\":\"ok\",\"data\":{\"message\":\"done\"}}}\n"
        );
        assert_eq!(
            decode_request(br#"{"version":1,"request":{"command":"list-sas"}}"#),
            Ok(Request::ListSas)
        );
    }

    #[test]
    fn version_and_garbage() {
        assert_eq!(
            decode_request(br#"{"version":2,"request":{"command":"list-sas"}}"#),
            Err(ProtocolError::Version { theirs: 2 })
        );
        assert_eq!(
            decode_request(br#"{"version":2,"request":{"command":"frobnicate"}}"#),
            Err(ProtocolError::Version { theirs: 2 })
        );
        assert!(matches!(
            decode_request(br#"{"version":1,"request":{"command":"frobnicate"}}"#),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            decode_request(b"\xff\xfe"),
            Err(ProtocolError::Malformed { .. })
        ));
        let long = vec![b' '; MAX_REQUEST_LINE + 1];
        assert_eq!(
            decode_request(&long),
            Err(ProtocolError::TooLong {
                limit: MAX_REQUEST_LINE
            })
        );
    }

    #[test]
    fn terminate_targets() {
        let none = |_: &str| false;
        let named = |n: &str| n == "42" || n == "site-b";
        assert_eq!(Target::resolve("7", none), Some(Target::IkeSa(7)));
        assert_eq!(Target::resolve("#7", named), Some(Target::IkeSa(7)));
        assert_eq!(Target::resolve("42", named), Some(Target::Connection("42")));
        assert_eq!(Target::resolve("#42", named), Some(Target::IkeSa(42)));
        assert_eq!(
            Target::resolve("site-b", named),
            Some(Target::Connection("site-b"))
        );
        assert_eq!(Target::resolve("site-c", named), None);
        assert_eq!(Target::resolve("#", named), None);
        assert_eq!(Target::resolve("+7", none), None);
        assert_eq!(Target::resolve("99999999999999999999", none), None);
    }
}
