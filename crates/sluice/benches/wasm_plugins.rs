//! WASM plugin costs: warm instantiate + run, cold compile then a restart that loads the
//! compiled module from the disk cache, fuel metering's cost, and a 4-task WASM DAG over a
//! day of 15-minute intervals. Builds its plugins from source first (needs the toolchains
//! of scripts/install-wasm-toolchain).
//!
//! `cargo bench -p sluice --bench wasm_plugins`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use sluice::cli::plugin_build::{Source, build};
use sluice_runtime::executor::wasm::{
    Grants, Invocation, Limits, LinkSet, Plugin, Prepared, RunnerConfig, WasmRunner,
};
use sluice_runtime::scheduler::{Engine, EngineConfig, Mode};
use sluice_store::{Reprocess, Store};

type Error = Box<dyn std::error::Error>;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Median and p99 of `n` timed calls.
fn measure(n: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

fn context(rows: usize) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = (0..rows)
        .map(|i| serde_json::json!({"country": format!("c{}", i % 97), "device": format!("d{i}"), "events": i % 1000}))
        .collect();
    serde_json::json!({
        "dag": "bench", "run_id": "r", "task": "t", "try_number": 1,
        "logical_date": "2025-09-01T10:00:00Z",
        "data_interval": {"start": "2025-09-01T10:00:00Z", "end": "2025-09-01T10:15:00Z"},
        "outputs": {"agg": rows},
        "config": {"source": {"output": "agg"}, "checks": [
            {"row_count": {"min": 1}}, {"unique": {"columns": ["device"]}},
            {"null_ratio": {"column": "country", "max": 0}}, {"range": {"column": "events", "min": 0}}
        ]}
    })
}

