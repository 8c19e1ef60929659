//! Operator subcommands. Each prints a table, or JSON with `--json`.

pub mod deliveries;
pub mod dlq;
pub mod environments;
pub mod event_types;
pub mod events;
pub mod portal;
pub mod probe;
pub mod publish;
pub mod queues;
pub mod receiver;
pub mod stats;
mod table;
pub mod tenants;
pub mod tokens;
pub mod webhooks;

use serde::Serialize;

/// Prints rows as an aligned table (people) or the value as JSON (scripts).
/// Table cells are escaped and cut (see [`table`]); JSON holds every value whole.
pub fn print<T: Serialize>(json: bool, value: &T, headers: &[&str], rows: Vec<Vec<String>>) {
    if json {
        let text = serde_json::to_string_pretty(value).unwrap_or_default();
        write_out(&text);
        return;
    }
    write_out(&table::render(headers, rows));
}

/// Command output goes to stdout (logs go to stderr).
pub fn write_out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
}

/// A remark about the output, once, on stderr: stdout stays a table or JSON.
pub fn note(text: &str) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "note: {text}");
}

pub fn join(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(",")
    }
}

/// A time for a table cell: `2026-12-03 14:19:35` (UTC, whole seconds).
pub fn short_time(t: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// A one-line progress bar on stderr, redrawn in place, for people at a terminal.
pub struct Progress {
    enabled: bool,
    unit: &'static str,
}

impl Progress {
    /// Shown only when `enabled` and stderr is a terminal.
    pub fn new(enabled: bool, unit: &'static str) -> Self {
        use std::io::IsTerminal;
        Self {
            enabled: enabled && std::io::stderr().is_terminal(),
            unit,
        }
    }

    /// `done` of `total` (a bar), or of an unknown total (a count).
    pub fn show(&self, done: u64, total: Option<u64>) {
        use std::io::Write;
        if !self.enabled {
            return;
        }
        let unit = self.unit;
        let line = match total {
            Some(total) => {
                const WIDTH: u64 = 30;
                let filled = (done * WIDTH)
                    .checked_div(total)
                    .unwrap_or(WIDTH)
                    .min(WIDTH);
                let bar: String = (0..WIDTH)
                    .map(|i| if i < filled { '#' } else { '.' })
                    .collect();
                format!("[{bar}] {done} of {total} {unit}")
            }
            None => format!("{done} {unit} so far"),
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}");
        let _ = err.flush();
    }

    pub fn finish(&self) {
        use std::io::Write;
        if self.enabled {
            let _ = writeln!(std::io::stderr().lock());
        }
    }
}
