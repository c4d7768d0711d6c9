use std::fmt;

use serde_json::Value;

/// Why a task failed, and whether trying again could help.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskError {
    pub retryable: bool,
    pub message: String,
    /// Structured detail written to the log as JSON (e.g. a data-quality report).
    pub details: Option<Value>,
}

impl TaskError {
    /// A failure that may pass on another try (a service down, a throttle, a timeout).
    pub fn retryable(message: impl Into<String>) -> TaskError {
        TaskError {
            retryable: true,
            message: message.into(),
            details: None,
        }
    }

    /// A failure that will fail again (bad input, a failed check, a bug).
    pub fn fatal(message: impl Into<String>) -> TaskError {
        TaskError {
            retryable: false,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> TaskError {
        self.details = Some(details);
        self
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = if self.retryable { "retryable" } else { "fatal" };
        write!(f, "{class}: {}", self.message)
    }
}

impl std::error::Error for TaskError {}

/// A host function refused or failed a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    pub message: String,
    /// The host says another try may succeed (e.g. ClickHouse unreachable).
    pub retryable: bool,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HostError {}

impl From<HostError> for TaskError {
    fn from(e: HostError) -> TaskError {
        TaskError {
            retryable: e.retryable,
            message: e.message,
            details: None,
        }
    }
}

impl From<serde_json::Error> for TaskError {
    fn from(e: serde_json::Error) -> TaskError {
        TaskError::fatal(format!("JSON: {e}"))
    }
}
