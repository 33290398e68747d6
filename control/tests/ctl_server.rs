//! The control socket end to end: a mock handler behind a real socket, the blocking client, and
//! raw lines for what the client never sends.

mod ctl_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener as StdListener, UnixStream};
use std::time::{Duration, Instant};

use ctl_support::{serve_on, Mock, MockDaemon};
use xipsec_control::ctl::client::{Client, CtlError};
use xipsec_control::ctl::protocol::{self, ProtocolError, Request, Response, MAX_REQUEST_LINE};
use xipsec_control::ctl::server::{self, ServeOptions};

fn every_request() -> Vec<(Request, Response)> {
    let m = Mock::new(3);
    vec![
        (Request::Status, Response::Status(m.status.clone())),
        (Request::ListConns, Response::Conns(m.conns.clone())),
        (Request::ListSas, Response::Sas(m.sas.clone())),
        (Request::Counters, Response::Counters(m.counters.clone())),
        (
            Request::Initiate {
                name: "site-b".into(),
            },
            Response::ok("initiating site-b"),
        ),
        (
            Request::Initiate {
                name: "nope".into(),
            },
            Response::error("no connection named 'nope'"),
        ),
        (
            Request::Terminate {
                target: "42".into(),
            },
            Response::ok("terminating every IKE SA of 42"),
        ),
        (
            Request::Terminate {
                target: "#2".into(),
            },
            Response::ok("terminating IKE SA #2"),
        ),
        (
            Request::Terminate {
                target: "#42".into(),
            },
            Response::error("no IKE SA #42"),
        ),
        (
            Request::Reload,
            Response::ok("configuration reloaded: 2 connections"),
        ),
    ]
}

#[test]
fn every_request_round_trips_on_one_connection() {
    let d = MockDaemon::start(Mock::new(3));
    let mut client = Client::connect(&d.path).unwrap();
    let cases = every_request();
    for (request, expected) in &cases {
        assert_eq!(&client.request(request).unwrap(), expected, "{request:?}");
    }
    let sent: Vec<Request> = cases.into_iter().map(|(r, _)| r).collect();
    assert_eq!(d.mock().requests(), sent);
}

#[test]
fn every_request_round_trips_on_its_own_connection() {
    let d = MockDaemon::start(Mock::new(3));
    for (request, expected) in every_request() {
        let mut client = Client::connect(&d.path).unwrap();
        assert_eq!(client.request(&request).unwrap(), expected, "{request:?}");
    }
}

#[test]
fn socket_is_0600_in_a_0755_directory_with_nothing_left_over() {
    let d = MockDaemon::start(Mock::new(0));
    let meta = std::fs::symlink_metadata(&d.path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    let dir = d.path.parent().unwrap();
    assert_eq!(
        std::fs::metadata(dir).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["xipsecd.sock"], "the temporary name is gone");
}

#[test]
fn stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xipsecd.sock");
    // A daemon that died without removing its socket: the file stays, nobody listens.
    drop(StdListener::bind(&path).unwrap());
    assert!(UnixStream::connect(&path).is_err());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let running = serve_on(&path, Mock::new(1), ServeOptions::default()).unwrap();
    assert_eq!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o600
    );
    let answer = Client::connect(&path)
        .unwrap()
        .request(&Request::Status)
        .unwrap();
    assert_eq!(answer, Response::Status(running.handler.status.clone()));
}

#[test]
fn live_socket_is_refused_and_keeps_serving() {
    let d = MockDaemon::start(Mock::new(1));
    let err = serve_on(&d.path, Mock::new(5), ServeOptions::default())
        .err()
        .expect("a second daemon must not take a live socket");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains("another xipsecd"), "{err}");
    // The first daemon still owns the path.
    let answer = Client::connect(&d.path)
        .unwrap()
        .request(&Request::ListSas)
        .unwrap();
    assert_eq!(answer, Response::Sas(d.mock().sas.clone()));
}

#[test]
fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xipsecd.sock");
    std::fs::write(&path, b"precious").unwrap();
    let err = serve_on(&path, Mock::new(0), ServeOptions::default())
        .err()
        .expect("must refuse to replace a regular file");
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

/// Sends raw bytes, reads one response line.
fn raw(stream: &mut UnixStream, reader: &mut BufReader<UnixStream>, bytes: &[u8]) -> Response {
    stream.write_all(bytes).unwrap();
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).unwrap();
    assert_eq!(line.last(), Some(&b'\n'), "one full response line");
    protocol::decode_response(&line).unwrap()
}

