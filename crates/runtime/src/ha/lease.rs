//! The leader lease: one key per deployment in etcd, attached to a lease that the holder
//! keeps alive. Whoever creates the key is active; the key's creation revision is the
//! fencing token (etcd revisions only grow, so each later holder has a larger one).
//!
//! A lease alone gives no mutual exclusion: the holder and etcd measure its TTL on two
//! clocks. So the holder never trusts the key beyond what it last *proved*: each renewal
//! that etcd answers (the lease alive, the key still ours) extends a local deadline to the
//! renewal's send time plus the TTL less a margin. etcd expires the lease no sooner than its
//! receipt of that renewal plus the TTL, so the old holder's deadline passes before anyone
//! else can create the key. [`Fence::check`] compares against that deadline: the loop asks
//! it before each group commit and each dispatch, without a round trip.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::etcd::{Etcd, EtcdError};

/// Who holds (or held) the lead, as the leader key says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub instance: String,
    /// Where its API is, for standbys to point callers at.
    pub api: Option<String>,
    pub since: DateTime<Utc>,
}

/// The active instance seen from anywhere: the holder and its fencing token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Active {
    pub holder: Holder,
    pub token: i64,
}

/// Why this instance may no longer act as the active one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("this scheduler is no longer the active one (lease revision {token}): {reason}")]
pub struct Deposed {
    pub token: i64,
    pub reason: String,
}

#[derive(Debug)]
struct FenceState {
    token: i64,
    valid_until: Mutex<Instant>,
    lost: AtomicBool,
    reason: Mutex<String>,
}

/// The active instance's right to act, checked before each commit and side effect.
#[derive(Debug, Clone)]
pub struct Fence(Arc<FenceState>);

impl Fence {
    fn new(token: i64, valid_until: Instant) -> Fence {
        Fence(Arc::new(FenceState {
            token,
            valid_until: Mutex::new(valid_until),
            lost: AtomicBool::new(false),
            reason: Mutex::new(String::new()),
        }))
    }

    /// The fencing token: the leader key's creation revision.
    pub fn token(&self) -> i64 {
        self.0.token
    }

    fn deadline(&self) -> Instant {
        *self
            .0
            .valid_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `Ok` while this instance may still act: the lease was last proved ours recently
    /// enough that no one else can hold it yet.
    pub fn check(&self) -> Result<(), Deposed> {
        let reason = if self.0.lost.load(Ordering::Acquire) {
            self.0
                .reason
                .lock()
                .map(|r| r.clone())
                .unwrap_or_else(|p| p.into_inner().clone())
        } else if Instant::now() >= self.deadline() {
            "the lease could not be renewed in time (etcd unreachable?)".to_owned()
        } else {
            return Ok(());
        };
        Err(Deposed {
            token: self.0.token,
            reason,
        })
    }

    /// How long the lease is proved ours from now (zero once lost).
    pub fn remaining(&self) -> Duration {
        if self.0.lost.load(Ordering::Acquire) {
            return Duration::ZERO;
        }
        self.deadline().saturating_duration_since(Instant::now())
    }

    fn extend(&self, until: Instant) {
        let mut deadline = self
            .0
            .valid_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *deadline = (*deadline).max(until);
    }

    fn lose(&self, reason: String) {
        if let Ok(mut slot) = self.0.reason.lock()
            && slot.is_empty()
        {
            *slot = reason;
        }
        self.0.lost.store(true, Ordering::Release);
    }
}

/// What executors ask before an irreversible call to the outside (an EMR step added, a
/// cluster or job run started, a ClickHouse statement sent): `Ok` without HA, or while this
/// instance's lease is proved ours.
#[derive(Debug, Clone, Default)]
pub struct SideEffects(Option<Fence>);

impl SideEffects {
    pub fn fenced(fence: Fence) -> SideEffects {
        SideEffects(Some(fence))
    }

