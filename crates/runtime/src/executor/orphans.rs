//! Processes a crashed scheduler left behind. A command or local Spark attempt runs in a
//! process group of its own, so a SIGKILLed scheduler does not take it along: the driver
//! would go on writing the interval's output while the retry writes it again. At start-up,
//! recovery kills every process started for an attempt it fails by crash, found by the
//! `SLUICE_IDEMPOTENCY_KEY` every child carries in its environment (inherited by the
//! grandchildren: the Spark JVM, its Python workers), and waits for them to be gone.
//!
//! Linux only (`/proc`); elsewhere nothing is found.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The environment variable naming the attempt a process was started for.
pub const ATTEMPT_ENV: &str = "SLUICE_IDEMPOTENCY_KEY";

/// How long to wait for killed processes to be gone before the retries start.
const GONE_WITHIN: Duration = Duration::from_secs(10);

/// Kills the processes of these attempts (idempotency keys) and waits until they are gone;
/// answers the pids killed.
pub fn kill_leftovers(keys: &[String]) -> Vec<u32> {
    if keys.is_empty() {
        return Vec::new();
    }
    let wanted: HashSet<Vec<u8>> = keys
        .iter()
        .map(|k| format!("{ATTEMPT_ENV}={k}").into_bytes())
        .collect();
    kill_where(|entry| wanted.contains(entry))
}

/// Kills every other process with an environment entry (`NAME=value`) that `matches`, and
/// waits until they are gone; answers the pids killed.
pub fn kill_where(matches: impl Fn(&[u8]) -> bool) -> Vec<u32> {
    kill_found(|_| true, matches)
}

/// Kills this process's own attempts, every one, at once: its descendants that carry an
/// attempt key (an HA active whose lease ran out: a successor runs them again).
pub fn kill_own_attempts() -> Vec<u32> {
    kill_attempts_under(std::process::id())
}

/// Kills the descendants of `root` that carry an attempt key, and waits until they are gone.
fn kill_attempts_under(root: u32) -> Vec<u32> {
    let parents: std::collections::HashMap<u32, u32> = processes()
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect();
    let descends = |pid: &u32| {
        let mut at = *pid;
        // Bounded: a cycle in a racing /proc read must not loop.
        for _ in 0..64 {
            match parents.get(&at) {
                Some(&parent) if parent == root => return true,
                Some(&parent) if parent > 1 => at = parent,
                _ => return false,
            }
        }
        false
    };
    let key = format!("{ATTEMPT_ENV}=").into_bytes();
    kill_found(descends, |entry| entry.starts_with(&key))
}

/// The parent of a process, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn kill_found(which: impl Fn(&u32) -> bool, matches: impl Fn(&[u8]) -> bool) -> Vec<u32> {
    let own = std::process::id();
    let found: Vec<u32> = processes()
        .filter(|pid| *pid != own)
        .filter(&which)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(&matches))
        })
        .collect();
    let mut killed = Vec::new();
    for pid in found {
        let Ok(raw) = i32::try_from(pid) else {
            continue;
        };
        if kill(Pid::from_raw(raw), Signal::SIGKILL).is_ok() {
            killed.push(pid);
        }
    }
    let deadline = Instant::now() + GONE_WITHIN;
    while killed.iter().any(|pid| alive(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    killed
}

fn processes() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
}

/// Whether a process still runs (a zombie waiting for its parent to reap it does not).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last parenthesis (comm may contain some).
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .is_some_and(|state| state != 'Z' && state != 'X')
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt as _;

    use super::*;

    #[test]
    fn a_process_left_by_an_attempt_and_its_children_are_killed_and_others_are_not() {
        let key = format!("orphans-test/{}/task/1", std::process::id());
        let spawn = |key: &str| {
            std::process::Command::new("sh")
                .args(["-c", "sleep 60 & sleep 60"])
                .env(ATTEMPT_ENV, key)
                .process_group(0)
                .spawn()
                .expect("sh runs")
        };
        let mut leftover = spawn(&key);
        let mut other = spawn("orphans-test/other/task/1");
        // The shell has started its background child once two processes carry the key.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let with_key = processes()
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                        env.split(|b| *b == 0)
                            .any(|v| v == format!("{ATTEMPT_ENV}={key}").as_bytes())
                    })
                })
                .count();
            if with_key >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let killed = kill_leftovers(std::slice::from_ref(&key));
        assert!(killed.len() >= 2, "killed {killed:?}");
        assert!(leftover.wait().is_ok_and(|s| !s.success()));
        assert!(
            other.try_wait().is_ok_and(|s| s.is_none()),
            "an unrelated attempt was killed"
        );
        let _ = other.kill();
        let _ = other.wait();
        let _ = kill_leftovers(&["orphans-test/other/task/1".to_owned()]);
    }

    #[test]
    fn own_attempts_are_found_by_descent_and_the_key() {
        // A root without a key (standing in for the scheduler: the test binary runs other
        // tests' attempts in parallel), a keyed child under it with its own child, and a
        // process under it without a key.
        let mut root = std::process::Command::new("sh")
            .args([
                "-c",
                "SLUICE_IDEMPOTENCY_KEY=own-test/run/task/1 sh -c 'sleep 60 & sleep 60' & sleep 60 & wait",
            ])
            .env_remove(ATTEMPT_ENV)
            .process_group(0)
            .spawn()
            .expect("sh runs");
        let keyed = |pid: &u32| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0)
                    .any(|v| v == format!("{ATTEMPT_ENV}=own-test/run/task/1").as_bytes())
            })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && processes().filter(keyed).count() < 3 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let killed = kill_attempts_under(root.id());
        assert!(
            killed.len() >= 3,
            "the keyed shell and its children: {killed:?}"
        );
        assert!(
            root.try_wait().is_ok_and(|s| s.is_none()),
            "the root (no key) was killed"
        );
        let _ = kill(Pid::from_raw(-(root.id() as i32)), Signal::SIGKILL);
        let _ = root.wait();
    }
}
