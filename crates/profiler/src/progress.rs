//! Progress reporting and the run's log. The library only reports; the
//! binary decides how to show it (progress bars on a terminal, nothing in
//! tests).

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Receives progress of the long steps. Implementations must tolerate calls
/// from several threads (measurements run in parallel).
pub trait Progress: Sync {
    /// A step of `total` units starts.
    fn begin(&self, _step: &str, _total: u64) {}
    /// One unit done; `what` names it.
    fn advance(&self, _what: &str) {}
    /// The current step is done.
    fn end(&self) {}
    /// A log line, for a verbose terminal.
    fn line(&self, _line: &str) {}
}

/// Progress that goes nowhere.
pub struct Silent;
impl Progress for Silent {}

/// The lines of `profile_sla.log`, timestamped, in the seed's format.
pub struct Log<'a> {
    lines: Mutex<Vec<String>>,
    sink: &'a dyn Progress,
}

impl<'a> Log<'a> {
    pub fn new(sink: &'a dyn Progress) -> Self {
        Log {
            lines: Mutex::new(Vec::new()),
            sink,
        }
    }

    fn push(&self, level: &str, msg: String) {
        let line = format!("{} - slaprof.profile - {level} - {msg}", timestamp());
        self.sink.line(&line);
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }

    pub fn info(&self, msg: impl Into<String>) {
        self.push("INFO", msg.into());
    }

    pub fn warn(&self, msg: impl Into<String>) {
        self.push("WARNING", msg.into());
    }

    pub fn error(&self, msg: impl Into<String>) {
        self.push("ERROR", msg.into());
    }

    pub fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = lines.join("\n");
        s.push('\n');
        s
    }
}

/// UTC wall-clock time as `YYYY-MM-DD HH:MM:SS`.
pub fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm), to avoid a date-time dependency for one log prefix.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_416), (2025, 11, 24));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
