//! Dates as the Date condition operators read them: W3C/ISO 8601 (`2020-04-01`,
//! `2020-04-01T00:00:00Z`, `2020-04-01T02:00:00.5+02:00`) or epoch seconds (`1585699200`), as the
//! IAM user guide's "Date condition operators" allows. No calendar crate: the policy language
//! needs only UTC instants, and days-from-civil is a few lines.

/// Milliseconds since the Unix epoch for a policy or request date; `None` when it is neither
/// form. A value without a zone is UTC.
pub(crate) fn parse_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i64>().ok()?.checked_mul(1000);
    }
    let bytes = text.as_bytes();
    let year = number(bytes, 0, 4)?;
    expect(bytes, 4, b'-')?;
    let month = number(bytes, 5, 2)?;
    expect(bytes, 7, b'-')?;
    let day = number(bytes, 8, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut at = 10;
    let (mut hour, mut minute, mut second, mut millis) = (0, 0, 0, 0);
    if at < bytes.len() && (bytes[at] == b'T' || bytes[at] == b't') {
        hour = number(bytes, at + 1, 2)?;
        expect(bytes, at + 3, b':')?;
        minute = number(bytes, at + 4, 2)?;
        at += 6;
        if at < bytes.len() && bytes[at] == b':' {
            second = number(bytes, at + 1, 2)?;
            at += 3;
            if at < bytes.len() && bytes[at] == b'.' {
                let start = at + 1;
                let mut end = start;
                while end < bytes.len() && bytes[end].is_ascii_digit() {
                    end += 1;
                }
                if end == start {
                    return None;
                }
                // Milliseconds: the first three digits, right-padded.
                let digits: String = text[start..end.min(start + 3)].to_string();
                millis = format!("{digits:0<3}").parse::<i64>().ok()?;
                at = end;
            }
        }
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
    }
    let offset_minutes = match bytes.get(at) {
        None => 0,
        Some(b'Z' | b'z') if at + 1 == bytes.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let hours = number(bytes, at + 1, 2)?;
            let minutes_at = if bytes.get(at + 3) == Some(&b':') { at + 4 } else { at + 3 };
            let minutes = number(bytes, minutes_at, 2)?;
            if minutes_at + 2 != bytes.len() || hours > 23 || minutes > 59 {
                return None;
            }
            let total = hours * 60 + minutes;
            if sign == b'+' { total } else { -total }
        }
        Some(_) => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    seconds.checked_mul(1000)?.checked_add(millis)
}

/// `2020-04-01T00:00:00Z`: how `aws:CurrentTime` reads when a string operator compares it.
pub(crate) fn format_iso8601(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", in_day / 3600, (in_day % 3600) / 60, in_day % 60)
}

fn number(bytes: &[u8], at: usize, len: usize) -> Option<i64> {
    let digits = bytes.get(at..at + len)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0i64, |acc, d| Some(acc * 10 + i64::from(d - b'0')))
}

fn expect(bytes: &[u8], at: usize, byte: u8) -> Option<()> {
    (bytes.get(at) == Some(&byte)).then_some(())
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_and_epoch_seconds_name_the_same_instant() {
        assert_eq!(parse_ms("1585699200"), Some(1_585_699_200_000));
        assert_eq!(parse_ms("2020-04-01T00:00:00Z"), Some(1_585_699_200_000));
        assert_eq!(parse_ms("2020-04-01"), Some(1_585_699_200_000));
        assert_eq!(parse_ms("2020-04-01T02:00:00+02:00"), Some(1_585_699_200_000));
        assert_eq!(parse_ms("2020-04-01T00:00:00.250Z"), Some(1_585_699_200_250));
        assert_eq!(parse_ms("2020-03-31T19:00-0500"), Some(1_585_699_200_000));
        assert_eq!(parse_ms("2020-02-30"), None);
        assert_eq!(parse_ms("yesterday"), None);
        assert_eq!(parse_ms("2020-04-01T00:00:00Zjunk"), None);
    }

    #[test]
    fn current_time_formats_as_iso8601_utc() {
        assert_eq!(format_iso8601(1_585_699_200_999), "2020-04-01T00:00:00Z");
        assert_eq!(format_iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_ms(&format_iso8601(951_782_400_000)), Some(951_782_400_000)); // 2000-02-29
    }
}