    /// `Err` with why, naming the call refused.
    pub fn allow(&self, call: &str) -> Result<(), String> {
        match &self.0 {
            Some(fence) => fence
                .check()
                .map_err(|deposed| format!("{call} not sent: {deposed}")),
            None => Ok(()),
        }
    }
}

/// Campaigns for the lead of one deployment.
#[derive(Debug, Clone)]
pub struct Elector {
    etcd: Etcd,
    key: String,
    ttl: Duration,
    instance: String,
    api: Option<String>,
}

/// What etcd's keys are named after (`/sluice/<deployment>/leader`).
pub fn leader_key(deployment: &str) -> String {
    format!("/sluice/{deployment}/leader")
}

impl Elector {
    pub fn new(
        etcd: Etcd,
        deployment: &str,
        instance: String,
        api: Option<String>,
        ttl: Duration,
    ) -> Elector {
        Elector {
            etcd,
            key: leader_key(deployment),
            // etcd grants whole seconds: the fence must not count on more than it grants.
            ttl: Duration::from_secs(ttl.as_secs().max(1)),
            instance,
            api,
        }
    }

    /// The local deadline's margin: a tenth of the TTL, for clock-rate drift and scheduling
    /// delays between reading the clock and sending.
    fn margin(&self) -> Duration {
        self.ttl / 10
    }

    /// Who is active now, if anyone.
    pub fn active(&self) -> Result<Option<Active>, EtcdError> {
        Ok(self.etcd.get(&self.key)?.map(|kv| Active {
            holder: serde_json::from_slice(&kv.value).unwrap_or(Holder {
                instance: String::from_utf8_lossy(&kv.value).into_owned(),
                api: None,
                since: Utc::now(),
            }),
            token: kv.create_revision,
        }))
    }

    /// One attempt to become active. `Ok(None)`: someone else is (see [`Elector::active`]).
    pub fn try_acquire(&self) -> Result<Option<Term>, EtcdError> {
        let ttl_seconds = self.ttl.as_secs().max(1);
        // The lease's clock starts at etcd's grant, after this instant.
        let started = Instant::now();
        let lease = self.etcd.grant(ttl_seconds)?;
        let holder = Holder {
            instance: self.instance.clone(),
            api: self.api.clone(),
            since: Utc::now(),
        };
        let value = serde_json::to_vec(&holder).unwrap_or_default();
        match self.etcd.put_if_absent(&self.key, &value, lease) {
            Ok(Ok(token)) => {
                let fence = Fence::new(token, started + self.ttl - self.margin());
                Ok(Some(Term::start(self.clone(), lease, fence)))
            }
            Ok(Err(_holder)) => {
                let _ = self.etcd.revoke(lease);
                Ok(None)
            }
            Err(e) => {
                let _ = self.etcd.revoke(lease);
                Err(e)
            }
        }
    }

    /// Campaigns until this instance is active or `stop` is set; `waiting` is told who is
    /// active (or why etcd could not say) between tries.
    pub fn campaign(
        &self,
        stop: &AtomicBool,
        waiting: &mut dyn FnMut(Result<Option<Active>, EtcdError>),
    ) -> Option<Term> {
        let pause = (self.ttl / 4).max(Duration::from_millis(50));
        while !stop.load(Ordering::Acquire) {
            match self.try_acquire() {
                Ok(Some(term)) => return Some(term),
                Ok(None) => waiting(self.active()),
                Err(e) => waiting(Err(e)),
            }
            std::thread::sleep(pause);
        }
        None
    }
}

/// A term as the active instance: the lease kept alive by a thread of its own until the
/// term ends (resigned, lost, or dropped).
pub struct Term {
    elector: Elector,
    lease: i64,
    fence: Fence,
    stop: Arc<AtomicBool>,
    keeper: Option<std::thread::JoinHandle<()>>,
}

impl Term {
    fn start(elector: Elector, lease: i64, fence: Fence) -> Term {
        let stop = Arc::new(AtomicBool::new(false));
        let keeper = {
            let (elector, fence, stop) = (elector.clone(), fence.clone(), stop.clone());
            std::thread::Builder::new()
                .name("sluice-lease".into())
                .spawn(move || keep(elector, lease, fence, stop))
                .ok()
        };
        if keeper.is_none() {
            fence.lose("cannot start the lease keeper thread".into());
        }
        Term {
            elector,
            lease,
            fence,
            stop,
            keeper,
        }
    }

    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    pub fn token(&self) -> i64 {
        self.fence.token()
    }

