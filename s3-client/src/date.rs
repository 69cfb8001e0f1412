//! The request time as SigV4 writes it (`20130524T000000Z`), from the system clock. Done
//! by hand because it is one calendar conversion, not worth a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC time in the ISO 8601 basic form SigV4 signs and sends as `x-amz-date`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AmzDate(String);

impl AmzDate {
    pub(crate) fn now() -> Self {
        // A clock before 1970 is a broken host; signing it as 1970 gets a clear
        // RequestTimeTooSkewed from the server rather than a panic here.
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or(0);
        Self::from_unix_seconds(seconds)
    }

    pub(crate) fn from_unix_seconds(seconds: u64) -> Self {
        let days = seconds / 86_400;
        let in_day = seconds % 86_400;
        let (year, month, day) = civil_from_days(days);
        Self(format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", in_day / 3600, in_day % 3600 / 60, in_day % 60))
    }

    /// `20130524T000000Z`.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// `20130524`: the day in the credential scope.
    pub(crate) fn day(&self) -> &str {
        self.0.get(..8).unwrap_or(&self.0)
    }
}

/// Year, month (1–12) and day (1–31) of the proleptic Gregorian calendar, `days` after
/// 1970-01-01. Counts in 400-year eras that start on 1 March, so that the leap day is
/// the last day of its year and each era has the same 146,097 days.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // 1970-01-01 is day 719,468 after 0000-03-01.
    let since_era_zero = days + 719_468;
    let era = since_era_zero / 146_097;
    let day_of_era = since_era_zero % 146_097;
    // Leap days fall every 4 years (1,460 days), except every 100 (36,524), except every
    // 400 (the era's last day, 146,096).
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March: 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31, 28/29 repeat with a
    // period of 153 days per 5 months.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        // Checked against `date -u -d @SECONDS`.
        let cases = [
            (0, "19700101T000000Z"),
            (1_369_353_600, "20130524T000000Z"),
            (951_782_400, "20000229T000000Z"),
            (951_868_799, "20000229T235959Z"),
            (4_102_444_799, "20991231T235959Z"),
            (1_700_000_000, "20231114T221320Z"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(AmzDate::from_unix_seconds(seconds).as_str(), expected, "{seconds}");
        }
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        // 1970 to 2200: each day is the previous one plus one, months and years roll over.
        let mut previous = civil_from_days(0);
        for days in 1..84_000 {
            let (year, month, day) = civil_from_days(days);
            let (p_year, p_month, p_day) = previous;
            let next_day = (year, month, day) == (p_year, p_month, p_day + 1);
            let next_month = (year, month, day) == (p_year, p_month + 1, 1) && p_day >= 28;
            let next_year = (year, month, day) == (p_year + 1, 1, 1) && (p_month, p_day) == (12, 31);
            assert!(next_day || next_month || next_year, "{previous:?} -> {:?}", (year, month, day));
            previous = (year, month, day);
        }
    }

    #[test]
    fn the_day_is_the_scope_date() {
        assert_eq!(AmzDate::from_unix_seconds(1_369_353_600).day(), "20130524");
    }
}
