//! The YAML DAG language: model, decoding with located diagnostics, validation, schema.
//!
//! Reading a file goes `yaml` (spanned tree, alias and depth limits) → `decode` (typed
//! model, every field problem) → `validate` (rules across fields). Nothing here does I/O
//! except `load`, which reads files.

pub mod assets;
pub mod decode;
pub mod diagnostic;
pub mod duration;
pub mod fields;
pub mod instant;
pub mod kinds;
pub mod load;
pub mod model;
pub mod params;
pub mod policy;
pub mod schema;
pub mod size;
pub mod suggest;
pub mod timezone;
pub mod validate;
pub mod walk;
pub mod yaml;

pub use diagnostic::{Diagnostic, FileReport, Location, Severity, SourceText};
pub use duration::Duration;
pub use load::{DagSet, LoadedDag, load_bytes, load_file, load_paths, load_paths_in};
pub use model::*;
pub use policy::EffectivePolicy;
