//! What `xipsecctl` prints: text in the spirit of `swanctl --list-sas` / `--list-conns`, or one
//! JSON document (`--json`). Everything is written straight into the given writer (give it a
//! `BufWriter`): 12,000 SAs are formatted without building a string per SA.

mod conns;
mod sas;
mod status;

use std::io::{self, Write};

use serde::Serialize;

use super::protocol::Response;

pub use conns::conns;
pub use sas::sas;
pub use status::{counters, status};

/// Writes `response` as text. [`Response::Error`] is written like [`Response::Ok`]: its
/// message and a newline (`xipsecctl` sends it to stderr instead).
pub fn text(w: &mut impl Write, response: &Response) -> io::Result<()> {
    match response {
        Response::Ok { message } | Response::Error { message } => writeln!(w, "{message}"),
        Response::Status(s) => status(w, s),
        Response::Conns(c) => conns(w, c),
        Response::Sas(s) => sas(w, s),
        Response::Counters(c) => counters(w, c),
    }
}

#[derive(Serialize)]
struct Message<'a> {
    message: &'a str,
}

#[derive(Serialize)]
struct ErrorMessage<'a> {
    error: &'a str,
}

/// Writes what `response` carries as one JSON document and a newline: the [`StatusInfo`],
/// the array of [`ConnInfo`] or [`IkeSaInfo`], the [`CountersInfo`], `{"message": ...}` for
/// [`Response::Ok`], `{"error": ...}` for [`Response::Error`]. Compact unless `pretty`.
///
/// [`StatusInfo`]: super::protocol::StatusInfo
/// [`ConnInfo`]: super::protocol::ConnInfo
/// [`IkeSaInfo`]: super::protocol::IkeSaInfo
/// [`CountersInfo`]: super::protocol::CountersInfo
pub fn json(w: &mut impl Write, response: &Response, pretty: bool) -> io::Result<()> {
    match response {
        Response::Ok { message } => write_json(w, &Message { message }, pretty),
        Response::Error { message } => write_json(w, &ErrorMessage { error: message }, pretty),
        Response::Status(s) => write_json(w, s, pretty),
        Response::Conns(c) => write_json(w, c, pretty),
        Response::Sas(s) => write_json(w, s, pretty),
        Response::Counters(c) => write_json(w, c, pretty),
    }
}

fn write_json(w: &mut impl Write, value: &impl Serialize, pretty: bool) -> io::Result<()> {
    let written = if pretty {
        serde_json::to_writer_pretty(&mut *w, value)
    } else {
        serde_json::to_writer(&mut *w, value)
    };
    written.map_err(io::Error::from)?;
    w.write_all(b"\n")
}

/// `list` joined by `sep`, written without building a string.
fn join(w: &mut impl Write, list: &[String], sep: &str) -> io::Result<()> {
    for (i, item) in list.iter().enumerate() {
        if i > 0 {
            w.write_all(sep.as_bytes())?;
        }
        w.write_all(item.as_bytes())?;
    }
    Ok(())
}
