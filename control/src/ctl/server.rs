//! The daemon's side of the control socket: bind it safely, then answer each connection in its
//! own task with a [`Handler`].
//!
//! ```ignore
//! let listener = ctl::server::bind(Path::new(ctl::DEFAULT_SOCKET))?;
//! let (handler, mut requests) = ctl::server::channel(16);
//! tokio::spawn(ctl::server::serve(listener, Arc::new(handler)));
//! // in the daemon's event loop:
//! while let Some(pending) = requests.recv().await {
//!     let response = daemon.answer(pending.request());
//!     pending.reply(response);
//! }
//! ```

use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::protocol::{self, ProtocolError, Request, Response, MAX_REQUEST_LINE};

/// Answers control requests. Implement it with `async fn handle(&self, request: Request) ->
/// Response`; the future must be `Send` because each connection runs in its own task.
pub trait Handler: Send + Sync + 'static {
    /// The answer to `request`. A request the daemon cannot satisfy is answered with
    /// [`Response::Error`], never by panicking.
    fn handle(&self, request: Request) -> impl Future<Output = Response> + Send;
}

/// Limits of [`serve_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// Connections served at once; one more is answered with an error and closed.
    pub max_connections: usize,
    /// How long a connection may take to send a request line (and stay idle between requests).
    pub idle_timeout: Duration,
    /// How long the handler may take to answer.
    pub handler_timeout: Duration,
    /// How long the client may take to read the answer.
    pub write_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_connections: 32,
            idle_timeout: Duration::from_secs(10),
            handler_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
        }
    }
}

fn context(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("control socket {}: {what}: {e}", path.display()),
    )
}

/// Binds the control socket at `path`, readable and writable by its owner only (0600).
///
/// Creates the parent directory (0755) if it is missing. If `path` exists: a socket a daemon
/// answers on is refused ([`io::ErrorKind::AddrInUse`]), a dead one is replaced, anything that
/// is not a socket is refused ([`io::ErrorKind::AlreadyExists`]). The socket is bound under a
/// temporary name, made 0600, then renamed into place, so it is never reachable with looser
/// permissions. Must be called inside a tokio runtime. The daemon should remove `path` when it
/// exits (a leftover is replaced at the next start anyway).
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("control socket {}: not a file path", path.display()),
        )
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&parent)
            .map_err(|e| context(path, "cannot create its directory", e))?;
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| context(path, "cannot chmod its directory", e))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "control socket {}: exists and is not a socket; refusing to replace it",
                    path.display()
                ),
            ))
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "control socket {}: another xipsecd is answering on it",
                        path.display()
                    ),
                ))
            }
            // Nobody listens: a leftover of a daemon that did not clean up. Replaced below.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(context(path, "cannot check whether it is in use", e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(context(path, "cannot stat it", e)),
    }

    // Short (at most 12 bytes, like "xipsecd.sock") so that it fits wherever `path` fits.
    let tmp = parent.join(format!(".{}.tmp", std::process::id()));
    if let Ok(meta) = std::fs::symlink_metadata(&tmp) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "control socket {}: {} exists and is not a socket",
                    path.display(),
                    tmp.display()
                ),
            ));
        }
        std::fs::remove_file(&tmp).map_err(|e| context(&tmp, "cannot remove it", e))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(&tmp)
        .map_err(|e| context(path, &format!("cannot bind {}", tmp.display()), e))?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| context(path, "cannot chmod it to 0600", e))
        .and_then(|()| {
            std::fs::rename(&tmp, path).map_err(|e| {
                context(
                    path,
                    &format!("cannot rename {} to {:?}", tmp.display(), file_name),
                    e,
                )
            })
        });
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    listener
        .set_nonblocking(true)
        .map_err(|e| context(path, "cannot make it non-blocking", e))?;
    UnixListener::from_std(listener).map_err(|e| context(path, "cannot register it", e))
}

/// Serves `listener` with the default [`ServeOptions`]. Runs until dropped; dropping it also
/// ends every connection it serves.
pub async fn serve<H: Handler>(listener: UnixListener, handler: Arc<H>) {
    serve_with(listener, handler, ServeOptions::default()).await
}

/// Serves `listener`: each connection in its own task, at most `options.max_connections` at a
/// time. Runs until dropped; dropping it also ends every connection it serves.
pub async fn serve_with<H: Handler>(
    listener: UnixListener,
    handler: Arc<H>,
    options: ServeOptions,
) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    while let Some(done) = tasks.try_join_next() {
                        report(done);
                    }
                    if tasks.len() >= options.max_connections {
                        reject_busy(&stream, options.max_connections);
                        continue;
                    }
                    tasks.spawn(connection(stream, Arc::clone(&handler), options));
                }
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning on accept.
                    tracing::warn!("control socket: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(done) = tasks.join_next(), if !tasks.is_empty() => report(done),
        }
    }
}

