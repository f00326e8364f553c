//! Time: now, expiry dates and spans (`90d`, `2027-01-31`), on jiff's calendar.

use crate::error::Error;

/// Parses `--expire`: `0`/`never`, a duration (`90d`, `12h`, `30m`, `4w`, `1y`) or a date `YYYY-MM-DD` (UTC
/// midnight). Returns epoch seconds.
pub fn parse_expire(text: &str, now: i64) -> Result<i64, Error> {
    let text = text.trim();
    let bad = || {
        Error::usage(format!("--expire `{text}` is neither a duration nor a date"))
            .with_hint("use e.g. 90d, 12h, 4w, 1y, or a date like 2026-12-31")
    };
    if text == "0" || text.eq_ignore_ascii_case("never") {
        return Ok(0);
    }
    if let Some((year, rest)) = text.split_once('-')
        && let Some((month, day)) = rest.split_once('-')
    {
        let year: i64 = year.parse().map_err(|_| bad())?;
        if year > 9999 {
            return Err(too_far(text));
        }
        let (year, month, day): (i16, i8, i8) = (
            i16::try_from(year).map_err(|_| bad())?,
            month.parse().map_err(|_| bad())?,
            day.parse().map_err(|_| bad())?,
        );
        // jiff checks the calendar: 2027-02-30 is an invalid date, not 2027-03-02.
        let date = jiff::civil::Date::new(year, month, day).map_err(|_| {
            Error::usage(format!("--expire {text} is an invalid date"))
                .with_hint("give a real calendar date as YYYY-MM-DD, e.g. 2026-12-31")
        })?;
        let epoch = date.to_zoned(jiff::tz::TimeZone::UTC).map_err(|_| too_far(text))?.timestamp().as_second();
        if epoch > EXPIRE_MAX {
            return Err(too_far(text));
        }
        if epoch <= now {
            return Err(Error::usage(format!("--expire {text} is in the past")));
        }
        return Ok(epoch);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let seconds = unit_seconds(unit).ok_or_else(bad)?;
    let number: i64 = number.parse().map_err(|_| too_far(text))?;
    if number <= 0 {
        return Err(bad());
    }
    // Overflow would wrap into a token that never expires (or one in the past): refuse instead.
    number
        .checked_mul(seconds)
        .and_then(|span| now.checked_add(span))
        .filter(|&at| at <= EXPIRE_MAX)
        .ok_or_else(|| too_far(text))
}

/// Seconds in one unit of a span: `s`, `m`/`min`, `h`, `d`, `w`, `y` (365 days).
pub fn unit_seconds(unit: &str) -> Option<i64> {
    Some(match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return None,
    })
}

/// A span such as `14d`, `12h`, `4w`, `1y`, `90m`, `30s`, in seconds (`rotate --if-*`, `exec --ttl`, apply files).
pub fn parse_span(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit_seconds(unit).ok_or_else(|| format!("'{text}' is not a span: use e.g. 14d, 12h, 4w or 1y"))?;
    number
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("'{text}' is not a span a token could have: use e.g. 14d, 12h, 4w or 1y"))
}

/// The latest expiry accepted: 9999-12-31T23:59:59Z (PVE stores a plain epoch, but nothing later is meaningful).
pub const EXPIRE_MAX: i64 = 253_402_300_799;

fn too_far(text: &str) -> Error {
    Error::usage(format!("--expire {text} is too far in the future"))
        .with_hint("the latest expiry is 9999-12-31; use 0 or never for a token that does not expire")
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::parse_expire;

    #[test]
    fn expire_accepts_durations_and_dates() {
        assert_eq!(parse_expire("90d", 1_000).expect("duration"), 1_000 + 90 * 86_400);
        assert_eq!(parse_expire("2030-01-01", 1_000).expect("date"), 1_893_456_000);
        assert_eq!(parse_expire("never", 1_000).expect("never"), 0);
        assert!(parse_expire("soon", 1_000).is_err());
        assert!(parse_expire("2001-01-01", 1_900_000_000).is_err());
    }
}
