//! What environment a task's process starts with: none of the scheduler's own, only an
//! allowlist. The scheduler's environment holds its secrets (`SLUICE_API_TOKEN`, connection
//! passwords, cloud keys); a task sees the names below, the ones the operator passes
//! through (`scheduler.task_env`), its own `env:` and the `SLUICE_*` of its attempt.

/// Names every task gets from the scheduler's environment: what a shell, Java and Python
/// need to start (local Spark among them).
pub const BASE: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "JAVA_HOME",
    "SPARK_HOME",
    "PYSPARK_PYTHON",
    "PYSPARK_DRIVER_PYTHON",
    "VIRTUAL_ENV",
];

/// Whether an environment variable's name matches one of the operator's patterns: a name,
/// or a prefix ending in `*` (`scheduler.task_env`, `plugin_grants.env`).
pub fn any_matches(patterns: &[String], name: &str) -> bool {
    patterns
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => pattern == name,
        })
}

/// The names a task's process inherits: [`BASE`] and the operator's own, each a name or a
/// prefix ending in `*` (`AWS_PROFILE`, `SPARK_*`).
#[derive(Debug, Clone, Default)]
pub struct TaskEnv {
    passed: Vec<String>,
}

impl TaskEnv {
    pub fn new(passed: Vec<String>) -> TaskEnv {
        TaskEnv { passed }
    }

    pub fn allows(&self, name: &str) -> bool {
        BASE.contains(&name) || any_matches(&self.passed, name)
    }

    /// Clears the command's environment and puts back what is allowed.
    pub fn apply(&self, command: &mut tokio::process::Command) {
        command.env_clear();
        for (name, value) in std::env::vars_os() {
            if name.to_str().is_some_and(|n| self.allows(n)) {
                command.env(name, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_base_and_the_passed_names_are_allowed() {
        let env = TaskEnv::new(vec!["AWS_PROFILE".into(), "SPARK_CONF_*".into()]);
        for allowed in ["PATH", "HOME", "AWS_PROFILE", "SPARK_CONF_DIR"] {
            assert!(env.allows(allowed), "{allowed}");
        }
        for refused in [
            "SLUICE_API_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "CLICKHOUSE_PASSWORD",
            "SLUICE_CONN_WAREHOUSE",
            "AWS_PROFILE_X",
        ] {
            assert!(!env.allows(refused), "{refused}");
        }
    }
}