fn report(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            tracing::error!("control socket: a request handler panicked: {e}");
        }
    }
}

fn reject_busy(stream: &UnixStream, max: usize) {
    let line = protocol::encode_response(&Response::error(format!(
        "xipsecd is busy: {max} control connections are open; try again"
    )));
    // A new socket's send buffer is empty: this short line goes out at once or not at all, and
    // the accept loop never waits on a client.
    let _ = stream.try_write(&line);
    tracing::warn!("control socket: connection refused, {max} already open");
}

/// What reading one request line gave.
enum LineRead {
    /// A line (its `\n`, if any, removed); `Eof` comes next if it had none.
    Line,
    /// The peer closed the connection.
    Eof,
    /// Longer than the limit; the rest of it was read and discarded.
    TooLong,
}

async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    limit: usize,
) -> io::Result<LineRead> {
    line.clear();
    let n = (&mut *reader)
        .take(limit as u64 + 1)
        .read_until(b'\n', line)
        .await?;
    if n == 0 {
        return Ok(LineRead::Eof);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(LineRead::Line);
    }
    if line.len() <= limit {
        // The peer closed after a line without `\n` (e.g. `printf ... | socat`): take it.
        return Ok(LineRead::Line);
    }
    // Skip to the end of the oversized line so that the client, which writes the whole line
    // before it reads, gets the error and the connection stays usable.
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            break;
        }
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            reader.consume(i + 1);
            break;
        }
        let len = buf.len();
        reader.consume(len);
    }
    Ok(LineRead::TooLong)
}

async fn connection<H: Handler>(stream: UnixStream, handler: Arc<H>, options: ServeOptions) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut line = Vec::with_capacity(256);
    loop {
        let read = timeout(
            options.idle_timeout,
            read_line(&mut reader, &mut line, MAX_REQUEST_LINE),
        )
        .await;
        let response = match read {
            Err(_) | Ok(Err(_)) | Ok(Ok(LineRead::Eof)) => return,
            Ok(Ok(LineRead::TooLong)) => {
                tracing::warn!("control socket: request over {MAX_REQUEST_LINE} bytes");
                Response::error(format!(
                    "request refused: longer than the limit of {MAX_REQUEST_LINE} bytes"
                ))
            }
            Ok(Ok(LineRead::Line)) => match protocol::decode_request(&line) {
                Ok(request) => {
                    match timeout(options.handler_timeout, handler.handle(request)).await {
                        Ok(response) => response,
                        Err(_) => Response::error(format!(
                            "xipsecd did not answer within {} s",
                            options.handler_timeout.as_secs()
                        )),
                    }
                }
                Err(e) => {
                    tracing::warn!("control socket: bad request: {e}");
                    Response::error(bad_request(&e))
                }
            },
        };
        let out = protocol::encode_response(&response);
        match timeout(options.write_timeout, writer.write_all(&out)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

fn bad_request(e: &ProtocolError) -> String {
    match e {
        ProtocolError::Malformed { detail } => format!("malformed request: {detail}"),
        other => format!("request refused: {other}"),
    }
}

/// A request waiting for the daemon's answer, from a [`ChannelHandler`].
#[derive(Debug)]
pub struct Pending {
    request: Request,
    reply: oneshot::Sender<Response>,
}

impl Pending {
    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Answers it (if the client is gone, the answer is dropped).
    pub fn reply(self, response: Response) {
        let _ = self.reply.send(response);
    }
}

/// A [`Handler`] that passes each request to the daemon's event loop over a channel and waits
/// for the answer: the loop owns every SA and answers between packets, so nothing is shared.
#[derive(Clone, Debug)]
pub struct ChannelHandler {
    requests: mpsc::Sender<Pending>,
}

/// A [`ChannelHandler`] and the receiver the daemon's event loop takes [`Pending`] requests
/// from; at most `capacity` wait unanswered before clients wait too.
pub fn channel(capacity: usize) -> (ChannelHandler, mpsc::Receiver<Pending>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (ChannelHandler { requests: tx }, rx)
}

impl Handler for ChannelHandler {
    async fn handle(&self, request: Request) -> Response {
        let (reply, answer) = oneshot::channel();
        if self
            .requests
            .send(Pending { request, reply })
            .await
            .is_err()
        {
            return Response::error("xipsecd is shutting down");
        }
        answer
            .await
            .unwrap_or_else(|_| Response::error("xipsecd dropped the request without answering"))
    }
}
