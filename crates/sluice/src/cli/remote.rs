//! Commands while a scheduler runs: sled lets one process open the state, so the scheduler
//! listens on `<state>/control.sock` and runs the commands other `sluice` processes forward
//! to it — reads against its open store, changes through its event loop — and sends back
//! their output and exit code (the client side is `client::Socket`). Without a scheduler,
//! commands open the state themselves.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::Streams;
use super::client::{SocketRequest, SocketResponse};
use sluice_runtime::scheduler::Input;
use sluice_store::Store;

/// What a command run inside the scheduler's process uses instead of opening the state.
#[derive(Clone)]
pub struct Remote {
    pub store: Store,
    pub sender: mpsc::Sender<Input>,
    /// The scheduler's own settings, which every forwarded command runs with.
    pub settings: std::sync::Arc<sluice_runtime::config::Settings>,
    /// The group (gid) whose members may use the socket besides the scheduler's user.
    pub group: Option<u32>,
    /// With `[ha]`: set by `ha step-down` before it stops the loop, so the instance hands
    /// the lease over instead of exiting.
    pub hand_over: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// The gid of `scheduler.socket_group`, or why there is none.
pub fn socket_group(name: &str) -> Result<u32, String> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(format!(
            "scheduler.socket_group: no group `{name}` on this host"
        )),
        Err(e) => Err(format!("scheduler.socket_group `{name}`: {e}")),
    }
}

pub fn socket_path(state: &Path) -> PathBuf {
    state.join("control.sock")
}

/// Starts answering forwarded commands; the socket file goes when the guard drops.
pub fn serve(state: &Path, remote: Remote) -> std::io::Result<SocketGuard> {
    let path = socket_path(state);
    // We hold the state's lock, so a socket file left here is from a dead process.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    // Whatever the umask: only the scheduler's user (and its socket group) may connect, and
    // each peer is checked again.
    match remote.group {
        Some(gid) => {
            let group = Some(nix::unistd::Gid::from_raw(gid));
            nix::unistd::chown(&path, None, group).map_err(std::io::Error::from)?;
            nix::unistd::chown(state, None, group).map_err(std::io::Error::from)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
            // The group may reach the socket, not list or read the state.
            std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o710))?;
        }
        None => std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?,
    }
    std::thread::Builder::new()
        .name("sluice-control".into())
        .spawn(move || {
            let busy = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            for connection in listener.incoming().flatten() {
                use std::sync::atomic::Ordering;
                // Bounded: a peer that connects again and again gets no more threads.
                if busy.fetch_add(1, Ordering::SeqCst) >= MAX_COMMANDS_AT_ONCE {
                    busy.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
                let (remote, done) = (remote.clone(), std::sync::Arc::clone(&busy));
                let started = std::thread::Builder::new()
                    .name("sluice-command".into())
                    .spawn(move || {
                        answer(connection, remote);
                        done.fetch_sub(1, Ordering::SeqCst);
                    });
                if started.is_err() {
                    busy.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })?;
    Ok(SocketGuard(path))
}

pub struct SocketGuard(PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Commands answered at once; more connections are closed as they come.
const MAX_COMMANDS_AT_ONCE: usize = 32;

/// How long a peer has to send its request line.
const REQUEST_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long one answer line may wait for a client that does not read.
const ANSWER_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Longest request line: a command line, not a file.
const MAX_REQUEST_BYTES: u64 = 64 << 10;

/// A forwarded command's standard error, sent to the client a whole line at a time as it is
/// written (a followed backfill reports progress while it runs); the rest goes with the
/// last answer line. A client gone away does not stop the command.
struct StreamedErr<'a> {
    connection: &'a UnixStream,
    pending: Vec<u8>,
    /// A send failed (the client left or stopped reading): later lines are not sent.
    gone: bool,
}

impl Write for StreamedErr<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(bytes);
        if self.gone {
            return Ok(bytes.len());
        }
        if let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') {
            let lines: Vec<u8> = self.pending.drain(..=end).collect();
            let part = SocketResponse {
                code: None,
                stdout: String::new(),
                stderr: String::from_utf8_lossy(&lines).into_owned(),
            };
            if let Ok(text) = serde_json::to_string(&part) {
                let mut connection = self.connection;
                self.gone = writeln!(connection, "{text}").is_err();
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The user and group ids of the process at the other end of the socket.
fn peer_of(connection: &UnixStream) -> Option<(u32, u32)> {
    nix::sys::socket::getsockopt(connection, nix::sys::socket::sockopt::PeerCredentials)
        .ok()
        .map(|credentials| (credentials.uid(), credentials.gid()))
}

fn answer(connection: UnixStream, remote: Remote) {
    let me = nix::unistd::geteuid().as_raw();
    let refusal = |stderr: String| SocketResponse {
        code: Some(super::EXIT_USAGE),
        stdout: String::new(),
        stderr,
    };
    // Who it is, before reading anything from it.
    let credentials = peer_of(&connection);
    let allowed =
        credentials.is_some_and(|(uid, gid)| uid == me || remote.group.is_some_and(|g| g == gid));
    let mut line = String::new();
    let read = if allowed {
        let _ = connection.set_read_timeout(Some(REQUEST_READ_TIMEOUT));
        BufReader::new(std::io::Read::take(&connection, MAX_REQUEST_BYTES)).read_line(&mut line)
    } else {
        Ok(0)
    };
    let response = match read {
        _ if !allowed => refusal(format!(
            "error: the control socket answers only its scheduler's user (uid {me}) and its \
             socket group, not uid {}\n",
            credentials.map_or_else(|| "unknown".to_owned(), |(u, _)| u.to_string())
        )),
        Err(_) => return,
        Ok(_) if !line.ends_with('\n') => refusal(format!(
            "error: a request on the control socket is one line of at most {MAX_REQUEST_BYTES} bytes\n"
        )),
        _ => match serde_json::from_str::<SocketRequest>(&line) {
            Ok(request) => {
                let mut out = Vec::new();
                // A client that stops reading cannot hold this thread: sends give up.
                let _ = connection.set_write_timeout(Some(ANSWER_WRITE_TIMEOUT));
                let mut err = StreamedErr {
                    connection: &connection,
                    pending: Vec::new(),
                    gone: false,
                };
                let code = super::run(
                    request.args.into_iter().map(Into::into),
                    &mut Streams {
                        out: &mut out,
                        err: &mut err,
                        color: false,
                        remote: Some(remote),
                    },
                );
                SocketResponse {
                    code: Some(code),
                    stdout: String::from_utf8_lossy(&out).into_owned(),
                    stderr: String::from_utf8_lossy(&err.pending).into_owned(),
                }
            }
            Err(e) => SocketResponse {
                code: Some(super::EXIT_USAGE),
                stdout: String::new(),
                stderr: format!("error: bad request on the control socket: {e}\n"),
            },
        },
    };
    let mut connection = connection;
    if let Ok(text) = serde_json::to_string(&response) {
        let _ = writeln!(connection, "{text}");
    }
}
