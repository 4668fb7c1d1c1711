//! When to try a Google call again, and how long to wait first.
//!
//! Truncated exponential backoff with jitter, as Google asks of Drive clients: the n-th retry
//! waits `base * 2^n` plus up to `jitter` of random time, never more than `cap`; a `Retry-After`
//! the server sent is honoured (waited at least, up to `max_retry_after`). A call is tried at most
//! `max_tries` times. The delays are a pure function of the attempt and a random fraction, so they
//! are tested without sleeping.

use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;

/// How a Google call is retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first retry waits this long (plus jitter); each further one twice as long.
    pub base: Duration,
    /// Random time added to each wait, from zero up to this.
    pub jitter: Duration,
    /// No wait computed from `base` is longer than this.
    pub cap: Duration,
    /// A server's `Retry-After` is honoured up to this long.
    pub max_retry_after: Duration,
    /// Tries in all (the first one included) before a call gives up.
    pub max_tries: u32,
}

impl Default for RetryPolicy {
    /// 1, 2, 4, ... 64 s plus up to 1 s; 8 tries (about two minutes of waiting at worst).
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(1),
            jitter: Duration::from_secs(1),
            cap: Duration::from_secs(64),
            max_retry_after: Duration::from_secs(300),
            max_tries: 8,
        }
    }
}

impl RetryPolicy {
    /// A policy for tests: the same shape with millisecond waits.
    pub fn fast() -> Self {
        RetryPolicy {
            base: Duration::from_millis(5),
            jitter: Duration::from_millis(5),
            cap: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(2),
            max_tries: 6,
        }
    }

    /// The wait before retry number `retry` (0 for the first retry), with `fraction` in [0, 1)
    /// choosing the jitter.
    pub fn delay_with(&self, retry: u32, retry_after: Option<Duration>, fraction: f64) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        let exp = self.base.saturating_mul(factor).min(self.cap);
        let jitter = self.jitter.mul_f64(fraction.clamp(0.0, 1.0));
        let backoff = exp.saturating_add(jitter).min(self.cap.max(self.base));
        match retry_after {
            Some(ra) => backoff.max(ra.min(self.max_retry_after)),
            None => backoff,
        }
    }

    /// The wait before retry number `retry`, with random jitter.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        self.delay_with(retry, retry_after, rand::thread_rng().gen::<f64>())
    }

    /// Sleeps before retry number `retry`.
    pub fn wait(&self, retry: u32, retry_after: Option<Duration>) {
        let d = self.delay(retry, retry_after);
        tracing::debug!(
            retry,
            wait_ms = d.as_millis() as u64,
            "retrying a Google Drive call"
        );
        std::thread::sleep(d);
    }
}

/// Whether Google asks the client to slow down or try again: 429, 5xx, and the 403s that mean
/// a rate limit. (`storageQuotaExceeded` and the daily limit are 403s that waiting does not cure.)
pub fn is_retryable(status: StatusCode, reason: Option<&str>) -> bool {
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return true;
    }
    status == StatusCode::FORBIDDEN
        && matches!(reason, Some("rateLimitExceeded" | "userRateLimitExceeded"))
}

/// `Retry-After` in seconds (the HTTP-date form is not used by Google APIs and is ignored).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    let secs: u64 = value?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_the_base_plus_jitter_up_to_the_cap() {
        let p = RetryPolicy::default();
        let s = Duration::from_secs;
        assert_eq!(p.delay_with(0, None, 0.0), s(1));
        assert_eq!(p.delay_with(1, None, 0.0), s(2));
        assert_eq!(p.delay_with(2, None, 0.0), s(4));
        assert_eq!(p.delay_with(5, None, 0.0), s(32));
        assert_eq!(p.delay_with(6, None, 0.0), s(64));
        assert_eq!(p.delay_with(7, None, 0.0), s(64));
        assert_eq!(p.delay_with(40, None, 0.99), s(64));
        assert_eq!(p.delay_with(0, None, 0.5), Duration::from_millis(1500));
        assert_eq!(p.delay_with(3, None, 0.25), Duration::from_millis(8250));
        // Random jitter stays within its bound.
        for retry in 0..8 {
            for _ in 0..50 {
                let d = p.delay(retry, None);
                let floor = s(1u64 << retry).min(s(64));
                assert!(
                    d >= floor && d <= (floor + s(1)).min(s(64)),
                    "{retry}: {d:?}"
                );
            }
        }
    }

    #[test]
    fn retry_after_is_honoured_within_its_limit() {
        let p = RetryPolicy::default();
        let s = Duration::from_secs;
        assert_eq!(p.delay_with(0, Some(s(10)), 0.0), s(10));
        // A shorter Retry-After than the backoff does not shorten the wait.
        assert_eq!(p.delay_with(4, Some(s(2)), 0.0), s(16));
        // An absurd one is cut to max_retry_after.
        assert_eq!(p.delay_with(0, Some(s(86_400)), 0.0), s(300));
        let fast = RetryPolicy::fast();
        assert_eq!(fast.delay_with(0, Some(s(1)), 0.0), s(1));
        assert_eq!(fast.delay_with(9, None, 0.0), Duration::from_millis(100));
    }

    #[test]
    fn what_is_retried() {
        let s = |c: u16| StatusCode::from_u16(c).unwrap();
        assert!(is_retryable(s(429), None));
        assert!(is_retryable(s(500), Some("backendError")));
        assert!(is_retryable(s(502), None));
        assert!(is_retryable(s(503), None));
        assert!(is_retryable(s(403), Some("rateLimitExceeded")));
        assert!(is_retryable(s(403), Some("userRateLimitExceeded")));
        assert!(!is_retryable(s(403), Some("storageQuotaExceeded")));
        assert!(!is_retryable(s(403), Some("dailyLimitExceeded")));
        assert!(!is_retryable(s(403), Some("insufficientPermissions")));
        assert!(!is_retryable(s(400), None));
        assert!(!is_retryable(s(401), None));
        assert!(!is_retryable(s(404), None));
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        assert_eq!(parse_retry_after(Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(Some(" 0 ")), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(parse_retry_after(None), None);
    }
}
