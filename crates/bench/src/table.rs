//! Markdown tables and the number formats the benchmarks print in them.

use std::time::Duration;

/// A Markdown table with padded columns: the first column left-aligned, the others right-aligned
/// (they hold numbers).
pub fn markdown(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len().max(3)).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<String> = cells
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, &w))| if i == 0 { format!("{cell:<w$}") } else { format!("{cell:>w$}") })
            .collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let mut out = line(&mut headers.iter().copied());
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, &w)| if i == 0 { format!(":{}", "-".repeat(w - 1)) } else { format!("{}:", "-".repeat(w - 1)) })
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
}
