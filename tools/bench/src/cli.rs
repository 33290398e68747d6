//! Command-line values that clap does not know: durations.

use std::time::Duration;

/// Parses `3s`, `500ms`, `1m`, `2.5s` or a bare number of seconds; at least 100 ms, at most an
/// hour.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    let (number, factor) = if let Some(n) = lower.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = lower.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = lower.strip_suffix('m') {
        (n, 60.0)
    } else {
        (lower.as_str(), 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("duration '{text}' is not like 3s, 500ms or 1m"))?;
    let seconds = value * factor;
    if !(0.1..=3600.0).contains(&seconds) {
        return Err(format!("duration '{text}' is outside 100ms..=1h"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_and_without_units() {
        assert_eq!(parse_duration("3s").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        for bad in ["", "s", "3h", "0s", "50ms", "2h", "-1s", "fast", "nan"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
