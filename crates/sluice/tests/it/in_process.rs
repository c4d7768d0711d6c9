//! A scheduler-mode engine on a thread of the test, over DAG files written to a scratch
//! folder; shut down and cleaned up when dropped.

use std::path::PathBuf;
use std::sync::Arc;

use sluice_runtime::scheduler::{Engine, EngineConfig, Input, Mode, Stats};
use sluice_store::Store;

pub struct Scheduler {
    pub store: Store,
    pub sender: std::sync::mpsc::Sender<Input>,
    pub metrics: Arc<sluice_runtime::metrics::Metrics>,
    thread: Option<std::thread::JoinHandle<Stats>>,
    root: PathBuf,
}

impl Scheduler {
    pub fn dags_dir(&self) -> PathBuf {
        self.root.join("dags")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    /// Shuts the engine down and leaves its folder (DAGs and state) for the caller, who
    /// removes it.
    pub fn stop_and_keep(mut self) -> PathBuf {
        let _ = self.sender.send(Input::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        std::mem::take(&mut self.root)
    }

    /// Shuts the engine down and says what it did.
    pub fn stop(mut self) -> Option<Stats> {
        let _ = self.sender.send(Input::Shutdown);
        self.thread.take()?.join().ok()
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.sender.send(Input::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Starts it on `dags` (file name, text); `configure` adjusts the engine's configuration.
pub fn start(
    name: &str,
    dags: &[(&str, &str)],
    configure: impl FnOnce(&mut EngineConfig) + Send + 'static,
) -> Scheduler {
    let root = std::env::temp_dir().join(format!("sluice-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let folder = root.join("dags");
    std::fs::create_dir_all(&folder).unwrap();
    for (file, text) in dags {
        std::fs::write(folder.join(file), text).unwrap();
    }
    let (handles, received) = std::sync::mpsc::channel();
    let state = root.join("state");
    let thread = std::thread::spawn(move || {
        let store = Store::open(&state).unwrap();
        let mut config = EngineConfig::new(folder, Mode::Scheduler);
        configure(&mut config);
        let mut engine = Engine::new(store, config).unwrap();
        handles
            .send((engine.store().clone(), engine.sender(), engine.metrics()))
            .unwrap();
        engine.run().unwrap();
        engine.stats().clone()
    });
    let (store, sender, metrics) = received.recv().unwrap();
    Scheduler {
        store,
        sender,
        metrics,
        thread: Some(thread),
        root,
    }
}
