//! The runtime's implementations of the host functions' ports: the plugins' key-value store
//! over the state's `kv` tree, and `clickhouse_query` over the ClickHouse client.

use sluice_store::{KvStore, StoreError};

use super::host::{HostCallError, KeyValue, QueryService};
use crate::clickhouse::{ClickhouseQueries, QueryError};

impl KeyValue for KvStore {
    fn get(&self, dag: &str, key: &str) -> Result<Option<Vec<u8>>, HostCallError> {
        KvStore::get(self, dag, key).map_err(store_failed)
    }

    fn put(&self, dag: &str, key: &str, value: &[u8]) -> Result<(), HostCallError> {
        KvStore::put(self, dag, key, value).map_err(store_failed)
    }
}

/// Too large is the plugin's to fix; anything else the store says may pass.
fn store_failed(e: StoreError) -> HostCallError {
    HostCallError {
        retryable: !matches!(e, StoreError::TooLarge { .. }),
        message: e.to_string(),
    }
}

impl QueryService for ClickhouseQueries {
    fn query(&self, connection: &str, sql: &str) -> Result<Vec<serde_json::Value>, HostCallError> {
        self.rows(connection, sql)
            .map_err(|QueryError { message, retryable }| HostCallError { message, retryable })
    }
}
