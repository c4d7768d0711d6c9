//! `sluice-raw-sink`: see `sluice_demo::raw_sink`.

use clap::Parser;

fn main() {
    if let Err(e) = sluice_demo::raw_sink::run(&sluice_demo::raw_sink::Args::parse()) {
        eprintln!("sluice-raw-sink: {e}");
        std::process::exit(1);
    }
}
