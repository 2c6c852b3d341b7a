//! Markdown tables and the number formats the benchmarks print in them.

use std::time::Duration;

/// How a column's cells are padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A Markdown table with padded columns: the first column left-aligned, the others right-aligned
/// (they hold numbers).
pub fn markdown(headers: &[&str], rows: &[Vec<String>]) -> String {
    let align: Vec<Align> = (0..headers.len()).map(|i| if i == 0 { Align::Left } else { Align::Right }).collect();
    markdown_aligned(headers, &align, rows)
}

/// A Markdown table with padded columns aligned as `align` says (missing entries: right).
pub fn markdown_aligned(headers: &[&str], align: &[Align], rows: &[Vec<String>]) -> String {
    let align = |i: usize| align.get(i).copied().unwrap_or(Align::Right);
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count().max(3)).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<String> = cells
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, &w))| match align(i) {
                Align::Left => format!("{cell:<w$}"),
                Align::Right => format!("{cell:>w$}"),
            })
            .collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let mut out = line(&mut headers.iter().copied());
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, &w)| match align(i) {
            Align::Left => format!(":{}", "-".repeat(w - 1)),
            Align::Right => format!("{}:", "-".repeat(w - 1)),
        })
        .collect();
    out.push_str(&format!("| {} |\n", rule.join(" | ")));
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// Microseconds as milliseconds with two decimals.
pub fn micros_as_ms(micros: u64) -> String {
    format!("{:.2}", micros as f64 / 1000.0)
}

/// A duration as milliseconds with one decimal.
pub fn duration_ms(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let table = markdown(&["store", "req/s"], &[vec!["sqlite".into(), "12345".into()]]);
        assert_eq!(table, "| store  | req/s |\n| :----- | ----: |\n| sqlite | 12345 |\n");
    }

    #[test]
    fn aligns_as_told_and_counts_characters() {
        let table = markdown_aligned(
            &["a", "b", "c"],
            &[Align::Right, Align::Left],
            &[vec!["1".into(), "x".into(), "é".into()]],
        );
        assert_eq!(table, "|   a | b   |   c |\n| --: | :-- | --: |\n|   1 | x   |   é |\n");
    }
}
