//! Tables for people at a terminal. Cells hold what publishers and operators sent,
//! so each is made safe to print first: control characters are shown escaped (an ESC
//! or CR from a publisher must not drive the operator's terminal) and long values are
//! cut with an ellipsis (one 500 KB event id must not make every row unreadable).
//! `--json` prints values whole.

use comfy_table::{CellAlignment, ColumnConstraint, Table, presets};

/// The most characters a cell shows; a UUID is 36, an RFC 3339 time 20 to 30.
pub const MAX_CELL_CHARS: usize = 64;

const ELLIPSIS: char = '…';

/// `value` as a table shows it: escaped, then cut to [`MAX_CELL_CHARS`].
pub fn cell(value: &str) -> String {
    let mut shown = String::with_capacity(value.len().min(MAX_CELL_CHARS * 4));
    let mut count = 0;
    for c in value.chars() {
        let piece: String = if needs_escape(c) {
            c.escape_default().collect()
        } else {
            c.into()
        };
        let len = piece.chars().count();
        if count + len > MAX_CELL_CHARS - 1 {
            shown.push(ELLIPSIS);
            return shown;
        }
        count += len;
        shown.push_str(&piece);
    }
    shown
}

/// C0 and C1 controls, DEL, and the bidirectional overrides and isolates that can
/// make a terminal show text in another order than it was sent.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Headers and rows as aligned columns, two spaces apart, no borders.
pub fn render(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    table.set_header(headers.iter().map(|h| cell(h)));
    for row in rows {
        table.add_row(row.iter().map(|c| cell(c)));
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
        column.set_cell_alignment(CellAlignment::Left);
        column.set_constraint(ColumnConstraint::ContentWidth);
    }
    table
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_longer_than_the_limit_is_cut_with_an_ellipsis() {
        let shown = cell(&"a".repeat(70_000));
        assert_eq!(shown.chars().count(), MAX_CELL_CHARS);
        assert!(shown.ends_with('…'), "{shown}");
        assert_eq!(cell("short"), "short");
    }

    #[test]
    fn a_table_with_a_value_over_65535_characters_prints() {
        let huge = "é".repeat(70_000);
        let text = render(&["ID", "URL"], vec![vec![huge, "http://x".into()]]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines.iter().all(|l| l.chars().count() < 200), "{text}");
        assert!(
            lines[1].contains('…') && lines[1].contains("http://x"),
            "{text}"
        );
    }

    #[test]
    fn control_and_bidi_characters_are_shown_escaped() {
        let shown = cell("a\u{1b}]0;pwned\u{7}b\rc\u{202e}d\u{9b}e");
        assert_eq!(shown, "a\\u{1b}]0;pwned\\u{7}b\\rc\\u{202e}d\\u{9b}e");
        let text = render(&["X"], vec![vec!["\u{1b}[2J".into()]]);
        assert!(!text.contains('\u{1b}'), "{text:?}");
    }

    #[test]
    fn columns_line_up_two_spaces_apart() {
        let text = render(
            &["KEY", "URL"],
            vec![
                vec!["a".into(), "http://one".into()],
                vec!["longer".into(), "http://two".into()],
            ],
        );
        assert_eq!(text, "KEY     URL\na       http://one\nlonger  http://two");
    }
}
