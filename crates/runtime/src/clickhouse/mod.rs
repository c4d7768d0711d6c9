//! ClickHouse over HTTP (the `clickhouse` crate): clients per connection, error classes, and
//! the `clickhouse_query` service WASM plugins call.
//!
//! A connection is `SLUICE_CONN_<NAME>` = `{"type": "clickhouse", "url": "http://…:8123",
//! "database": "…", "user": "…", "password_env": "VAR", "validation": true}` (see
//! `crate::connections`). The password is read from the named variable, never written in a
//! connection, and never printed. `validation: false` is for servers older than the
//! crate's schema validation (Debian's 18.16).

pub mod errors;
pub mod queries;
pub mod statements;

pub use queries::{ClickhouseQueries, QueryError};