    /// Ends the term: stops renewing, then deletes the key (if still ours) and the lease so
    /// a standby takes over at once instead of after the TTL.
    pub fn resign(mut self) {
        self.stop_keeper();
        self.fence.lose("resigned".into());
        let _ = self
            .elector
            .etcd
            .delete_if(&self.elector.key, self.fence.token());
        let _ = self.elector.etcd.revoke(self.lease);
    }

    fn stop_keeper(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        self.stop_keeper();
        self.fence.lose("the term ended".into());
    }
}

/// The lease is gone: the loop stops at its next check, but local attempts are killed here
/// and now, at the deadline, whatever the loop is doing (a successor may start them soon).
fn lost(fence: &Fence, reason: String) {
    tracing::warn!("ha: lost the lead: {reason}");
    fence.lose(reason);
    let killed = crate::executor::orphans::kill_own_attempts();
    if !killed.is_empty() {
        tracing::warn!("ha: killed {} local attempt process(es)", killed.len());
    }
}

/// Renews the lease every third of its TTL; each answered renewal (lease alive, key still
/// ours) extends the fence. Gives up once the fence's deadline passes or etcd says no.
fn keep(elector: Elector, lease: i64, fence: Fence, stop: Arc<AtomicBool>) {
    let every = elector.ttl / 3;
    let mut next = Instant::now() + every;
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if now >= fence.deadline() {
            lost(&fence, "the lease could not be renewed in time".into());
            return;
        }
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(20)));
            continue;
        }
        next = now + every;
        let sent = Instant::now();
        let verdict = elector.etcd.keep_alive(lease).and_then(|left| {
            if left <= 0 {
                return Ok(Err("the lease expired".to_owned()));
            }
            match elector.etcd.holds(&elector.key, fence.token())? {
                true => Ok(Ok(())),
                false => Ok(Err("another instance holds the leader key".to_owned())),
            }
        });
        match verdict {
            Ok(Ok(())) => fence.extend(sent + elector.ttl - elector.margin()),
            Ok(Err(reason)) => {
                lost(&fence, reason);
                return;
            }
            Err(e) => {
                tracing::warn!("ha: cannot renew the lease: {e}");
                if fence.check().is_err() {
                    lost(
                        &fence,
                        format!("the lease could not be renewed in time: {e}"),
                    );
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_holds_until_its_deadline_or_a_loss() {
        let fence = Fence::new(7, Instant::now() + Duration::from_secs(60));
        assert!(fence.check().is_ok());
        assert!(
            SideEffects::fenced(fence.clone())
                .allow("AddJobFlowSteps")
                .is_ok()
        );
        // A renewal never moves the deadline back.
        fence.extend(Instant::now());
        assert!(fence.remaining() > Duration::from_secs(50));
        fence.lose("another instance holds the leader key".into());
        let refused = SideEffects::fenced(fence.clone())
            .allow("AddJobFlowSteps")
            .unwrap_err();
        assert!(refused.contains("AddJobFlowSteps not sent"), "{refused}");
        assert!(
            refused.contains("another instance holds the leader key"),
            "{refused}"
        );
        assert_eq!(fence.remaining(), Duration::ZERO);

        let expired = Fence::new(8, Instant::now());
        let deposed = expired.check().unwrap_err();
        assert_eq!(deposed.token, 8);
        assert!(deposed.reason.contains("could not be renewed"), "{deposed}");
        assert!(SideEffects::default().allow("anything").is_ok());
    }
}
