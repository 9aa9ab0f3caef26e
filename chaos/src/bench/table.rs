//! The tables the lab's benchmarks print, and how their numbers read: Markdown, readable on a
//! terminal and pastable in the README.

/// A table of text cells, printed as Markdown (readable on a terminal, pastable in the README).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn push(&mut self, row: Vec<String>) {
        assert_eq!(row.len(), self.header.len(), "row width differs from the header: row={row:?}");
        self.rows.push(row);
    }

    /// Markdown with padded columns; numbers (cells starting with a digit) are right-aligned.
    pub fn markdown(&self) -> String {
        let columns = self.header.len();
        let width: Vec<usize> = (0..columns)
            .map(|i| {
                let cells = std::iter::once(&self.header[i]).chain(self.rows.iter().map(|r| &r[i]));
                cells.map(|c| c.chars().count()).max().unwrap_or(0).max(3)
            })
            .collect();
        let numeric: Vec<bool> = (0..columns)
            .map(|i| {
                !self.rows.is_empty()
                    && self.rows.iter().all(|r| r[i].starts_with(|c: char| c.is_ascii_digit()))
            })
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if numeric[i] {
                        format!("{c:>w$}", w = width[i])
                    } else {
                        format!("{c:<w$}", w = width[i])
                    }
                })
                .collect();
            format!("| {} |", padded.join(" | "))
        };
        let rule: Vec<String> = (0..columns)
            .map(|i| if numeric[i] { format!("{}:", "-".repeat(width[i] - 1)) } else { "-".repeat(width[i]) })
            .collect();
        let mut out = vec![line(&self.header), format!("| {} |", rule.join(" | "))];
        out.extend(self.rows.iter().map(|r| line(r)));
        out.join("\n")
    }
}

/// Operations per second, without decimals and with thousands separators: `12,345`.
pub fn ops(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds with two decimals below 10 ms and one above: `0.83`, `12.4`.
pub fn ms(value: f64) -> String {
    if value < 10.0 { format!("{value:.2}") } else { format!("{value:.1}") }
}

/// `a / b` as `1.23×`, or `-` when `b` is zero.
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() { format!("{:.2}×", a / b) } else { "-".to_string() }
}

#[cfg(test)]
#[path = "table_test.rs"]
mod table_test;
