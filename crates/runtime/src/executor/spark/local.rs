//! `backend: local`: the application runs with `spark-submit --master local[*]` as a local
//! process, through the command executor (process group, log capture, timeout with SIGTERM
//! then SIGKILL, cancel on clear).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::submit;
use sluice_model::spec::{CommandLine, CommandTask, SparkTask};

/// Exit code a Spark application uses for arguments it rejects (argparse's): retrying
/// cannot help. Every other failure of a Spark application (lost executors, out of memory,
/// a source not yet readable) is worth another try.
const USAGE_EXIT: i32 = 2;

/// `spark-submit`: `$SPARK_HOME/bin/spark-submit` when `SPARK_HOME` is set, else from PATH.
pub fn spark_submit() -> PathBuf {
    std::env::var_os("SPARK_HOME").map_or_else(
        || PathBuf::from("spark-submit"),
        |home| Path::new(&home).join("bin").join("spark-submit"),
    )
}

/// The command that runs the task locally. Relative application and `py_files` paths are
/// relative to the DAG folder.
pub fn command(task: &SparkTask, dags_dir: &Path, app_name: &str) -> CommandTask {
    let resolve = |p: &str| {
        if p.contains("://") || Path::new(p).is_absolute() {
            p.to_owned()
        } else {
            dags_dir.join(p).display().to_string()
        }
    };
    let mut task = task.clone();
    task.py_files = task.py_files.iter().map(|p| resolve(p)).collect();
    // A local run needs no UI; the user's `conf` still wins.
    task.conf
        .entry("spark.ui.enabled".into())
        .or_insert_with(|| "false".into());
    let mut argv = vec![
        spark_submit().display().to_string(),
        "--master".to_owned(),
        "local[*]".to_owned(),
    ];
    argv.extend(submit::arguments(
        &task,
        &resolve(&task.application),
        app_name,
    ));
    let mut env = BTreeMap::new();
    if std::env::var_os("SPARK_LOCAL_IP").is_none() {
        // Otherwise the driver binds to the machine's external interface.
        env.insert("SPARK_LOCAL_IP".to_owned(), "127.0.0.1".to_owned());
    }
    CommandTask {
        command: CommandLine::Argv(argv),
        env,
        working_dir: None,
        retryable_exit_codes: None,
        fatal_exit_codes: vec![USAGE_EXIT],
        kill_grace: None,
    }
}
