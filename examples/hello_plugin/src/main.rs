//! A first plugin: greets the interval it runs for, and counts how many runs of the DAG
//! it has seen in the DAG's key-value store (capability `kv`).

use serde::{Deserialize, Serialize};
use sluice_sdk::{host, TaskContext, TaskError};

#[derive(Deserialize)]
struct Config {
    /// Who to greet; defaults to "world".
    #[serde(default = "world")]
    name: String,
}

fn world() -> String {
    "world".to_owned()
}

#[derive(Serialize)]
struct Output {
    message: String,
    runs_seen: u64,
}

fn main() {
    sluice_sdk::run(|ctx: &TaskContext| -> Result<Output, TaskError> {
        let config: Config = ctx.config()?;
        let runs_seen = host::kv_get::<u64>("runs_seen")?.unwrap_or(0) + 1;
        host::kv_put("runs_seen", &runs_seen)?;
        sluice_sdk::info!("run {} of {} (try {})", runs_seen, ctx.dag, ctx.try_number);
        Ok(Output {
            message: format!(
                "hello, {}: interval {} to {}",
                config.name, ctx.data_interval.start, ctx.data_interval.end
            ),
            runs_seen,
        })
    })
}
