//! The `spark-submit` arguments of a Spark task: the same for the local backend and for
//! an EMR step (`command-runner.jar spark-submit …`), so what runs locally is what runs on EMR.

use sluice_model::spec::SparkTask;

/// Arguments after `spark-submit`, without `--master` (the backend's choice).
pub fn arguments(task: &SparkTask, application: &str, app_name: &str) -> Vec<String> {
    let mut args = options(task, app_name);
    args.push(application.to_owned());
    args.extend(task.args.iter().cloned());
    args
}

/// The options before the application: name, class, conf, packages, files, jars (EMR
/// Serverless takes these apart from the entry point and its arguments).
pub fn options(task: &SparkTask, app_name: &str) -> Vec<String> {
    let mut args = Vec::new();
    if !task.conf.contains_key("spark.app.name") {
        args.extend(["--name".to_owned(), app_name.to_owned()]);
    }
    if let Some(class) = &task.main_class {
        args.extend(["--class".to_owned(), class.clone()]);
    }
    for (key, value) in &task.conf {
        args.extend(["--conf".to_owned(), format!("{key}={value}")]);
    }
    for (flag, list) in [
        ("--packages", &task.packages),
        ("--py-files", &task.py_files),
        ("--jars", &task.jars),
    ] {
        if !list.is_empty() {
            args.extend([flag.to_owned(), list.join(",")]);
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_files_application_and_args_in_spark_submit_order() {
        let task: SparkTask = serde_json::from_value(serde_json::json!({
            "application": "jobs/agg.py",
            "args": ["--start", "2025-09-01T10:15:00Z"],
            "conf": {"spark.sql.shuffle.partitions": "64"},
            "py_files": ["a.py", "b.zip"],
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            arguments(&task, "/dags/jobs/agg.py", "events/r/aggregate/1"),
            [
                "--name",
                "events/r/aggregate/1",
                "--conf",
                "spark.sql.shuffle.partitions=64",
                "--py-files",
                "a.py,b.zip",
                "/dags/jobs/agg.py",
                "--start",
                "2025-09-01T10:15:00Z"
            ]
        );
    }
}
