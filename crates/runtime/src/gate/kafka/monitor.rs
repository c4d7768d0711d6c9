//! The gate monitor: one thread that looks at every watched topic and group at its poll
//! interval and sends each view (or why there is none) to the scheduler loop. It owns one
//! [`KafkaLink`] per connection; it never blocks the loop, and a broker that is down only
//! costs it a request time-out per look.

use crate::connections::Connections;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::GateSource;
use super::client::KafkaLink;
use super::observer::{Look, SourceMemory, observe};

/// What to watch: each source with how often to look, and what the state folder
/// remembers of it (used the first time the monitor looks at it).
pub type Watchlist = BTreeMap<GateSource, Watch>;

#[derive(Debug, Clone)]
pub struct Watch {
    pub every: Duration,
    pub remembered: SourceMemory,
}

/// What the monitor saw of a watched topic and group, or why it saw nothing.
#[derive(Debug)]
pub struct GateView {
    pub source: GateSource,
    pub look: Result<Look, String>,
    /// What the monitor now knows of the source, to keep in the state folder.
    pub remember: Option<SourceMemory>,
}

/// Where the monitor's views go. The scheduler provides it; the monitor knows only this.
pub trait ViewSink: Send + Sync {
    /// Delivers a view; `false` once nobody listens any more, which stops the monitor.
    fn view(&self, view: GateView) -> bool;
}

/// The monitor owns no store: what it learns goes back to the loop with each look, and the
/// loop writes it in its group commit. (A thread holding the database would keep its lock
/// after the engine is gone.)
pub struct GateMonitor {
    watchlist: Arc<Mutex<Watchlist>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    sink: Arc<dyn ViewSink>,
    connections: Connections,
}

impl GateMonitor {
    pub fn new(sink: Arc<dyn ViewSink>, connections: Connections) -> Self {
        GateMonitor {
            connections,
            watchlist: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
            sink,
        }
    }

    /// Replaces what is watched; the thread starts with the first source.
    pub fn watch(&mut self, list: Watchlist) {
        let empty = list.is_empty();
        if let Ok(mut current) = self.watchlist.lock() {
            *current = list;
        }
        if empty || self.thread.is_some() {
            return;
        }
        let (watchlist, stop) = (Arc::clone(&self.watchlist), Arc::clone(&self.stop));
        let sink = Arc::clone(&self.sink);
        let connections = self.connections.clone();
        self.thread = std::thread::Builder::new()
            .name("sluice-gates".into())
            .spawn(move || run(&watchlist, &stop, &sink, &connections))
            .ok();
    }
}

impl Drop for GateMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Not joined: a look in progress may take a request time-out; the thread ends
        // after it, and the process does not wait for a broker that is down.
        self.thread.take();
    }
}

fn run(
    watchlist: &Mutex<Watchlist>,
    stop: &AtomicBool,
    sink: &Arc<dyn ViewSink>,
    connections: &Connections,
) {
    let mut links: HashMap<String, KafkaLink> = HashMap::new();
    let mut memories: HashMap<GateSource, SourceMemory> = HashMap::new();
    let mut next_look: HashMap<GateSource, Instant> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let list = watchlist.lock().map(|l| l.clone()).unwrap_or_default();
        let now = Instant::now();
        for (source, watch) in &list {
            if next_look.get(source).is_some_and(|at| *at > now) || stop.load(Ordering::Relaxed) {
                continue;
            }
            next_look.insert(source.clone(), now + watch.every);
            let memory = memories
                .entry(source.clone())
                .or_insert_with(|| watch.remembered.clone());
            // A failed look keeps its link: the client reconnects by itself.
            let seen = look(connections, &mut links, source, memory);
            let remember = (seen.is_ok() && !source.lag_only).then(|| memory.clone());
            let delivered = sink.view(GateView {
                source: source.clone(),
                look: seen,
                remember,
            });
            if !delivered {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One look at a source.
pub fn look(
    connections: &Connections,
    links: &mut HashMap<String, KafkaLink>,
    source: &GateSource,
    memory: &mut SourceMemory,
) -> Result<Look, String> {
    if !links.contains_key(&source.connection) {
        let conn = connections
            .kafka(&source.connection)
            .map_err(|e| e.to_string())?;
        links.insert(source.connection.clone(), KafkaLink::new(conn)?);
    }
    let link = links
        .get_mut(&source.connection)
        .ok_or_else(|| format!("no link for connection `{}`", source.connection))?;
    observe(
        link,
        &source.topic,
        &source.group,
        source.arrivals_topic.as_deref(),
        source.lag_only,
        memory,
        Utc::now(),
    )
}
