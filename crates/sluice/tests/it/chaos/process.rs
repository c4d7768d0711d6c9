//! The `sluice scheduler` process under test: started, SIGKILLed, started again, and
//! watched — resident memory and open file descriptors sampled all along.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::platform::Error;

pub struct Scheduler {
    command: Vec<String>,
    environment: Vec<(String, String)>,
    log: PathBuf,
    child: Mutex<Option<Child>>,
    /// The running process's pid (0 when none), for the sampler.
    pid: Arc<AtomicU32>,
    pub peaks: Arc<Peaks>,
    sampling: Arc<AtomicBool>,
    pub starts: u32,
}

/// The highest figures seen over every incarnation.
#[derive(Default)]
pub struct Peaks {
    pub rss_kib: AtomicU64,
    pub fds: AtomicU64,
    /// Per incarnation: (peak RSS KiB, peak fds).
    pub incarnations: Mutex<Vec<(u64, u64)>>,
}

impl Scheduler {
    pub fn new(
        dags: &std::path::Path,
        state: &std::path::Path,
        plugins: &std::path::Path,
        listen: &str,
        environment: Vec<(String, String)>,
        log: PathBuf,
    ) -> Scheduler {
        let command = [
            "--dags",
            &dags.display().to_string(),
            "--state",
            &state.display().to_string(),
            "--plugins",
            &plugins.display().to_string(),
            "scheduler",
            "--listen",
            listen,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let scheduler = Scheduler {
            command,
            environment,
            log,
            child: Mutex::new(None),
            pid: Arc::new(AtomicU32::new(0)),
            peaks: Arc::new(Peaks::default()),
            sampling: Arc::new(AtomicBool::new(true)),
            starts: 0,
        };
        scheduler.sample();
        scheduler
    }

    pub fn start(&mut self) -> Result<(), Error> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&self.command)
            .envs(self.environment.iter().cloned())
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.pid.store(child.id(), Ordering::SeqCst);
        if let Ok(mut peaks) = self.peaks.incarnations.lock() {
            peaks.push((0, 0));
        }
        *self.child.lock().map_err(|_| "poisoned")? = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// SIGKILL, the worst moment being whatever moment this is.
    pub fn kill(&mut self) -> Result<(), Error> {
        self.signal(nix::sys::signal::Signal::SIGKILL)
    }

    /// SIGTERM and the graceful stop ops would do; answers the exit code.
    pub fn stop(&mut self) -> Result<Option<i32>, Error> {
        let code = {
            let mut child = self.child.lock().map_err(|_| "poisoned")?;
            match child.as_mut() {
                Some(c) => {
                    nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(i32::try_from(c.id())?),
                        nix::sys::signal::Signal::SIGTERM,
                    )?;
                    c.wait()?.code()
                }
                None => None,
            }
        };
        self.pid.store(0, Ordering::SeqCst);
        *self.child.lock().map_err(|_| "poisoned")? = None;
        Ok(code)
    }

    /// Whether the process exited on its own (it must not).
    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().ok()?;
        child.as_mut()?.try_wait().ok().flatten()
    }

    fn signal(&mut self, signal: nix::sys::signal::Signal) -> Result<(), Error> {
        let mut child = self.child.lock().map_err(|_| "poisoned")?;
        if let Some(mut c) = child.take() {
            self.pid.store(0, Ordering::SeqCst);
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(c.id())?), signal)?;
            c.wait()?;
        }
        Ok(())
    }

    /// Samples the running process every 200 ms until dropped.
    fn sample(&self) {
        let pid = Arc::clone(&self.pid);
        let peaks = Arc::clone(&self.peaks);
        let sampling = Arc::clone(&self.sampling);
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let p = pid.load(Ordering::SeqCst);
                if p != 0 {
                    let rss = std::fs::read_to_string(format!("/proc/{p}/status"))
                        .ok()
                        .and_then(|s| {
                            s.lines()
                                .find_map(|l| l.strip_prefix("VmRSS:"))
                                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                        })
                        .unwrap_or(0u64);
                    let fds = std::fs::read_dir(format!("/proc/{p}/fd"))
                        .map(|d| d.count() as u64)
                        .unwrap_or(0);
                    peaks.rss_kib.fetch_max(rss, Ordering::Relaxed);
                    peaks.fds.fetch_max(fds, Ordering::Relaxed);
                    if let Ok(mut all) = peaks.incarnations.lock()
                        && let Some(last) = all.last_mut()
                    {
                        last.0 = last.0.max(rss);
                        last.1 = last.1.max(fds);
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.sampling.store(false, Ordering::Relaxed);
        let _ = self.kill();
    }
}
