//! A request's deadline from its `grpc-timeout` header (the gRPC wire
//! format: up to eight ASCII digits, then a unit `H M S m u n`), so work
//! queued for compute can be skipped once nobody will read its answer.

use std::time::{Duration, Instant};

/// The deadline `request` carries, measured from now; `None` when it has
/// no `grpc-timeout` header or the header is malformed (a bad header means
/// "no deadline", as tonic's own timeout layer treats it).
pub fn of_request<T>(request: &tonic::Request<T>) -> Option<Instant> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    Some(Instant::now() + parse_timeout(value)?)
}

/// Parses a `grpc-timeout` value such as `250m` or `5S`.
pub fn parse_timeout(value: &str) -> Option<Duration> {
    let (unit_at, _) = value.char_indices().last()?;
    let (digits, unit) = value.split_at(unit_at);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses() {
        assert_eq!(parse_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(
            parse_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
    }

    #[test]
    fn malformed_values_are_no_deadline() {
        for bad in [
            "",
            "m",
            "12",
            "123456789m",
            "1.5S",
            "-1S",
            "10x",
            "١S",
            "5١",
        ] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_header_sets_a_deadline_from_now() {
        let mut r = tonic::Request::new(());
        assert!(of_request(&r).is_none());
        r.metadata_mut()
            .insert("grpc-timeout", "100m".parse().expect("ascii"));
        let d = of_request(&r).expect("deadline");
        let left = d.saturating_duration_since(Instant::now());
        assert!(left <= Duration::from_millis(100) && left > Duration::from_millis(50));
    }
}
