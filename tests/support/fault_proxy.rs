//! A TCP fault proxy for tests: sits between Sluice and a service on 127.0.0.1 and, on
//! command, adds latency, blackholes traffic, drops every open connection, or refuses new
//! ones (by closing its listening socket, so connects get a real ECONNREFUSED). Threads
//! only, no runtime: usable from any test.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to traffic now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Pass everything through.
    None,
    /// Delay every chunk, both ways.
    Latency(Duration),
    /// Accept and read, forward nothing, answer nothing.
    Blackhole,
    /// Close the listening socket: new connections are refused.
    Refuse,
}

struct Shared {
    fault: Mutex<Fault>,
    /// Live connections (both sides), to drop them on command.
    open: Mutex<Vec<TcpStream>>,
    stopped: AtomicBool,
}

pub struct FaultProxy {
    address: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    listening: Mutex<Option<Arc<AtomicBool>>>,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let proxy = FaultProxy {
            address: listener.local_addr()?,
            upstream,
            shared: Arc::new(Shared {
                fault: Mutex::new(Fault::None),
                open: Mutex::new(Vec::new()),
                stopped: AtomicBool::new(false),
            }),
            listening: Mutex::new(None),
        };
        proxy.listen(listener);
        Ok(proxy)
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    fn listen(&self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        *self.listening.lock().unwrap() = Some(Arc::clone(&stop));
        let shared = Arc::clone(&self.shared);
        let upstream = self.upstream;
        // Non-blocking accept, polled: the thread notices `stop` and closes the socket.
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) && !shared.stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        connect(client, upstream, &shared);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
    }

    /// Changes what happens to traffic from now on.
    pub fn set(&self, fault: Fault) {
        let was = std::mem::replace(&mut *self.shared.fault.lock().unwrap(), fault);
        if fault == Fault::Refuse && was != Fault::Refuse {
            if let Some(stop) = self.listening.lock().unwrap().take() {
                stop.store(true, Ordering::SeqCst);
            }
            // Let the accept thread drop the socket before anyone connects again.
            std::thread::sleep(Duration::from_millis(30));
        }
        if was == Fault::Refuse && fault != Fault::Refuse {
            // Same port again; a just-closed listener may take a moment to be reusable.
            for _ in 0..100 {
                if let Ok(listener) = TcpListener::bind(self.address) {
                    self.listen(listener);
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!("the fault proxy cannot listen on {} again", self.address);
        }
    }

    /// Closes every open connection now (both directions); new ones are accepted as usual.
    pub fn drop_connections(&self) {
        for stream in self.shared.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.drop_connections();
    }
}

fn connect(client: TcpStream, upstream: SocketAddr, shared: &Arc<Shared>) {
    let blackhole = *shared.fault.lock().unwrap() == Fault::Blackhole;
    let server = if blackhole {
        None
    } else {
        match TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) {
            Ok(server) => Some(server),
            Err(_) => {
                // The service is down: the client sees its connection closed.
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
        }
    };
    let mut open = shared.open.lock().unwrap();
    if let Ok(c) = client.try_clone() {
        open.push(c);
    }
    match server {
        None => {
            // Swallow whatever comes, never answer.
            let mut sink = client;
            std::thread::spawn(move || {
                let mut buffer = [0; 8192];
                while sink.read(&mut buffer).is_ok_and(|n| n > 0) {}
            });
        }
        Some(server) => {
            if let Ok(s) = server.try_clone() {
                open.push(s);
            }
            drop(open);
            pump(client.try_clone(), server.try_clone(), Arc::clone(shared));
            pump(Ok(server), Ok(client), Arc::clone(shared));
        }
    }
}

/// Copies one direction, applying the current fault to every chunk.
fn pump(from: std::io::Result<TcpStream>, to: std::io::Result<TcpStream>, shared: Arc<Shared>) {
    let (Ok(mut from), Ok(mut to)) = (from, to) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buffer = [0; 16384];
        loop {
            let n = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let fault = *shared.fault.lock().unwrap();
            match fault {
                Fault::Latency(delay) => std::thread::sleep(delay),
                // Traffic of a connection made before the blackhole is dropped from now on.
                Fault::Blackhole => continue,
                Fault::None | Fault::Refuse => {}
            }
            if to.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
