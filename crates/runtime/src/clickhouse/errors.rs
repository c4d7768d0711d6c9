//! Which ClickHouse failures another try can fix.

/// Server error codes that are about load, time or the network, not the statement:
/// TIMEOUT_EXCEEDED, TOO_MANY_SIMULTANEOUS_QUERIES, SOCKET_TIMEOUT, NETWORK_ERROR,
/// MEMORY_LIMIT_EXCEEDED, TABLE_IS_READ_ONLY, TOO_MANY_PARTS, UNKNOWN_STATUS_OF_INSERT,
/// ALL_CONNECTION_TRIES_FAILED, KEEPER_EXCEPTION; and FUNCTION_THROW_IF_VALUE_IS_NON_ZERO:
/// `SELECT throwIf(<data not ready>)` is how a ClickHouse task waits for data (a sensor,
/// through its retries): the data can change, so another try can pass.
const RETRYABLE_CODES: [u32; 11] = [159, 202, 209, 210, 241, 242, 252, 319, 279, 999, 395];

/// The server's error code in a ClickHouse error text (`Code: 62, e.displayText() = …`).
pub fn code(text: &str) -> Option<u32> {
    let rest = text.split("Code: ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Whether a failure is worth another try: network and timeouts are; server errors are
/// when their code says so; anything else (syntax, unknown table, types) is not.
pub fn is_retryable(error: &::clickhouse::error::Error) -> bool {
    use ::clickhouse::error::Error;
    match error {
        Error::Network(_) | Error::TimedOut => true,
        Error::BadResponse(text) => code(text).is_some_and(|c| RETRYABLE_CODES.contains(&c)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_from_server_errors() {
        assert_eq!(
            code("Code: 62, e.displayText() = DB::Exception: Syntax error"),
            Some(62)
        );
        assert_eq!(
            code("Code: 241. DB::Exception: Memory limit (total) exceeded"),
            Some(241)
        );
        assert_eq!(code("no code here"), None);
        assert!(!is_retryable(&::clickhouse::error::Error::BadResponse(
            "Code: 62, Syntax error".into()
        )));
        assert!(is_retryable(&::clickhouse::error::Error::BadResponse(
            "Code: 241, memory".into()
        )));
        assert!(is_retryable(&::clickhouse::error::Error::TimedOut));
        assert!(is_retryable(&::clickhouse::error::Error::BadResponse(
            "Code: 395, e.displayText() = DB::Exception: Value passed to 'throwIf' function is non zero".into()
        )));
    }
}
