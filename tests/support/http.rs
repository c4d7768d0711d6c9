//! Plain HTTP/1.1 exchanges over a TCP stream, for tests that must see exactly what a
//! server answers (no client crate in between).

use std::io::{Read, Write};

/// One plain HTTP/1.1 exchange (no client crate needed): the status and the body.
pub fn http(
    base_url: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), Box<dyn std::error::Error>> {
    let (status, _, body) = exchange(base_url, method, path, body, None)?;
    Ok((status, body))
}

/// The same with a bearer token, answering the response's head too (its headers).
pub fn exchange(
    base_url: &str,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> Result<(u16, String, String), Box<dyn std::error::Error>> {
    let address = base_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&address)?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, head.to_owned(), body))
}

/// The payload of a chunked HTTP body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
