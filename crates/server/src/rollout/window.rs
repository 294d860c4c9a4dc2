//! Maintenance windows (AWS `schedulingConfig.maintenanceWindows`): recurring spans of time,
//! each an AWS cron expression for its start and a duration, outside of which a rollout
//! notifies no new execution.
//!
//! # Syntax
//!
//! AWS's cron expressions (the EventBridge form AWS IoT Jobs takes), in UTC:
//! `cron(<minutes> <hours> <day-of-month> <month> <day-of-week> <year>)`, six fields.
//! Each field takes `*`, a value, a range `a-b`, a list `a,b`, and a step `a/n` or `*/n`;
//! months are 1–12 or `JAN`–`DEC`, days of the week 1–7 = `SUN`–`SAT` (AWS's numbering,
//! not Unix's 0–6), years 1970–2100. Exactly one of day-of-month and day-of-week is `?`
//! (AWS refuses an expression with both or neither). AWS's `L`, `W` and `#` are not
//! supported and are refused, never ignored.
//!
//! Decision: the expression is evaluated by the `cron` crate (Quartz syntax, which is AWS's
//! with a leading seconds field and the same 1 = Sunday numbering); this module only checks
//! AWS's shape and adds `0` seconds.
//!
//! # Meaning
//!
//! A window is open from each instant its expression names, for `durationInMinutes`; the
//! windows of several expressions add up (open when any is). With no window at all, the
//! rollout is always open.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use cron::Schedule;
use ferrota_api::MaintenanceWindow;

/// At most this many windows per job. AWS's API reference gives no cap on the list (each
/// entry is 1–1430 minutes); Ferrota takes 100, enough for one per weekday and hour bands,
/// and bounded so a request cannot make every scheduling step walk thousands of schedules.
pub const MAX_WINDOWS: usize = 100;

/// How many merged windows [`Windows::closes_at`] follows before it stops looking (windows
/// that overlap or touch chain into one opening).
const MAX_CHAIN: usize = 1000;

/// Why a window was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The expression is not AWS's `cron(…)` form, or a field is out of range.
    #[error("{0}")]
    Cron(String),
    /// `durationInMinutes` outside 1–1430.
    #[error("durationInMinutes must be 1-1430")]
    Duration,
}

/// One parsed window.
#[derive(Debug, Clone)]
struct Window {
    schedule: Schedule,
    /// Length, seconds.
    duration: u64,
}

/// A job's maintenance windows, parsed. Cheap to ask; built once from the stored config.
#[derive(Debug, Clone, Default)]
pub struct Windows {
    list: Vec<Window>,
}

/// Parses one AWS cron expression (`cron(0 2 * * ? *)`) into a schedule. The error says
/// what is wrong in words.
pub fn parse_cron(expr: &str) -> Result<Schedule, WindowError> {
    let inner = expr
        .trim()
        .strip_prefix("cron(")
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| {
            WindowError::Cron(format!(
                "'{expr}' is not an AWS cron expression: expected cron(minutes hours day-of-month month day-of-week year)"
            ))
        })?;
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(WindowError::Cron(format!(
            "'{expr}' has {} fields; AWS cron takes 6: minutes hours day-of-month month day-of-week year",
            fields.len()
        )));
    }
    if let Some(bad) = fields
        .iter()
        .find(|f| f.contains(['L', 'W', '#']) && !is_name_field(f))
    {
        return Err(WindowError::Cron(format!(
            "'{expr}': '{bad}' uses L, W or #, which Ferrota does not support"
        )));
    }
    let (dom, dow) = (fields[2], fields[4]);
    if (dom == "?") == (dow == "?") {
        return Err(WindowError::Cron(format!(
            "'{expr}': exactly one of day-of-month and day-of-week must be '?'"
        )));
    }
    if fields[0] == "?" || fields[1] == "?" || fields[3] == "?" || fields[5] == "?" {
        return Err(WindowError::Cron(format!(
            "'{expr}': '?' is only allowed in day-of-month or day-of-week"
        )));
    }
    let quartz = format!("0 {}", fields.join(" "));
    Schedule::from_str(&quartz).map_err(|e| WindowError::Cron(format!("'{expr}': {e}")))
}

