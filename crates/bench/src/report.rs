//! What a scenario returns: a table for people, JSON for scripts, and its targets.

use serde::Serialize;

use crate::Scenario;

/// A table: a header row and rows of cells, already formatted (units in the header).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    /// Column headings.
    pub columns: Vec<String>,
    /// Rows of cells, as many as `columns`.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headings and no rows.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Table {
        Table {
            columns: columns.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// GitHub-flavoured markdown (what `docs/PERFORMANCE.md` holds); the first column is left
    /// aligned, the others right aligned (they hold numbers).
    pub fn markdown(&self) -> String {
        let mut s = format!("| {} |\n|", self.columns.join(" | "));
        for i in 0..self.columns.len() {
            s += if i == 0 { "---|" } else { "---:|" };
        }
        s.push('\n');
        for r in &self.rows {
            s += &format!("| {} |\n", r.join(" | "));
        }
        s
    }
}

/// A target the issue set, with the figure measured beside it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is measured, e.g. "goodput at 50 ms RTT, % of link".
    pub what: String,
    /// The target, e.g. "≥ 90%".
    pub target: String,
    /// The measured figure, e.g. "93.1%".
    pub measured: String,
    /// Whether it was met; `None` when the run cannot tell (the `--short` variant, or a
    /// figure from a stand-in implementation).
    pub met: Option<bool>,
}

impl Target {
    /// A target; `met = None` when `short` (a smoke run makes no claims).
    pub fn new(
        what: impl Into<String>,
        target: impl Into<String>,
        measured: impl Into<String>,
        met: bool,
        short: bool,
    ) -> Target {
        Target {
            what: what.into(),
            target: target.into(),
            measured: measured.into(),
            met: (!short).then_some(met),
        }
    }
}

/// One scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The scenario.
    pub scenario: Scenario,
    /// A one-line title.
    pub title: String,
    /// Whether this was the `--short` smoke variant.
    pub short: bool,
    /// The table.
    pub table: Table,
    /// The targets with the measured figures.
    pub targets: Vec<Target>,
    /// How it was measured (models, definitions), one sentence each.
    pub notes: Vec<String>,
    /// The raw figures, for scripts (`--json`).
    pub data: serde_json::Value,
}

impl Report {
    /// The report as markdown: title, table, targets, notes.
    pub fn markdown(&self) -> String {
        let mut s = format!("## {}: {}\n\n", self.scenario.name(), self.title);
        if self.short {
            s += "_Short smoke variant: small sizes, no claims._\n\n";
        }
        s += &self.table.markdown();
        if !self.targets.is_empty() {
            let mut t = Table::new(["target", "wanted", "measured", "met"]);
            for x in &self.targets {
                let met = match x.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None if self.short => "n/a (short)",
                    None => "n/a",
                };
                t.row([
                    x.what.clone(),
                    x.target.clone(),
                    x.measured.clone(),
                    met.into(),
                ]);
            }
            s += "\n";
            s += &t.markdown();
        }
        for n in &self.notes {
            s += &format!("\n- {n}");
        }
        if !self.notes.is_empty() {
            s.push('\n');
        }
        s
    }
}

/// Bytes per second as MB/s (10^6), one decimal.
pub fn mb_per_s(bytes: f64, secs: f64) -> String {
    format!("{:.1}", bytes / secs.max(1e-12) / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_table_aligns_numbers_right() {
        let mut t = Table::new(["what", "MB/s"]);
        t.row(["a", "1.0"]);
        assert_eq!(t.markdown(), "| what | MB/s |\n|---|---:|\n| a | 1.0 |\n");
    }

    #[test]
    fn short_runs_make_no_claims() {
        assert_eq!(Target::new("x", "≥ 1", "0", false, true).met, None);
        assert_eq!(Target::new("x", "≥ 1", "0", false, false).met, Some(false));
    }
}
