//! `sluice-eventgen`: see `sluice_demo::eventgen`.

use clap::Parser;

fn main() {
    if let Err(e) = sluice_demo::eventgen::run(&sluice_demo::eventgen::Args::parse()) {
        eprintln!("sluice-eventgen: {e}");
        std::process::exit(1);
    }
}
