//! The TCP fault proxy of the reliability tests (`support/fault_proxy.rs`): each fault does
//! what it says, against an echo server and in front of the real ClickHouse server.

use sluice_tests as support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use support::fault_proxy::{Fault, FaultProxy};

/// An echo server on 127.0.0.1.
fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buffer = [0; 1024];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 || stream.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    address
}

/// Sends `text` and reads the echo, within `limit`.
fn round_trip(address: SocketAddr, text: &[u8], limit: Duration) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(limit))?;
    stream.write_all(text)?;
    let mut answer = vec![0; text.len()];
    stream.read_exact(&mut answer)?;
    Ok(answer)
}

#[test]
fn each_fault_does_what_it_says() {
    let proxy = FaultProxy::start(echo()).unwrap();
    let second = Duration::from_secs(1);
    assert_eq!(
        round_trip(proxy.address(), b"hello", second).unwrap(),
        b"hello"
    );

    proxy.set(Fault::Latency(Duration::from_millis(150)));
    let started = Instant::now();
    assert_eq!(
        round_trip(proxy.address(), b"slow", second).unwrap(),
        b"slow"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "both ways delayed"
    );

    proxy.set(Fault::Blackhole);
    let lost = round_trip(proxy.address(), b"void", Duration::from_millis(300)).unwrap_err();
    assert!(
        matches!(lost.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{lost}"
    );

    proxy.set(Fault::Refuse);
    let refused = TcpStream::connect(proxy.address()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);

    proxy.set(Fault::None);
    assert_eq!(
        round_trip(proxy.address(), b"back", second).unwrap(),
        b"back"
    );

    // Dropping connections closes one that is open; new ones work.
    let mut open = TcpStream::connect(proxy.address()).unwrap();
    open.set_read_timeout(Some(second)).unwrap();
    open.write_all(b"x").unwrap();
    let mut one = [0; 1];
    open.read_exact(&mut one).unwrap();
    proxy.drop_connections();
    let mut rest = [0; 1];
    assert!(
        matches!(open.read(&mut rest), Ok(0) | Err(_)),
        "the connection was closed"
    );
    assert_eq!(round_trip(proxy.address(), b"new", second).unwrap(), b"new");
}

/// In front of the real ClickHouse server: a query passes, is slowed, is refused, and passes
/// again when the fault is lifted.
#[test]
fn in_front_of_clickhouse_queries_see_the_faults() {
    let url = support::clickhouse::url();
    let upstream: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(upstream).unwrap();
    let through = format!("http://{}", proxy.address());
    let query = || support::http(&through, "POST", "/", "SELECT 40 + 2");
    assert_eq!(query().unwrap(), (200, "42\n".to_owned()));

    proxy.set(Fault::Latency(Duration::from_millis(200)));
    let started = Instant::now();
    assert_eq!(query().unwrap().1, "42\n");
    assert!(started.elapsed() >= Duration::from_millis(400));

    proxy.set(Fault::Refuse);
    assert!(query().is_err(), "a refused connection is an error");

    proxy.set(Fault::None);
    assert_eq!(query().unwrap().1, "42\n");
}
