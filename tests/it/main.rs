//! Sluice's end-to-end tests, one test binary (the heavy dependencies link once): the
//! malformed-DAG corpus, the CLI in-process, the JSON Schema, plugins built from source, local
//! Spark, the platform pipeline, and the crates' layering. Shared support is this package's
//! library (`tests/support/`).

mod architecture;
mod cli;
mod hostile_conf;
mod invalid_dags;
mod pipeline;
mod plugins;
mod schema;
mod spark_local;

use std::ffi::OsString;

use sluice::cli::{Streams, run};

/// What a `sluice` command line did.
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a `sluice` command line in this process.
pub fn sluice(args: &[&str]) -> Outcome {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once(OsString::from("sluice")).chain(args.iter().map(OsString::from));
    let code = run(
        argv,
        &mut Streams {
            out: &mut out,
            err: &mut err,
            color: false,
            remote: None,
        },
    );
    Outcome {
        code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}
