//! Sluice's DAG language, innermost layer: a DAG file is read into a typed model with located
//! diagnostics (`spec`), its schedule yields data intervals (`schedule`), and task fields are
//! templates rendered per attempt (`template`). Pure: no I/O beyond reading DAG files, no
//! clock but the one passed in.

pub mod hash;
pub mod schedule;
pub mod spec;
pub mod template;

pub use hash::fingerprint;