/// Whether a field holding `L`/`W` letters is just names (`WED`, `JUL`, `SAT-SUN`), which are
/// fine.
fn is_name_field(f: &str) -> bool {
    const NAMES: [&str; 19] = [
        "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "JAN", "FEB", "MAR", "APR", "MAY", "JUN",
        "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    f.split([',', '-', '/']).all(|p| {
        p.parse::<u32>().is_ok() || p == "*" || NAMES.contains(&p.to_ascii_uppercase().as_str())
    })
}

fn at(t: u64) -> DateTime<Utc> {
    // Beyond chrono's range (year 262143) nothing is scheduled anyway: clamp.
    DateTime::from_timestamp(i64::try_from(t).unwrap_or(i64::MAX / 2), 0)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn secs(d: DateTime<Utc>) -> u64 {
    u64::try_from(d.timestamp()).unwrap_or(0)
}

impl Window {
    /// The start of the occurrence open at `t`, if one is.
    fn open_since(&self, t: u64) -> Option<u64> {
        // `after` is exclusive: the first start in (t - duration, …].
        let from = t.saturating_sub(self.duration);
        let s = self.schedule.after(&at(from)).next().map(secs)?;
        (s <= t).then_some(s)
    }

    /// The first start strictly after `t`.
    fn next_start(&self, t: u64) -> Option<u64> {
        self.schedule.after(&at(t)).next().map(secs)
    }
}

impl Windows {
    /// Parses AWS's `maintenanceWindows` (at most [`MAX_WINDOWS`]; the caller reports the
    /// count with AWS's field path). The error names the entry's fault.
    pub fn parse(list: &[MaintenanceWindow]) -> Result<Windows, (usize, WindowError)> {
        let mut out = Vec::with_capacity(list.len());
        for (i, w) in list.iter().enumerate() {
            if !(1..=1430).contains(&w.duration_in_minutes) {
                return Err((i, WindowError::Duration));
            }
            let schedule = parse_cron(&w.start_time).map_err(|e| (i, e))?;
            out.push(Window {
                schedule,
                duration: w.duration_in_minutes * 60,
            });
        }
        Ok(Windows { list: out })
    }

    /// Whether there is no window (the rollout is never held back by one).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether new executions may be notified at `t` (epoch seconds): inside any window, or
    /// there is none. A window is open on `[start, start + duration)`.
    pub fn is_open(&self, t: u64) -> bool {
        self.list.is_empty() || self.list.iter().any(|w| w.open_since(t).is_some())
    }

    /// The first instant at or after `t` at which a window is open: `t` itself when open now
    /// (or there is no window); `None` when no window opens again (every expression's years
    /// are past).
    pub fn next_open(&self, t: u64) -> Option<u64> {
        if self.is_open(t) {
            return Some(t);
        }
        self.list.iter().filter_map(|w| w.next_start(t)).min()
    }

    /// When the opening that holds `t` ends: windows that overlap or touch count as one.
    /// `None` when closed at `t`, or when there is no window (never closes).
    pub fn closes_at(&self, t: u64) -> Option<u64> {
        if self.list.is_empty() {
            return None;
        }
        let mut end = self.end_of_open(t)?;
        for _ in 0..MAX_CHAIN {
            match self.end_of_open(end) {
                Some(e) if e > end => end = e,
                _ => break,
            }
        }
        Some(end)
    }

    /// The latest end among the occurrences open at `t`.
    fn end_of_open(&self, t: u64) -> Option<u64> {
        self.list
            .iter()
            .filter_map(|w| w.open_since(t).map(|s| s + w.duration))
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mw(cron: &str, minutes: u64) -> MaintenanceWindow {
        MaintenanceWindow {
            start_time: cron.into(),
            duration_in_minutes: minutes,
        }
    }

    /// 2026-12-07 (a Monday) 00:00 UTC.
    const MON: u64 = 1_796_601_600;
    const H: u64 = 3600;
    const DAY: u64 = 24 * H;

    #[test]
    fn monday_constant_is_a_monday() {
        assert_eq!(
            at(MON).format("%a %F %T").to_string(),
            "Mon 2026-12-07 00:00:00"
        );
    }

    #[test]
    fn daily_window_opens_and_closes() {
        let w = Windows::parse(&[mw("cron(0 2 * * ? *)", 60)]).unwrap();
        assert!(w.is_open(MON + 2 * H + 30 * 60));
        assert!(w.is_open(MON + 2 * H));
        assert!(!w.is_open(MON + 3 * H));
        assert!(!w.is_open(MON + 2 * H - 60));
        assert_eq!(w.next_open(MON + 3 * H), Some(MON + DAY + 2 * H));
        assert_eq!(w.next_open(MON + 2 * H + 5), Some(MON + 2 * H + 5));
        assert_eq!(w.next_open(MON + H), Some(MON + 2 * H));
        assert_eq!(w.closes_at(MON + 2 * H + 30 * 60), Some(MON + 3 * H));
        assert_eq!(w.closes_at(MON + 3 * H), None);
    }

    #[test]
    fn weekly_monday_window_by_name_and_by_aws_number() {
        // AWS numbers days 1-7 = SUN-SAT: Monday is 2 (Unix would say 1).
        for expr in ["cron(30 22 ? * MON *)", "cron(30 22 ? * 2 *)"] {
            let w = Windows::parse(&[mw(expr, 120)]).unwrap();
            assert!(w.is_open(MON + 23 * H), "{expr}");
            assert!(!w.is_open(MON + 23 * H + DAY), "{expr}: Tuesday");
            assert!(!w.is_open(MON + 23 * H - DAY), "{expr}: Sunday");
            // Open across midnight into Tuesday.
            assert!(w.is_open(MON + DAY + 15 * 60), "{expr}");
            assert_eq!(w.closes_at(MON + 23 * H), Some(MON + DAY + 30 * 60));
            assert_eq!(
                w.next_open(MON + DAY + H),
                Some(MON + 7 * DAY + 22 * H + 30 * 60)
            );
        }
    }

    #[test]
    fn ranges_lists_steps_and_month_names() {
        let w = Windows::parse(&[mw("cron(0/30 8-9,20 ? DEC MON-FRI 2026)", 10)]).unwrap();
        assert!(w.is_open(MON + 8 * H + 30 * 60 + 5));
        assert!(w.is_open(MON + 20 * H));
        assert!(!w.is_open(MON + 10 * H));
        // Saturday: closed.
        assert!(!w.is_open(MON + 5 * DAY + 8 * H));
        // The year 2026 ends: never again.
        assert_eq!(w.next_open(MON + 30 * DAY), None);
    }

    #[test]
    fn touching_windows_close_together() {
        let w =
            Windows::parse(&[mw("cron(0 2 * * ? *)", 60), mw("cron(0 3 * * ? *)", 30)]).unwrap();
        assert!(w.is_open(MON + 3 * H));
        assert_eq!(w.closes_at(MON + 2 * H), Some(MON + 3 * H + 30 * 60));
    }

    #[test]
    fn no_window_is_always_open() {
        let w = Windows::parse(&[]).unwrap();
        assert!(w.is_open(MON) && w.is_empty());
        assert_eq!(w.next_open(MON), Some(MON));
        assert_eq!(w.closes_at(MON), None);
    }

    #[test]
    fn invalid_expressions_are_errors() {
        for bad in [
            "0 2 * * ? *",
            "cron(0 2 * * ?)",
            "cron(0 2 * * ? * *)",
            "cron(0 2 * * * *)",
            "cron(0 2 ? * ? *)",
            "cron(61 2 * * ? *)",
            "cron(0 24 * * ? *)",
            "cron(0 2 * 13 ? *)",
            "cron(0 2 ? * 8 *)",
            "cron(0 2 ? * FOO *)",
            "cron(0 2 L * ? *)",
            "cron(0 2 ? * 6#3 *)",
            "cron(? 2 * * ? *)",
            "cron()",
            "",
        ] {
            let r = Windows::parse(&[mw(bad, 60)]);
            assert!(
                matches!(r, Err((0, WindowError::Cron(_)))),
                "{bad:?} gave {r:?}"
            );
        }
        for minutes in [0, 1431] {
            assert!(matches!(
                Windows::parse(&[mw("cron(0 2 * * ? *)", minutes)]),
                Err((0, WindowError::Duration))
            ));
        }
    }
}