fn error_message(r: Response) -> String {
    match r {
        Response::Error { message } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn malformed_requests_get_errors_and_the_connection_survives() {
    let d = MockDaemon::start(Mock::new(2));
    let mut s = UnixStream::connect(&d.path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let status = Response::Status(d.mock().status.clone());
    let good = protocol::encode_request(&Request::Status);

    let cases: &[(&[u8], &str)] = &[
        (b"not json\n", "malformed request"),
        (b"\n", "malformed request"),
        (b"\xff\xfe\x00\n", "malformed request"),
        (b"[1,2,3]\n", "malformed request"),
        (
            br#"{"version":1,"request":{"command":"frobnicate"}}"#,
            "malformed request",
        ),
        (
            br#"{"version":1,"request":{"command":"initiate"}}"#,
            "malformed request",
        ),
        (br#"{"request":{"command":"status"}}"#, "malformed request"),
        (
            br#"{"version":7,"request":{"command":"status"}}"#,
            "version 7",
        ),
        (
            br#"{"version":7,"request":{"command":"beam-me-up"}}"#,
            "version 7",
        ),
    ];
    for (bytes, expected) in cases {
        let mut line = bytes.to_vec();
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        let msg = error_message(raw(&mut s, &mut r, &line));
        assert!(
            msg.contains(expected),
            "{:?}: {msg}",
            String::from_utf8_lossy(bytes)
        );
        // Still serving on the same connection.
        assert_eq!(raw(&mut s, &mut r, &good), status);
    }
    assert_eq!(
        d.mock().requests().len(),
        cases.len(),
        "nothing malformed reached the handler"
    );
}

#[test]
fn oversized_request_gets_an_error_and_the_server_survives() {
    let d = MockDaemon::start(Mock::new(2));
    let mut s = UnixStream::connect(&d.path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    // Exactly the limit is fine (as JSON it is garbage, so "malformed", not "longer").
    let mut at_limit = vec![b' '; MAX_REQUEST_LINE];
    at_limit.push(b'\n');
    let msg = error_message(raw(&mut s, &mut r, &at_limit));
    assert!(msg.contains("malformed"), "{msg}");
    // One byte over, then a whole megabyte over: refused, and the line is skipped.
    for len in [MAX_REQUEST_LINE + 1, 1 << 20] {
        let writer = {
            let mut s = s.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut big = vec![b'a'; len];
                big.push(b'\n');
                s.write_all(&big).unwrap();
            })
        };
        let mut line = Vec::new();
        r.read_until(b'\n', &mut line).unwrap();
        writer.join().unwrap();
        let msg = error_message(protocol::decode_response(&line).unwrap());
        assert!(
            msg.contains("longer than the limit of 65536 bytes"),
            "{msg}"
        );
        let good = protocol::encode_request(&Request::ListConns);
        assert_eq!(
            raw(&mut s, &mut r, &good),
            Response::Conns(d.mock().conns.clone())
        );
    }
    // Oversized and then the client stops writing: still answered.
    let mut s2 = UnixStream::connect(&d.path).unwrap();
    s2.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s2.write_all(&vec![b'{'; MAX_REQUEST_LINE + 100]).unwrap();
    s2.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s2.read_to_end(&mut rest).unwrap();
    let msg = error_message(protocol::decode_response(&rest).unwrap());
    assert!(msg.contains("longer than the limit"), "{msg}");
    // And new connections are served.
    assert_eq!(
        Client::connect(&d.path)
            .unwrap()
            .request(&Request::Status)
            .unwrap(),
        Response::Status(d.mock().status.clone())
    );
}

#[test]
fn a_request_without_newline_before_eof_is_answered() {
    let d = MockDaemon::start(Mock::new(1));
    let mut s = UnixStream::connect(&d.path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let line = protocol::encode_request(&Request::Counters);
    s.write_all(&line[..line.len() - 1]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    assert_eq!(
        protocol::decode_response(&answer).unwrap(),
        Response::Counters(d.mock().counters.clone())
    );
}

#[test]
fn connections_beyond_the_bound_are_refused_with_a_message() {
    let options = ServeOptions {
        max_connections: 2,
        ..ServeOptions::default()
    };
    let d = MockDaemon::start_with(Mock::new(1), options);
    // Two connections, each answered once so that the server holds them.
    let mut held: Vec<Client> = (0..2)
        .map(|_| {
            let mut c = Client::connect(&d.path).unwrap();
            c.request(&Request::Status).unwrap();
            c
        })
        .collect();
    let mut third = Client::connect(&d.path).unwrap();
    let msg = error_message(third.request(&Request::Status).unwrap());
    assert!(
        msg.contains("busy") && msg.contains("2 control connections"),
        "{msg}"
    );
    // The held ones still work; after one closes, a new one is served (the server notices the
    // close asynchronously: retry for a bounded time).
    assert!(held[0].request(&Request::Status).is_ok());
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = Client::connect(&d.path)
            .unwrap()
            .request(&Request::Status)
            .unwrap();
        if let Response::Status(_) = answer {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still busy after a connection closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_handler_that_does_not_answer_times_out_with_an_error() {
    let options = ServeOptions {
        handler_timeout: Duration::from_millis(200),
        ..ServeOptions::default()
    };
    let d = MockDaemon::start_with(Mock::new(1), options);
    let mut c = Client::connect(&d.path).unwrap();
    let msg = error_message(
        c.request(&Request::Initiate {
            name: "slow".into(),
        })
        .unwrap(),
    );
    assert!(msg.contains("did not answer"), "{msg}");
    assert!(c.request(&Request::Status).is_ok());
}

#[test]
fn channel_handler_passes_requests_to_the_event_loop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ctl.sock");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let p = path.clone();
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = server::bind(&p).unwrap();
            let (handler, mut requests) = server::channel(4);
            let serving = tokio::spawn(server::serve(listener, std::sync::Arc::new(handler)));
            ready_tx.send(()).unwrap();
            // The "event loop": answers two requests, then goes away.
            for _ in 0..2 {
                let pending = requests.recv().await.unwrap();
                let answer = match pending.request() {
                    Request::Initiate { name } => Response::ok(format!("loop got {name}")),
                    other => Response::error(format!("loop got {other:?}")),
                };
                pending.reply(answer);
            }
            drop(requests);
            let _ = stop_rx.await;
            serving.abort();
        });
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let mut c = Client::connect(&path).unwrap();
    assert_eq!(
        c.request(&Request::Initiate { name: "x".into() }).unwrap(),
        Response::ok("loop got x")
    );
    assert_eq!(
        c.request(&Request::Reload).unwrap(),
        Response::error("loop got Reload")
    );
    let msg = error_message(c.request(&Request::Status).unwrap());
    assert!(msg.contains("shutting down"), "{msg}");
    stop_tx.send(()).unwrap();
    t.join().unwrap();
}

#[test]
fn client_errors_say_what_to_check() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing.sock");
    let e = Client::connect(&missing).unwrap_err();
    assert!(matches!(e, CtlError::Connect { .. }));
    assert_eq!(
        e.to_string(),
        format!(
            "cannot connect to {}: is xipsecd running? (the socket does not exist)",
            missing.display()
        )
    );

    let stale = dir.path().join("stale.sock");
    drop(StdListener::bind(&stale).unwrap());
    let e = Client::connect(&stale).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "cannot connect to {}: is xipsecd running?",
            stale.display()
        )),
        "{e}"
    );

    // A listener that accepts and never answers.
    let mute = dir.path().join("mute.sock");
    let listener = StdListener::bind(&mute).unwrap();
    let mut c = Client::connect(&mute).unwrap();
    c.set_timeout(Duration::from_millis(200));
    let e = c.request(&Request::Status).unwrap_err();
    assert!(matches!(e, CtlError::Timeout { .. }), "{e:?}");
    assert!(e.to_string().contains("did not answer"), "{e}");

    // A listener that closes without answering.
    let mut c = Client::connect(&mute).unwrap();
    let (conn, _) = listener.accept().unwrap(); // the timed-out one
    drop(conn);
    let (conn, _) = listener.accept().unwrap();
    let closer = std::thread::spawn(move || {
        let mut line = String::new();
        BufReader::new(&conn).read_line(&mut line).unwrap();
        drop(conn);
    });
    let e = c.request(&Request::Status).unwrap_err();
    closer.join().unwrap();
    assert!(matches!(e, CtlError::Closed { .. }), "{e:?}");

    // A daemon of another protocol version.
    let mut c = Client::connect(&mute).unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    let other = std::thread::spawn(move || {
        let mut line = String::new();
        BufReader::new(&conn).read_line(&mut line).unwrap();
        conn.write_all(b"{\"version\":2,\"response\":{\"kind\":\"teapot\"}}\n")
            .unwrap();
    });
    let e = c.request(&Request::Status).unwrap_err();
    other.join().unwrap();
    assert!(
        matches!(
            e,
            CtlError::Protocol {
                error: ProtocolError::Version { theirs: 2 },
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("version 2"), "{e}");
}
