//! HTTP as the image server really behaves: redirects to mirrors on other hosts, `//` and `:`
//! in paths, stale mirrors that 404, bodies without Content-Length, dropped connections, and
//! front-ends that may or may not honour `Range`.
//!
//! [`Http::open`] makes one request starting at a byte offset; [`Body`] is a `Read` over a
//! whole file that reconnects with `Range: bytes=N-` when the connection drops or ends short,
//! a bounded number of times, and copes with a server that answers the range with a plain 200
//! (it skips the bytes it already has). DNS goes through hickory (a pure-Rust resolver reading
//! /etc/resolv.conf and /etc/hosts) so the static binary never calls glibc's NSS.

use std::io::{self, Read};
use std::thread;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use reqwest::header::{CONTENT_RANGE, RANGE};

use crate::interrupt;

/// An attempt that delivers at least this much resets the failure count: a slow but moving
/// download is not given up on, a server that closes at once every time is.
const PROGRESS_RESET: u64 = 64 * 1024;
const MAX_DELAY: Duration = Duration::from_secs(10);

/// Why a request or a download failed, worded for the user (each names the URL).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// HTTP 404, final: a stale mirror may lack a new build (the caller may fall back to an
    /// older one).
    #[error("{url} is not on the server (HTTP 404)")]
    NotFound {
        /// The URL asked for.
        url: String,
    },
    /// Any other status that is neither success nor worth retrying (a 4xx).
    #[error("{url}: the server answered HTTP {status}")]
    Status {
        /// The URL asked for.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The very first connection failed (refused, no route, name not resolved): reported at
    /// once, not retried, so that no network means no long wait.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL asked for.
        url: String,
        /// Why, as the resolver or the connection said.
        reason: String,
    },
    /// Every attempt failed with a passing error (a dropped connection, a timeout, HTTP 5xx
    /// or 429), with back-offs in between.
    #[error("download of {url} failed after {attempts} attempts: {last}")]
    Exhausted {
        /// The URL asked for.
        url: String,
        /// How many attempts failed.
        attempts: u32,
        /// Why the last one did.
        last: String,
    },
    /// The server answered something unusable: a 206 without a valid `Content-Range` or for
    /// other bytes than asked, a document larger than allowed, a failed redirect.
    #[error("{url}: {reason}")]
    Protocol {
        /// The URL asked for.
        url: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// Ctrl-C, during a back-off or a read ([`crate::interrupt`]).
    #[error("interrupted")]
    Interrupted,
    /// The HTTP client cannot be built (its TLS setup).
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

/// Why one attempt failed: worth another try, or final.
enum Failure {
    Retry(String),
    /// Connection refused, no route, name not resolved.
    Connect(String),
    Fatal(HttpError),
}

/// The client of every download, with its retry policy; cheap to clone (the clones share
/// one connection pool).
#[derive(Clone)]
pub struct Http {
    client: Client,
    attempts: u32,
    first_delay: Duration,
}

/// A response positioned in the file: its body starts at byte `start`.
pub struct Opened {
    /// The answer, its body not read yet.
    pub response: Response,
    /// The file offset the body starts at: the one asked for, or 0 when the server sent the
    /// whole file instead.
    pub start: u64,
    /// The whole file's size, when the server said.
    pub total: Option<u64>,
}

impl Http {
    /// `attempts`: tries in all for one download (at least 1); `first_delay`: the first
    /// back-off, doubled after each failure. Both come from the environment in production
    /// (`DISTROD_HTTP_RETRIES`, `DISTROD_HTTP_RETRY_DELAY_MS`).
    pub fn new(attempts: u32, first_delay: Duration) -> Result<Http, HttpError> {
        let client = Client::builder()
            .user_agent(concat!("distrod/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(20))
            // In the blocking client this bounds the request and then each body read, so a
            // stalled connection is noticed without limiting how long a download may take.
            .timeout(Duration::from_secs(60))
            .hickory_dns(true)
            .build()
            .map_err(|e| HttpError::Client(format!("{e:#}")))?;
        Ok(Http {
            client,
            attempts: attempts.max(1),
            first_delay,
        })
    }

    /// [`Http::new`] with `DISTROD_HTTP_RETRIES` attempts (default 5) and a first back-off
    /// of `DISTROD_HTTP_RETRY_DELAY_MS` milliseconds (default 500).
    pub fn from_env() -> Result<Http, HttpError> {
        let num = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default)
        };
        Http::new(
            num("DISTROD_HTTP_RETRIES", 5) as u32,
            Duration::from_millis(num("DISTROD_HTTP_RETRY_DELAY_MS", 500)),
        )
    }

    /// One request for `url` from byte `offset` on. A refused range (416) answers a fresh
    /// 200 from the start, so the caller always learns where the body starts.
    fn attempt(&self, url: &str, offset: u64) -> Result<Opened, Failure> {
        let mut req = self.client.get(url);
        if offset > 0 {
            req = req.header(RANGE, format!("bytes={offset}-"));
        }
        let response = req.send().map_err(|e| classify(url, &e))?;
        let status = response.status();
        let length = response.content_length();
        match status {
            StatusCode::OK => Ok(Opened {
                response,
                start: 0,
                total: length,
            }),
            StatusCode::PARTIAL_CONTENT => {
                let (start, total) = response
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_content_range)
                    .ok_or_else(|| {
                        Failure::Fatal(HttpError::Protocol {
                            url: url.into(),
                            reason: "206 answer without a valid Content-Range".into(),
                        })
                    })?;
                if start > offset {
                    return Err(Failure::Fatal(HttpError::Protocol {
                        url: url.into(),
                        reason: format!("asked for bytes from {offset}, got from {start}"),
                    }));
                }
                Ok(Opened {
                    response,
                    start,
                    total,
                })
            }
            StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => self.attempt(url, 0),
            StatusCode::NOT_FOUND => Err(Failure::Fatal(HttpError::NotFound { url: url.into() })),
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                Err(Failure::Retry(format!("HTTP {}", s.as_u16())))
            }
            s => Err(Failure::Fatal(HttpError::Status {
                url: url.into(),
                status: s.as_u16(),
            })),
        }
    }

    /// Opens `url` at `offset`, retrying passing failures. A host that refuses or cannot be
    /// resolved on the very first contact is reported at once: no network should not mean
    /// a long wait.
    pub fn open(&self, url: &str, offset: u64) -> Result<Opened, HttpError> {
        let mut failures = 0;
        loop {
            match self.attempt(url, offset) {
                Ok(o) => return Ok(o),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Connect(reason)) if failures == 0 => {
                    return Err(HttpError::Unreachable {
                        url: url.into(),
                        reason,
                    });
                }
                Err(Failure::Retry(reason) | Failure::Connect(reason)) => {
                    failures += 1;
                    if failures >= self.attempts {
                        return Err(HttpError::Exhausted {
                            url: url.into(),
                            attempts: failures,
                            last: reason,
                        });
                    }
                    self.back_off(failures)?;
                }
            }
        }
    }

    fn back_off(&self, failures: u32) -> Result<(), HttpError> {
        let delay = self
            .first_delay
            .saturating_mul(1 << (failures - 1).min(16))
            .min(MAX_DELAY);
        tracing::debug!(?delay, failures, "retrying");
        // Sleep in slices so Ctrl-C is honoured during a long back-off.
        let mut left = delay;
        while !left.is_zero() {
            if interrupt::requested() {
                return Err(HttpError::Interrupted);
            }
            let step = left.min(Duration::from_millis(100));
            thread::sleep(step);
            left -= step;
        }
        Ok(())
    }

    /// A small document (the catalog), read whole, with the same retries.
    pub fn get_bytes(&self, url: &str, limit: u64) -> Result<Vec<u8>, HttpError> {
        let mut body = Body::new(self.clone(), url, None, self.open(url, 0)?, 0);
        let mut out = Vec::new();
        body.by_ref()
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| into_http_error(url, e))?;
        if out.len() as u64 > limit {
            return Err(HttpError::Protocol {
                url: url.into(),
                reason: format!("larger than {limit} bytes"),
            });
        }
        Ok(out)
    }
}

