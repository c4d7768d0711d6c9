//! The EMR test server (moto's EMR backend behind tests/emr_server/server.py, started by
//! scripts/test through scripts/services/emr, its address in SLUICE_TEST_EMR_ENDPOINT):
//! an SDK client, a cluster, and its control API (steps, faults).

use aws_sdk_emr::types::{InstanceGroupConfig, InstanceRoleType, JobFlowInstancesConfig};

type Error = Box<dyn std::error::Error>;

pub fn endpoint() -> String {
    match std::env::var("SLUICE_TEST_EMR_ENDPOINT") {
        Ok(url) => url,
        Err(_) => panic!(
            "SLUICE_TEST_EMR_ENDPOINT is not set: start the EMR test server with `scripts/services/emr start` (scripts/test does)"
        ),
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("{e}"),
    }
}

pub async fn client() -> aws_sdk_emr::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(aws_sdk_emr::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    aws_sdk_emr::Client::new(&config)
}

/// A long-running cluster of the test server.
pub fn cluster() -> Result<String, Error> {
    cluster_named("sluice-test")
}

/// A long-running cluster of the test server with this name; its id.
pub fn cluster_named(name: &str) -> Result<String, Error> {
    runtime().block_on(async {
        let group = InstanceGroupConfig::builder()
            .instance_role(InstanceRoleType::Master)
            .instance_type("m5.xlarge")
            .instance_count(1)
            .build();
        let out = client()
            .await
            .run_job_flow()
            .name(name)
            .release_label("emr-7.5.0")
            .instances(
                JobFlowInstancesConfig::builder()
                    .instance_groups(group)
                    .keep_job_flow_alive_when_no_steps(true)
                    .build(),
            )
            .job_flow_role("EMR_EC2_DefaultRole")
            .service_role("EMR_DefaultRole")
            .send()
            .await?;
        Ok(out.job_flow_id().unwrap_or_default().to_owned())
    })
}

#[derive(Debug, serde::Deserialize)]
pub struct Step {
    pub id: String,
    pub name: String,
    pub state: String,
    pub args: Vec<String>,
}

/// The cluster's steps, oldest first, from the server's control API.
pub fn steps(cluster: &str) -> Result<Vec<Step>, Error> {
    let body = http("GET", &format!("/_sluice/steps?cluster_id={cluster}"), "")?;
    Ok(serde_json::from_str(&body)?)
}

pub fn fault(cluster: &str, operation: &str, status: u16, count: u32) -> Result<(), Error> {
    let body = serde_json::json!({"operation": operation, "cluster_id": cluster, "status": status, "count": count});
    http("POST", "/_sluice/faults", &body.to_string()).map(|_| ())
}

/// An exchange with the test server's control API.
pub fn http(method: &str, path: &str, body: &str) -> Result<String, Error> {
    Ok(crate::http(&endpoint(), method, path, body)?.1)
}

/// A started EMR Serverless SPARK application of the test server; its id.
pub fn serverless_application(name: &str) -> Result<String, Error> {
    let body = http(
        "POST",
        "/_sluice/application",
        &serde_json::json!({ "name": name }).to_string(),
    )?;
    let created: serde_json::Value = serde_json::from_str(&body)?;
    Ok(created["id"]
        .as_str()
        .ok_or("the test server created no application")?
        .to_owned())
}

/// An EMR Serverless job run as the test server's control API lists it.
#[derive(Debug, serde::Deserialize)]
pub struct JobRun {
    pub id: String,
    pub name: Option<String>,
    pub state: String,
    pub client_token: Option<String>,
    pub args: Vec<String>,
    pub parameters: Option<String>,
    pub timeout_minutes: Option<u64>,
}

/// The application's job runs, oldest first.
pub fn job_runs(application: &str) -> Result<Vec<JobRun>, Error> {
    let body = http(
        "GET",
        &format!("/_sluice/jobruns?application_id={application}"),
        "",
    )?;
    Ok(serde_json::from_str(&body)?)
}

/// The next `count` calls of an EMR Serverless operation on the application fail with
/// `status`; with `answer_lost` the call takes effect first and only its answer fails.
pub fn serverless_fault(
    application: &str,
    operation: &str,
    status: u16,
    count: u32,
    answer_lost: bool,
) -> Result<(), Error> {
    let body = serde_json::json!({"operation": operation, "application_id": application,
        "status": status, "count": count, "after": answer_lost});
    http("POST", "/_sluice/faults", &body.to_string()).map(|_| ())
}

/// How many calls of each operation the test server answered.
pub fn calls() -> Result<std::collections::BTreeMap<String, u64>, Error> {
    Ok(serde_json::from_str(&http("GET", "/_sluice/calls", "")?)?)
}
