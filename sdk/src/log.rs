//! Log lines go to the attempt's log through the host's `log` function, with a level.
//! Use the macros: [`error!`](crate::error), [`warn!`](crate::warn), [`info!`](crate::info),
//! [`debug!`](crate::debug). Plain `eprintln!` also lands in the log, without a level.

pub const ERROR: i32 = 0;
pub const WARN: i32 = 1;
pub const INFO: i32 = 2;
pub const DEBUG: i32 = 3;

pub fn level_name(level: i32) -> &'static str {
    match level {
        ERROR => "ERROR",
        WARN => "WARN",
        INFO => "INFO",
        _ => "DEBUG",
    }
}

#[doc(hidden)]
pub fn write(level: i32, message: &str) {
    crate::host::log(level, message)
}

/// Logs at level ERROR: `sluice_sdk::error!("{} rows rejected", n)`.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::ERROR, &format!($($arg)*)) };
}

/// Logs at level WARN.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::write($crate::log::WARN, &format!($($arg)*)) };
}

/// Logs at level INFO.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::INFO, &format!($($arg)*)) };
}

/// Logs at level DEBUG.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::write($crate::log::DEBUG, &format!($($arg)*)) };
}