/// Turns a reqwest error into a retry or a final answer.
fn classify(url: &str, e: &reqwest::Error) -> Failure {
    if e.is_connect() {
        return Failure::Connect(connect_reason(e));
    }
    if e.is_timeout() || e.is_request() || e.is_body() {
        return Failure::Retry(root_cause(e));
    }
    if e.is_redirect() {
        return Failure::Fatal(HttpError::Protocol {
            url: url.into(),
            reason: root_cause(e),
        });
    }
    Failure::Retry(root_cause(e))
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_msg = s.to_string();
        if !msg.contains(&s_msg) {
            msg = format!("{msg}: {s_msg}");
        }
        src = s.source();
    }
    msg
}

/// The useful part of a connect error: "Connection refused (os error 111)" rather than the
/// whole chain of layers that wrap it; name resolution failures said plainly.
fn connect_reason(e: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        chain.push(s.to_string());
        src = s.source();
    }
    if chain
        .iter()
        .any(|m| m.to_ascii_lowercase().contains("dns error"))
    {
        return "the host name could not be resolved".into();
    }
    chain.pop().unwrap_or_default()
}

/// `bytes 100-199/1000` → (100, Some(1000)); `bytes 100-199/*` → (100, None).
pub fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, total))
}

/// Recovers the `HttpError` a [`Body`] put into an `io::Error`.
pub fn into_http_error(url: &str, e: io::Error) -> HttpError {
    if e.get_ref().is_some_and(|i| i.is::<HttpError>()) {
        return *e.into_inner().unwrap().downcast::<HttpError>().unwrap();
    }
    HttpError::Protocol {
        url: url.into(),
        reason: e.to_string(),
    }
}

