//! `sluice-stream-layer`: see `sluice_demo::stream_layer`.

use clap::Parser;

fn main() {
    if let Err(e) = sluice_demo::stream_layer::run(&sluice_demo::stream_layer::Args::parse()) {
        eprintln!("sluice-stream-layer: {e}");
        std::process::exit(1);
    }
}