fn main() -> Result<(), Error> {
    let work = std::env::temp_dir().join(format!("sluice-bench-wasm-{}", std::process::id()));
    let out = work.join("plugins");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo().join("target"), PathBuf::from)
        .join("plugins");
    std::fs::create_dir_all(work.join("trivial"))?;
    std::fs::write(
        work.join("trivial/main.c"),
        "int main(void) { return 0; }\n",
    )?;
    // The DAG's first task: outputs an empty list of rows.
    std::fs::create_dir_all(work.join("emit"))?;
    std::fs::write(
        work.join("emit/main.c"),
        "#include <stdio.h>\nint main(void) { puts(\"[]\"); return 0; }\n",
    )?;
    let sources = [
        Source::C {
            dir: work.join("trivial"),
            name: "trivial".into(),
        },
        Source::C {
            dir: work.join("emit"),
            name: "emit".into(),
        },
        Source::C {
            dir: repo().join("plugins/run_counter"),
            name: "run_counter".into(),
        },
        Source::Rust {
            dir: repo().join("examples/hello_plugin"),
            name: "hello_plugin".into(),
        },
        Source::Rust {
            dir: repo().join("plugins/dq_checks"),
            name: "dq_checks".into(),
        },
    ];
    for source in &sources {
        build(source, &out, &target)?;
    }
    let load = |name: &str| -> Result<Plugin, Error> {
        Ok(Plugin::new(std::fs::read(
            out.join(format!("{name}.wasm")),
        )?))
    };
    let (trivial, hello, dq) = (load("trivial")?, load("hello_plugin")?, load("dq_checks")?);
    println!(
        "wasm_plugins: modules trivial {} KB, hello_plugin (SDK) {} KB, dq_checks {} KB",
        trivial.wasm.len() / 1000,
        hello.wasm.len() / 1000,
        dq.wasm.len() / 1000
    );

    // Warm instantiate + run.
    let store = Store::temporary(&work)?;
    let runner = WasmRunner::with_config(RunnerConfig {
        kv: Some(std::sync::Arc::new(store.kv())),
        ..RunnerConfig::default()
    })?;
    let none = Grants::default();
    let kv = Grants {
        kv: true,
        ..Grants::default()
    };
    let small = context(0);
    for (name, plugin, grants) in [
        ("trivial (C)", &trivial, &none),
        ("hello_plugin (SDK, kv get+put)", &hello, &kv),
    ] {
        let call = Invocation::of_context(&small, Limits::default(), grants.clone());
        let _ = runner.invoke(plugin, call.clone());
        let (median, p99) = measure(2000, || {
            let _ = runner.invoke(plugin, call.clone());
        });
        println!(
            "  instantiate + run, warm, {name}: median {:.0} us, p99 {:.0} us (goal median <= 1000 us)",
            micros(median),
            micros(p99)
        );
    }

    // Cold compile, then a "restarted" runner loading from the disk cache.
    let cache = work.join("plugin-cache");
    for (name, plugin) in [("hello_plugin", &hello), ("dq_checks", &dq)] {
        let config = || RunnerConfig {
            cache_dir: Some(cache.clone()),
            ..RunnerConfig::default()
        };
        let set = LinkSet {
            kv: true,
            clickhouse: true,
        };
        let t = Instant::now();
        let how = WasmRunner::with_config(config())?.prepare(plugin, set)?;
        let cold = t.elapsed();
        assert_eq!(how, Prepared::Compiled);
        let mut loads = Vec::new();
        for _ in 0..20 {
            let restarted = WasmRunner::with_config(config())?;
            let t = Instant::now();
            let how = restarted.prepare(plugin, set)?;
            loads.push(t.elapsed());
            assert_eq!(how, Prepared::Disk);
        }
        loads.sort();
        println!(
            "  {name} ({} KB): cold compile {:.0} ms; after a restart, load from disk cache median {:.2} ms, max {:.2} ms (goal <= 10 ms)",
            plugin.wasm.len() / 1000,
            cold.as_secs_f64() * 1e3,
            percentile(&loads, 0.5).as_secs_f64() * 1e3,
            percentile(&loads, 1.0).as_secs_f64() * 1e3
        );
    }

    // Fuel metering's cost on a compute-heavy plugin (dq_checks over 20,000 rows).
    let heavy = context(20_000);
    for metering in [true, false] {
        let runner = WasmRunner::with_config(RunnerConfig {
            fuel_metering: metering,
            ..RunnerConfig::default()
        })?;
        let call = Invocation::of_context(&heavy, Limits::default(), none.clone());
        let first = runner.invoke(&dq, call.clone());
        assert_eq!(
            first.outcome,
            sluice_core::Outcome::Success,
            "{}",
            first.stderr
        );
        let (median, _) = measure(15, || {
            let _ = runner.invoke(&dq, call.clone());
        });
        println!(
            "  dq_checks on 20,000 rows, fuel metering {}: median {:.1} ms",
            if metering { "on " } else { "off" },
            median.as_secs_f64() * 1e3
        );
    }

    // A 4-task WASM DAG over a day of 15-minute intervals.
    let dags = work.join("dags");
    std::fs::create_dir_all(&dags)?;
    std::fs::write(
        dags.join("wasm_day.yaml"),
        format!(
            r#"
dag: wasm_day
schedule: "*/15 * * * *"
start: 2025-09-01T00:00:00Z
tasks:
  produce:
    type: wasm
    plugin: {emit}
  dq:
    type: wasm
    plugin: dq_checks
    depends_on: [produce]
    config:
      source: {{ output: produce }}
      checks: [{{ row_count: {{ max: 0 }} }}]
  hello:
    type: wasm
    plugin: hello_plugin
    depends_on: [produce]
    capabilities: {{ kv: true }}
  count:
    type: wasm
    plugin: run_counter
    depends_on: [hello]
    capabilities: {{ kv: true }}
"#,
            emit = out.join("emit.wasm").display()
        ),
    )?;
    let mut config = EngineConfig::new(
        dags,
        Mode::Backfill {
            dag: "wasm_day".into(),
        },
    );
    config.plugins_dir = out.clone();
    let state = work.join("state");
    let from = Utc
        .with_ymd_and_hms(2025, 9, 1, 0, 0, 0)
        .single()
        .ok_or("date")?;
    let started = Instant::now();
    let mut engine = Engine::new(Store::open(&state)?, config)?;
    let record = engine.start_backfill(
        "wasm_day",
        from,
        from + chrono::TimeDelta::days(1),
        Reprocess::None,
        None,
    )?;
    engine.run()?;
    let elapsed = started.elapsed();
    let progress = engine.backfill_progress("wasm_day").unwrap_or_default();
    println!(
        "  4-task WASM DAG, {} runs (one day of 15-minute intervals): {:.2} s end to end, {:.1} ms per task instance; succeeded {} failed {}",
        record.total,
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 / (record.total as f64 * 4.0),
        progress.succeeded,
        progress.failed
    );
    drop(engine);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