/// The bytes of one remote file from `offset` on, reconnecting as needed. Fails with an
/// `io::Error` that wraps an [`HttpError`].
pub struct Body {
    http: Http,
    url: String,
    response: Option<Response>,
    /// Position in the file of the next byte this reader returns.
    offset: u64,
    /// Bytes of the current response still to skip (a server that ignored `Range`).
    skip: u64,
    total: Option<u64>,
    failures: u32,
    since_failure: u64,
    done: bool,
}

impl Body {
    /// `expected_size` (from the catalog) lets a short body be told from a complete one even
    /// when the server sends no Content-Length.
    pub fn new(
        http: Http,
        url: &str,
        expected_size: Option<u64>,
        opened: Opened,
        offset: u64,
    ) -> Body {
        let mut b = Body {
            http,
            url: url.into(),
            response: None,
            offset,
            skip: 0,
            total: expected_size,
            failures: 0,
            since_failure: 0,
            done: false,
        };
        b.adopt(opened);
        b
    }

    /// The file's size, from the catalog or the server.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    fn adopt(&mut self, o: Opened) {
        self.skip = self.offset - o.start;
        if self.total.is_none() {
            self.total = o.total;
        }
        self.response = Some(o.response);
    }

    fn fail(&mut self, reason: String) -> io::Result<()> {
        tracing::debug!(url = %self.url, offset = self.offset, %reason, "download interrupted");
        self.response = None;
        if self.since_failure >= PROGRESS_RESET {
            self.failures = 0;
        }
        self.since_failure = 0;
        self.failures += 1;
        if self.failures >= self.http.attempts {
            return Err(io::Error::other(HttpError::Exhausted {
                url: self.url.clone(),
                attempts: self.failures,
                last: reason,
            }));
        }
        self.http
            .back_off(self.failures)
            .map_err(io::Error::other)?;
        match self.http.attempt(&self.url, self.offset) {
            Ok(o) => {
                self.adopt(o);
                Ok(())
            }
            Err(Failure::Fatal(e)) => Err(io::Error::other(e)),
            Err(Failure::Retry(reason) | Failure::Connect(reason)) => self.fail(reason),
        }
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.done {
                return Ok(0);
            }
            if interrupt::requested() {
                return Err(io::Error::other(HttpError::Interrupted));
            }
            let Some(resp) = self.response.as_mut() else {
                self.fail("no connection".into())?;
                continue;
            };
            match resp.read(buf) {
                Ok(0) => match self.total {
                    Some(t) if self.offset < t => {
                        let reason =
                            format!("the connection ended after {} of {t} bytes", self.offset);
                        self.fail(reason)?;
                    }
                    _ => {
                        self.done = true;
                        return Ok(0);
                    }
                },
                Ok(n) => {
                    let n64 = n as u64;
                    if self.skip >= n64 {
                        self.skip -= n64;
                        continue;
                    }
                    let from = self.skip as usize;
                    self.skip = 0;
                    buf.copy_within(from..n, 0);
                    let got = n - from;
                    self.offset += got as u64;
                    self.since_failure += got as u64;
                    return Ok(got);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let reason = root_cause(&e);
                    self.fail(reason)?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 100-199/1000"),
            Some((100, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_content_range("bytes x-9/10"), None);
    }
}
