//! The few etcd v3 calls a leader lease needs (grant, keep-alive, revoke, a transaction,
//! a range), spoken through etcd's own JSON gateway to the v3 API (`/v3/...`, served on
//! the client port since etcd 3.3). Same RPCs as a gRPC client, without a protobuf compiler
//! in Sluice's build. Keys and values travel base64-encoded; 64-bit numbers as strings.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd at {endpoint} did not answer: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("etcd at {endpoint} refused {call}: {reason}")]
    Refused {
        endpoint: String,
        call: &'static str,
        reason: String,
    },
}

/// A client of one etcd cluster: tries its endpoints in order, each call bounded by
/// `timeout` (a partitioned member must not hang the caller past its lease).
#[derive(Debug, Clone)]
pub struct Etcd {
    endpoints: Vec<String>,
    http: reqwest::blocking::Client,
}

/// One key as etcd holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub value: Vec<u8>,
    /// The cluster revision that created the key: grows with every later creation.
    pub create_revision: i64,
    pub lease: i64,
}

#[derive(Deserialize)]
struct RawKv {
    #[serde(default)]
    value: String,
    #[serde(default)]
    create_revision: Option<String>,
    #[serde(default)]
    lease: Option<String>,
}

fn number(text: Option<&str>) -> i64 {
    text.and_then(|t| t.parse().ok()).unwrap_or(0)
}

impl Etcd {
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> Result<Etcd, EtcdError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| EtcdError::Unreachable {
                endpoint: endpoints.join(","),
                reason: e.to_string(),
            })?;
        Ok(Etcd { endpoints, http })
    }

    fn call(&self, call: &'static str, path: &str, body: Value) -> Result<Value, EtcdError> {
        let mut last = None;
        for endpoint in &self.endpoints {
            let url = format!("{}/v3/{path}", endpoint.trim_end_matches('/'));
            match self.http.post(&url).json(&body).send() {
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().unwrap_or_default();
                    if !status.is_success() {
                        // An unhealthy member: another may answer.
                        last = Some(EtcdError::Refused {
                            endpoint: endpoint.clone(),
                            call,
                            reason: format!("{status}: {}", text.trim()),
                        });
                        continue;
                    }
                    return serde_json::from_str(&text).map_err(|e| EtcdError::Refused {
                        endpoint: endpoint.clone(),
                        call,
                        reason: format!("unreadable answer: {e}"),
                    });
                }
                Err(e) => {
                    last = Some(EtcdError::Unreachable {
                        endpoint: endpoint.clone(),
                        reason: e.to_string(),
                    })
                }
            }
        }
        Err(last.unwrap_or(EtcdError::Unreachable {
            endpoint: String::new(),
            reason: "no endpoint configured".into(),
        }))
    }

    /// A new lease of `ttl` seconds; returns its id.
    pub fn grant(&self, ttl: u64) -> Result<i64, EtcdError> {
        let answer = self.call(
            "LeaseGrant",
            "lease/grant",
            json!({ "TTL": ttl.to_string() }),
        )?;
        let id = number(answer["ID"].as_str());
        if id == 0 {
            return Err(self.refused("LeaseGrant", &answer));
        }
        Ok(id)
    }

    /// Renews a lease; returns the seconds it now has left (0: the lease is gone).
    pub fn keep_alive(&self, lease: i64) -> Result<i64, EtcdError> {
        let answer = self.call(
            "LeaseKeepAlive",
            "lease/keepalive",
            json!({ "ID": lease.to_string() }),
        )?;
        Ok(number(answer["result"]["TTL"].as_str()))
    }

    /// Ends a lease at once, deleting the keys attached to it.
    pub fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        self.call(
            "LeaseRevoke",
            "lease/revoke",
            json!({ "ID": lease.to_string() }),
        )?;
        Ok(())
    }

    /// Puts `value` at `key` under `lease` if no one holds the key. `Ok(Err(holder))` when
    /// someone does; `Ok(Ok(revision))` with the key's creation revision when we now do.
    pub fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        lease: i64,
    ) -> Result<Result<i64, KeyValue>, EtcdError> {
        let key64 = B64.encode(key);
        let answer = self.call(
            "Txn",
            "kv/txn",
            json!({
                "compare": [{ "target": "CREATE", "key": key64, "create_revision": "0" }],
                "success": [{ "request_put": {
                    "key": key64, "value": B64.encode(value), "lease": lease.to_string()
                } }],
                "failure": [{ "request_range": { "key": key64 } }],
            }),
        )?;
        if answer["succeeded"].as_bool() == Some(true) {
            return Ok(Ok(number(answer["header"]["revision"].as_str())));
        }
        let kvs = &answer["responses"][0]["response_range"]["kvs"];
        match first_kv(kvs) {
            Some(holder) => Ok(Err(holder)),
            // Deleted between the compare and the read: the caller tries again.
            None => Ok(Err(KeyValue {
                value: Vec::new(),
                create_revision: 0,
                lease: 0,
            })),
        }
    }

    /// Whether `key` still exists with this creation revision (the fencing token): a
    /// linearizable read.
    pub fn holds(&self, key: &str, create_revision: i64) -> Result<bool, EtcdError> {
        Ok(self
            .get(key)?
            .is_some_and(|kv| kv.create_revision == create_revision))
    }

    pub fn get(&self, key: &str) -> Result<Option<KeyValue>, EtcdError> {
        let answer = self.call("Range", "kv/range", json!({ "key": B64.encode(key) }))?;
        Ok(first_kv(&answer["kvs"]))
    }

    /// Deletes `key` if its creation revision is still `create_revision` (giving up a lead
    /// we hold, never someone else's).
    pub fn delete_if(&self, key: &str, create_revision: i64) -> Result<bool, EtcdError> {
        let key64 = B64.encode(key);
        let answer = self.call(
            "Txn",
            "kv/txn",
            json!({
                "compare": [{ "target": "CREATE", "key": key64,
                              "create_revision": create_revision.to_string() }],
                "success": [{ "request_delete_range": { "key": key64 } }],
            }),
        )?;
        Ok(answer["succeeded"].as_bool() == Some(true))
    }

    fn refused(&self, call: &'static str, answer: &Value) -> EtcdError {
        EtcdError::Refused {
            endpoint: self.endpoints.join(","),
            call,
            reason: answer.to_string(),
        }
    }
}

fn first_kv(kvs: &Value) -> Option<KeyValue> {
    let raw: RawKv = serde_json::from_value(kvs.get(0)?.clone()).ok()?;
    Some(KeyValue {
        value: B64.decode(raw.value).unwrap_or_default(),
        create_revision: number(raw.create_revision.as_deref()),
        lease: number(raw.lease.as_deref()),
    })
}
