//! The services of the HA tests, started by scripts/test: etcd (`scripts/services/etcd`,
//! its client URL in SLUICE_TEST_ETCD_URL) and moto's S3 server (`scripts/services/s3`,
//! SLUICE_TEST_S3_ENDPOINT).

type Error = Box<dyn std::error::Error>;

pub fn etcd_url() -> String {
    match std::env::var("SLUICE_TEST_ETCD_URL") {
        Ok(url) => url,
        Err(_) => panic!(
            "SLUICE_TEST_ETCD_URL is not set: start etcd with `scripts/services/etcd start` (scripts/test does)"
        ),
    }
}

pub fn s3_endpoint() -> String {
    match std::env::var("SLUICE_TEST_S3_ENDPOINT") {
        Ok(url) => url,
        Err(_) => panic!(
            "SLUICE_TEST_S3_ENDPOINT is not set: start the S3 server with `scripts/services/s3 start` (scripts/test does)"
        ),
    }
}

/// Creates a bucket on the S3 test server (it takes unsigned requests).
pub fn create_bucket(name: &str) -> Result<(), Error> {
    let (status, body) = crate::http(&s3_endpoint(), "PUT", &format!("/{name}"), "")?;
    if status != 200 {
        return Err(format!("creating bucket {name}: {status} {body}").into());
    }
    Ok(())
}

/// The keys under `prefix` in a bucket of the S3 test server.
pub fn list_keys(bucket: &str, prefix: &str) -> Result<Vec<String>, Error> {
    let (status, body) = crate::http(
        &s3_endpoint(),
        "GET",
        &format!("/{bucket}?list-type=2&prefix={prefix}"),
        "",
    )?;
    if status != 200 {
        return Err(format!("listing {bucket}: {status} {body}").into());
    }
    Ok(body
        .split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split("</Key>").next())
        .map(str::to_owned)
        .collect())
}
