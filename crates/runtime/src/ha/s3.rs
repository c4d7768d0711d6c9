//! An S3 (or S3-compatible) bucket as a shipping target. The SDK is async; shipping runs on
//! plain threads, so the client has a small runtime of its own to wait on.

use std::path::Path;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use super::target::{Objects, TargetError};

pub struct S3Objects {
    client: Client,
    bucket: String,
    prefix: String,
    runtime: tokio::runtime::Runtime,
}

/// Where the bucket is: the region and, for an S3-compatible store (or a test server), its
/// endpoint. Credentials come from the SDK's usual chain (environment, profile, role).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Location {
    pub region: Option<String>,
    pub endpoint: Option<String>,
}

fn remote(key: &str, error: impl std::fmt::Display) -> TargetError {
    TargetError::Remote {
        key: key.to_owned(),
        reason: error.to_string(),
    }
}

/// The whole error chain: the SDK's Display alone says only "service error".
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl S3Objects {
    pub fn new(
        bucket: String,
        prefix: String,
        location: &S3Location,
    ) -> Result<S3Objects, TargetError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-s3")
            .enable_all()
            .build()
            .map_err(|e| remote(&bucket, e))?;
        let client = runtime.block_on(async {
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
            if let Some(region) = &location.region {
                loader = loader.region(aws_config::Region::new(region.clone()));
            }
            if let Some(url) = &location.endpoint {
                loader = loader.endpoint_url(url);
            }
            let shared = loader.load().await;
            let config = aws_sdk_s3::config::Builder::from(&shared)
                // Test servers and most S3-compatible stores have no per-bucket host names.
                .force_path_style(location.endpoint.is_some())
                // Checksums only where S3 requires them: some compatible stores refuse the
                // newer default trailers.
                .request_checksum_calculation(
                    aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
                )
                .build();
            Client::from_conf(config)
        });
        Ok(S3Objects {
            client,
            bucket,
            prefix,
            runtime,
        })
    }

    fn key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }
}

impl Objects for S3Objects {
    fn put(&self, key: &str, body: &[u8]) -> Result<(), TargetError> {
        let full = self.key(key);
        self.runtime
            .block_on(
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&full)
                    .body(ByteStream::from(body.to_vec()))
                    .send(),
            )
            .map(|_| ())
            .map_err(|e| remote(&full, chain(&e)))
    }

    fn put_file(&self, key: &str, file: &Path) -> Result<(), TargetError> {
        let full = self.key(key);
        self.runtime.block_on(async {
            let body = ByteStream::from_path(file)
                .await
                .map_err(|e| remote(&full, chain(&e)))?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&full)
                .body(body)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| remote(&full, chain(&e)))
        })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, TargetError> {
        let full = self.key(key);
        self.runtime.block_on(async {
            match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&full)
                .send()
                .await
            {
                Ok(object) => {
                    let bytes = object
                        .body
                        .collect()
                        .await
                        .map_err(|e| remote(&full, chain(&e)))?;
                    Ok(Some(bytes.into_bytes().to_vec()))
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                Err(e) => Err(remote(&full, chain(&e))),
            }
        })
    }

    fn list(&self, folder: &str) -> Result<Vec<String>, TargetError> {
        let prefix = format!("{}/", self.key(folder).trim_end_matches('/'));
        self.runtime.block_on(async {
            let mut names = Vec::new();
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .delimiter("/")
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| remote(&prefix, chain(&e)))?;
                for common in page.common_prefixes() {
                    if let Some(name) = common.prefix().and_then(|p| p.strip_prefix(&prefix)) {
                        names.push(name.trim_end_matches('/').to_owned());
                    }
                }
                for object in page.contents() {
                    if let Some(name) = object.key().and_then(|k| k.strip_prefix(&prefix)) {
                        names.push(name.to_owned());
                    }
                }
            }
            names.sort();
            Ok(names)
        })
    }

    fn delete(&self, key: &str) -> Result<(), TargetError> {
        let full = self.key(key);
        self.runtime
            .block_on(
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(&full)
                    .send(),
            )
            .map(|_| ())
            .map_err(|e| remote(&full, chain(&e)))
    }
}
