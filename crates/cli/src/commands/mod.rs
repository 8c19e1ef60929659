//! Operator subcommands. Each prints a table, or JSON with `--json`.

pub mod deliveries;
pub mod dlq;
pub mod environments;
pub mod events;
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

pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
